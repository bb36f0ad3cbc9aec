"""Settings: environment variables, a `.env` file and command-line flags, one mechanism for all.

Each service declares a subclass of `ServiceSettings`; every field is one setting, its env var is
the field name in upper case (PORT, REDIS_URL, PREFIX keep the original workshop's names), and
`istio-burst <service> --help` is made from the same fields (core/cli_settings.py), so the help
cannot drift.
"""

from __future__ import annotations

import logging
import re
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def normalize_redis_url(value: str) -> str:
    """Accept the original's `host:port` (or a bare `host`) and redis:// or rediss:// URLs."""
    value = value.strip()
    if not value:
        raise ValueError("REDIS_URL is empty")
    if "://" in value:
        scheme = value.split("://", 1)[0]
        if scheme not in ("redis", "rediss", "unix"):
            raise ValueError(
                f"REDIS_URL scheme must be redis://, rediss:// or unix://, not {scheme}://"
            )
        return value
    host, sep, port = value.rpartition(":")
    if not sep:
        host, port = value, "6379"
    if not host:
        raise ValueError(f"REDIS_URL {value!r} has no host")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"REDIS_URL {value!r} has an invalid port")
    return f"redis://{host}:{port}/0"


RedisURL = Annotated[str, AfterValidator(normalize_redis_url)]

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]


class ServiceSettings(BaseSettings):
    """Settings every service has."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
    )

    log_level: LogLevel = Field("INFO", description="log level: DEBUG, INFO, WARNING or ERROR")
    log_format: Literal["json", "text"] = Field(
        "json", description="log lines as JSON objects (json) or human-readable text (text)"
    )

    def log_effective(self, logger: logging.Logger, service: str) -> None:
        """Log the effective settings once at start, secrets in URLs masked."""
        logger.info("starting %s", service, extra={"settings": self.public_dict()})

    def public_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in self.model_dump().items():
            out[key] = redact_url(value) if isinstance(value, str) else value
        return out


# Types of the fields whose defaults a service changes (`port: Port = 8081`): the constraints
# and description come along.
Port = Annotated[int, Field(ge=1, le=65535, description="HTTP port")]
GracefulTimeout = Annotated[
    float, Field(gt=0, description="seconds to finish in-flight requests after SIGTERM")
]


class HTTPServiceSettings(ServiceSettings):
    """Settings of every service that serves HTTP: where, how it stops, and the limits every
    connection lives by (enforced in core/server.py). Subclasses set their own `port` default
    with `port: Port = 8081` (and `graceful_timeout: GracefulTimeout = 5.0`)."""

    host: str = Field("0.0.0.0", description="address to listen on")
    port: Port = 8080
    graceful_timeout: GracefulTimeout = 10.0
    max_header_bytes: int = Field(
        16 * 1024, ge=1024, description="largest request line and headers, in bytes (431 above)"
    )
    max_headers: int = Field(100, ge=10, description="most headers in one request (431 above)")
    header_timeout: float = Field(
        10.0, gt=0, description="seconds a client has to send a request's headers (408 after)"
    )
    body_timeout: float = Field(
        10.0, gt=0, description="seconds a client has to send a request's body (408 after)"
    )
    keepalive_timeout: float = Field(
        5.0, gt=0, description="seconds an idle connection is kept open between requests"
    )
    max_connections: int = Field(
        1000,
        ge=1,
        description="open connections (websockets included) before new requests and websocket "
        "handshakes get 503; probes and /metrics are still answered",
    )
    max_websocket_bytes: int = Field(
        64 * 1024,
        ge=1024,
        description="largest websocket message the server reads (closed with 1009 above); "
        "bounded where the frame is read, before any app sees it",
    )
    api_docs: bool = Field(True, description="serve /docs, /redoc and /openapi.json")


# scheme://userinfo@host: userinfo runs to the last "@" before the path ("/", "?", "#").
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/?#\s]*)@")


def redact_url(value: str) -> str:
    """`value` with the password of every URL in it replaced by `***` (the user name is kept;
    userinfo without a password, often a token, is replaced whole). A URL or any text."""

    def mask(found: re.Match[str]) -> str:
        user, colon, _ = found["userinfo"].partition(":")
        return f"{found['scheme']}{user}:***@" if colon else f"{found['scheme']}***@"

    return _USERINFO.sub(mask, value)


def redact_webhook(url: str) -> str:
    """Only the scheme, host and port of a webhook URL: its user, password, path and query may
    all be secrets (Slack's incoming webhooks carry theirs in the path)."""
    try:
        parts = urlsplit(url)
        port = f":{parts.port}" if parts.port else ""
        host = parts.hostname or ""
    except ValueError:
        return "***"
    secret = parts.username or parts.password or parts.path.strip("/") or parts.query
    return f"{parts.scheme}://{host}{port}" + ("/***" if secret else "")
