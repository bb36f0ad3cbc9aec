"""The page's Routing card in the demo, in real Chromium: it says HAProxy applies the weights,
and shows the weights the watcher set there once the load bursts, and again when a person at a
terminal takes over with the command the demo printed."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from harness.browser import chromium
from harness.frontend import Page
from harness.processes import ManagedProcess
from harness.watcher import watcher_cli
from tests.demo.conftest import demo_argv, demo_ports


@pytest.mark.browser
async def test_the_routing_card_shows_haproxy_and_the_weights_it_was_given(
    tmp_path: Path,
) -> None:
    ports = demo_ports()
    demo = ManagedProcess("demo", demo_argv(tmp_path / "state", ports), tmp_path).start()
    try:
        demo.wait_until(lambda: "String Hashr is running" in demo.output(), 90, "demo ready")
        url = f"http://127.0.0.1:{ports['frontend']}"
        async with chromium() as browser, Page(url) as page:
            screen = await browser.new_page()
            await screen.goto(url)
            text = screen.locator("#routing-text")
            await screen.wait_for_function(
                "() => document.querySelector('#routing-text').textContent.includes('HAProxy')",
                timeout=60_000,  # the watcher's first state, through Redis, on a loaded machine
            )
            assert "HAProxy" in await text.inner_text()

            await page.set_frequency(30)
            await screen.wait_for_function(
                "() => document.querySelector('#weight-burst')"
                ".getAttribute('aria-valuenow') === '100'",
                timeout=40_000,
            )
            assert await screen.locator("#weight-primary").get_attribute("aria-valuenow") == "0"
            await screen.wait_for_function(
                "() => /burst [1-9]/.test(document.querySelector('#measured-split').textContent)",
                timeout=20_000,
            )

            # The demo printed how to take over; its env file holds the Redis password.
            env_file = tmp_path / "state" / "watcher.env"
            assert f"--env-file {env_file}" in demo.output()
            assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
            override = watcher_cli("override", "primary", "--for", "10m", "--env-file", env_file)
            assert "override primary until" in override.stdout, override.stderr
            await screen.wait_for_function(
                "() => document.querySelector('#weight-primary')"
                ".getAttribute('aria-valuenow') === '100'",
                timeout=20_000,
            )
            shown = watcher_cli("status", "--env-file", env_file).stdout
            assert "override   primary (local) until" in shown and "OverrideApplied" in shown, shown
            await page.set_frequency(0)
    finally:
        demo.stop()
