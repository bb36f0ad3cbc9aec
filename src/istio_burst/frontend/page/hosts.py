"""Which Host a request may name, and which Origin may open the socket (against DNS rebinding).

A rebinding attack points a name of the attacker's at this server, so the browser sends that
name as Host and as the page's Origin. Names are therefore accepted only from ALLOWED_HOSTS
(`hashr.example.com`, or `*.example.com` for its subdomains). An IP address is always accepted
as Host: no name is involved, and Kubernetes' probes and Prometheus' scrapes address pods by IP.
An Origin must name an allowed host too; an IP-address Origin only when it is the request's own
Host (the page was opened by address).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

from istio_burst.core.http_errors import error_response
from istio_burst.frontend import metrics

# RFC 6455 policy violation: a websocket closed before it is accepted is answered 403.
_POLICY_VIOLATION = 1008

OriginCheck = Callable[[str | None, dict[str, Any]], bool]


def parse_hosts(value: str) -> list[str]:
    """Comma-separated host names, `*.example.com` for subdomains; a bare `*` is refused."""
    hosts: list[str] = []
    for raw in value.split(","):
        host = raw.strip().lower()
        if not host:
            continue
        if host == "*" or "*" in host.removeprefix("*."):
            raise ValueError(
                f"ALLOWED_HOSTS entry {host!r}: name the hosts (or *.domain for subdomains); "
                "'*' would let any name, a rebinding attacker's too, reach the frontend"
            )
        if "/" in host or ":" in host.removeprefix("["):
            raise ValueError(f"ALLOWED_HOSTS entry {host!r} is not a host name (no scheme or port)")
        hosts.append(host)
    return hosts


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class AllowedHosts:
    def __init__(self, names: list[str]) -> None:
        self._exact = frozenset(name for name in names if not name.startswith("*."))
        self._suffixes = tuple(name[1:] for name in names if name.startswith("*."))

    def allows_name(self, host: str) -> bool:
        return host in self._exact or host.endswith(self._suffixes)

    def allows(self, host_header: str) -> bool:
        """The Host header (with or without its port) names an allowed host or an IP address."""
        try:
            host = urlsplit("//" + host_header).hostname
        except ValueError:
            return False
        if not host:
            return False
        return _is_address(host) or self.allows_name(host)

    def origin_check(self, extra_origins: list[str]) -> OriginCheck:
        """For python-socketio's `cors_allowed_origins`: no Origin (not a browser), a listed
        origin, an allowed host name, or the request's own address."""
        listed = frozenset(extra_origins)

        def check(origin: str | None, environ: dict[str, Any]) -> bool:
            if origin is None or origin in listed:
                return True
            try:
                parts = urlsplit(origin)
                host = parts.hostname
            except ValueError:
                return False
            if parts.scheme not in ("http", "https") or not host:
                return False
            if _is_address(host):
                own: str = environ.get("HTTP_HOST", "")
                return parts.netloc == own
            return self.allows_name(host)

        return check

    def guard(self, app: ASGIApp) -> ASGIApp:
        """Every request and websocket (socket.io's too) whose Host is not allowed is refused:
        HTTP with 400, a websocket with 403 before it opens."""

        async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] not in ("http", "websocket") or self.allows(_host(scope)):
                await app(scope, receive, send)
                return
            metrics.REFUSED.labels(reason="host").inc()
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": _POLICY_VIOLATION})
            else:
                detail = f"host {_host(scope)[:100]!r} is not served here (ALLOWED_HOSTS)"
                await error_response(400, detail)(scope, receive, send)

        return guarded


def _host(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == b"host":
            return str(value.decode("latin-1"))
    return ""
