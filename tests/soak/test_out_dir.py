"""`./run soak --out DIR` replaces the last run's files in DIR and leaves everything else there."""

from __future__ import annotations

from pathlib import Path

from soak.__main__ import clear_last_run


def test_a_new_run_removes_only_what_the_last_run_wrote(tmp_path: Path) -> None:
    (tmp_path / "state" / "logs").mkdir(parents=True)
    (tmp_path / "state" / "logs" / "worker-primary.log").write_text("old")
    for name in ("observed.json", "soak.json", "soak.png", "soak.html"):
        (tmp_path / name).write_text("old")
    (tmp_path / "README.md").write_text("mine")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "code.py").write_text("mine")

    clear_last_run(tmp_path)

    assert sorted(p.name for p in tmp_path.iterdir()) == ["README.md", "src"]
    assert (tmp_path / "src" / "code.py").read_text() == "mine"


def test_a_first_run_into_a_missing_directory_is_fine(tmp_path: Path) -> None:
    clear_last_run(tmp_path / "new")
    assert not (tmp_path / "new").exists()
