"""`istio-burst demo --frontends N`: N frontends on consecutive ports, one frequency, one page."""

from __future__ import annotations

import subprocess
from pathlib import Path

from harness.frontend import Page
from harness.ports import free_consecutive_ports, wait_port_closed
from harness.processes import ManagedProcess
from tests.demo.conftest import children_of, demo_argv, demo_ports


def ports_for_two_frontends() -> dict[str, int]:
    """The demo's ports, the two frontends' consecutive ones where no other can take them."""
    return demo_ports(frontend=free_consecutive_ports(2))


async def test_two_frontends_share_the_frequency_and_the_load(tmp_path: Path) -> None:
    ports = ports_for_two_frontends()
    argv = [*demo_argv(tmp_path / "state", ports), "--frontends", "2"]
    demo = ManagedProcess("demo", argv, tmp_path).start()
    try:
        demo.wait_until(lambda: "String Hashr is running" in demo.output(), 90, "demo ready")
        assert len(children_of(demo.pid)) == 8, demo.output()  # with haproxy
        assert f"ports {ports['frontend'] + 1}" in demo.output()
        first = f"http://127.0.0.1:{ports['frontend']}"
        second = f"http://127.0.0.1:{ports['frontend'] + 1}"
        async with Page(first) as one, Page(second) as two:
            await one.set_frequency(10)
            await two.wait_for("frequency", lambda d: d["freq"] == 10)
            both = await two.wait_for(
                "stats", lambda s: s["replicas"] == 2 and s["achieved"] > 0, timeout=15
            )
            assert both["replica"]["share"] == 5
            await two.set_frequency(0)
    finally:
        demo.stop()
    assert wait_port_closed(ports["frontend"] + 1)


def test_frontends_that_would_overlap_another_component_are_refused(tmp_path: Path) -> None:
    ports = demo_ports()
    ports["primary"] = ports["frontend"] + 1
    argv = [*demo_argv(tmp_path / "state", ports), "--frontends", "3"]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "--frontends 3 needs ports" in result.stdout
    assert "worker-primary" in result.stdout and "--frontend-port" in result.stdout
