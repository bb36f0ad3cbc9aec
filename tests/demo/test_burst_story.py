"""The whole burst story, end to end, as a user runs it: `istio-burst demo`, then the page.

Real redis-server, real Prometheus (1 s scrape), two real workers behind a real HAProxy, the
frontend and the watcher setting HAProxy's weights, all started by the demo command itself. A
python-socketio client drives the page's events and checks every hash; the real page watches the
same run in headless Chromium, and its screenshot of the burst is saved in test-artifacts/.
Timings are reported and bounded generously: the bench measures reaction times precisely.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import httpx
import pytest

from harness.browser import artifact, chromium
from harness.frontend import Page
from harness.istio.envoy import held_route, subset_weights
from harness.ports import wait_port_closed
from harness.processes import ManagedProcess
from istio_burst.demo.haproxy import runtime_command
from tests.demo.conftest import children_of, demo_argv, demo_ports, processes_mentioning

STABILIZATION_WINDOW = 6.0

# The page's chart has scrolled in at least `n` seconds in which burst hashed more than primary.
CHART_SHOWS_BURST = """(n) => {
  const chart = Chart.getChart("rate-chart");
  const series = (label) => chart.data.datasets.find((d) => d.label === label)?.data ?? [];
  const burst = series("burst"), primary = series("primary");
  return burst.filter((v, i) => v > 0 && v > (primary[i] ?? 0)).length >= n;
}"""


def share_of_burst(page: Page, since: int) -> tuple[float, int]:
    """Share of the hashes shown since `since` that came from the burst side, and how many."""
    hashes = page.hashes(since)
    if not hashes:
        return 0.0, 0
    burst = sum(1 for h in hashes if h["value"].startswith("bursty-"))
    return burst / len(hashes), len(hashes)


def burst_weight_in_force(mesh: str, ports: dict[str, int]) -> int:
    """The burst weight the data plane routes by: HAProxy's, or the route Envoy got from istiod."""
    if mesh == "haproxy":
        answer = runtime_command(
            f"tcp://127.0.0.1:{ports['proxy-api']}", "get weight workers/burst"
        )
        return int(answer.split()[0])
    held = held_route(f"http://127.0.0.1:{ports['proxy-metrics']}")
    assert held is not None, "Envoy holds no route from istiod"
    return subset_weights(held[1]).get("burst", 0)


# istio: a local Kubernetes API, istiod and upstream Envoy instead of HAProxy (they start slower).
@pytest.mark.parametrize(("mesh", "start_timeout"), [("haproxy", 90), ("istio", 300)])
async def test_load_bursts_to_the_burst_cluster_and_comes_back(
    tmp_path: Path, mesh: str, start_timeout: float
) -> None:
    ports = demo_ports()
    state_dir = tmp_path / "state"
    argv = [*demo_argv(state_dir, ports), "--stabilization-window", str(STABILIZATION_WINDOW)]
    demo = ManagedProcess("demo", [*argv, "--mesh", mesh], tmp_path).start()
    try:
        demo.wait_until(
            lambda: "String Hashr is running" in demo.output(), start_timeout, "demo ready"
        )
        components = children_of(demo.pid)
        assert len(components) == 7, demo.output()

        url = f"http://127.0.0.1:{ports['frontend']}"
        async with chromium() as browser, Page(url) as page:
            screen = await browser.new_page(viewport={"width": 1280, "height": 1000})
            await screen.goto(url)
            await screen.wait_for_selector("#connection[data-state=success]", timeout=15_000)

            # 3 req/s: below LOW, everything is hashed on primary.
            await page.set_frequency(3)
            calm = page.mark()
            await page.wait_for("hashes", lambda b: b["count"] > 0, since=calm, timeout=10)
            while page.hash_count(calm) < 8:
                await page.wait_for("hashes", since=page.mark(), timeout=10)
            share, seen = share_of_burst(page, calm)
            assert share == 0.0, f"{share:.0%} of {seen} hashes were bursty at 3 req/s"

            # 30 req/s: above HIGH, the watcher moves the traffic to burst.
            await page.set_frequency(30)
            started = time.monotonic()
            await page.wait_for(
                "hashes",
                lambda b: b["counts"].get("burst", 0) > b["counts"].get("primary", 0),
                since=page.mark(),
                timeout=30,
            )
            print(f"burst after {time.monotonic() - started:.1f} s (issue: within 10 s)")
            bursting = page.mark()
            while page.hash_count(bursting) < 60:
                await page.wait_for("hashes", since=page.mark(), timeout=10)
            share, seen = share_of_burst(page, bursting)
            assert share > 0.8, f"only {share:.0%} of {seen} hashes were bursty at 30 req/s"
            # The weights in force: what the watcher set, and what the data plane routes by.
            watcher = httpx.get(f"http://127.0.0.1:{ports['watcher']}/status", timeout=5).json()
            assert watcher["weights"] == {"primary": 0, "burst": 100}, watcher
            assert burst_weight_in_force(mesh, ports) == 100
            # What a person sees: bursty- hashes marked, and the burst line over primary's.
            await screen.wait_for_selector("#hashes li.hash-burst", timeout=15_000)
            await screen.wait_for_function(CHART_SHOWS_BURST, arg=3, timeout=20_000)
            shot = artifact(f"demo-burst-{mesh}.png")
            await screen.screenshot(path=str(shot), full_page=True)
            print(f"screenshot of the burst: {shot}")

            # Back to 3 req/s: after the stabilization window, primary again.
            await page.set_frequency(3)
            started = time.monotonic()
            await page.wait_for(
                "hashes",
                lambda b: b["count"] > 0 and b["counts"].get("burst", 0) == 0,
                since=page.mark(),
                timeout=STABILIZATION_WINDOW + 30,
            )
            print(
                f"primary again after {time.monotonic() - started:.1f} s "
                f"(window {STABILIZATION_WINDOW:g} s)"
            )
            settled = page.mark()
            while page.hash_count(settled) < 6:
                await page.wait_for("hashes", since=page.mark(), timeout=10)
            share, seen = share_of_burst(page, settled)
            assert share == 0.0, f"{share:.0%} of {seen} hashes still bursty after returning"

        assert demo.alive(), f"the demo exited during the run:\n{demo.output()}"
        assert all(Path(f"/proc/{pid}").exists() for pid in components), "a component died"

        # Ctrl-C: everything stops, in order, and nothing is left.
        demo.signal(signal.SIGINT)
        assert demo.wait_exit(60) == 0, demo.output()
        assert "demo stopped" in demo.output()
        assert not [pid for pid in components if Path(f"/proc/{pid}").exists()]
        assert all(wait_port_closed(port) for port in ports.values())
        assert processes_mentioning(str(state_dir)) == []
    finally:
        demo.stop()
