"""DNS rebinding: a foreign name pointed at the frontend gets nothing, on any transport."""

from __future__ import annotations

import aiohttp
import httpx
import pytest
import socketio

from harness.frontend import Page, Stack
from harness.metrics import metric_value
from tests.frontend.raw_socket import socket_url

EVIL = {"Host": "evil.example", "Origin": "http://evil.example"}


async def test_a_rebinding_host_is_refused_over_http(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.url, timeout=5) as http:
        for path in ("/", "/static/app.js", "/_healthz", "/metrics"):
            refused = await http.get(path, headers={"Host": "evil.example"})
            assert refused.status_code == 400, path
            assert "ALLOWED_HOSTS" in refused.json()["detail"]
        assert (await http.get("/", headers={"Host": "localhost:8080"})).status_code == 200


async def test_a_rebinding_host_cannot_open_the_socket_or_set_the_frequency(
    stack: Stack,
) -> None:
    async with Page(stack.url) as watcher_page:
        before = (await watcher_page.wait_for("frequency"))["freq"]

        # Websocket: refused before it opens.
        async with aiohttp.ClientSession() as session:
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await session.ws_connect(socket_url(stack.url), headers=EVIL)
        assert refused.value.status == 403

        # Long-polling: the handshake and a POST with a frequency are both refused.
        async with httpx.AsyncClient(timeout=5) as http:
            opened = await http.get(socket_url(stack.url, "polling"), headers=EVIL)
            assert opened.status_code == 400
            posted = await http.post(
                socket_url(stack.url, "polling") + "&sid=x",
                content=b'42["frequency",{"freq":77}]',
                headers=EVIL,
            )
            assert posted.status_code == 400

        # The python-socketio client as a rebinding page would be.
        foreign = Page(stack.url, headers=EVIL)
        with pytest.raises(socketio.exceptions.ConnectionError):
            await foreign.connect()

        # Nothing changed.
        async with Page(stack.url) as fresh:
            assert (await fresh.wait_for("frequency"))["freq"] == before
        shown = [e.data["freq"] for e in watcher_page.events if e.name == "frequency"]
        assert 77 not in shown
    assert metric_value(stack.url, "hashr_frontend_refused_total", reason="host") >= 4
