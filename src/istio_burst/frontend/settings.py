from __future__ import annotations

from typing import Self
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from istio_burst.core.contracts import CALCULATION_CHANNEL, SUBSETS
from istio_burst.core.settings import RedisURL, ServiceSettings

# The target name of a single PROCESSOR_URL (the mesh, not us, picks the subset).
DEFAULT_TARGET = "default"


def parse_processor_url(value: str) -> dict[str, str]:
    """`http://worker` -> {"default": url}; `primary=http://a,burst=http://b` -> one per subset."""
    value = value.strip()
    if not value:
        raise ValueError("PROCESSOR_URL is empty")
    if "=" not in value.split("://", 1)[0]:
        return {DEFAULT_TARGET: _http_url(value)}
    targets: dict[str, str] = {}
    for part in value.split(","):
        name, sep, url = part.strip().partition("=")
        name = name.strip()
        if not sep or name not in SUBSETS:
            raise ValueError(
                f"PROCESSOR_URL part {part.strip()!r} is not <subset>=<url> with subset one of "
                f"{', '.join(SUBSETS)}"
            )
        if name in targets:
            raise ValueError(f"PROCESSOR_URL names {name} twice")
        targets[name] = _http_url(url)
    missing = [name for name in SUBSETS if name not in targets]
    if missing:
        raise ValueError(f"PROCESSOR_URL with names must name every subset; missing: {missing}")
    return targets


def _http_url(url: str) -> str:
    url = url.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{url!r} is not an http:// or https:// URL")
    return url + "/"


def parse_origins(value: str) -> list[str]:
    """Comma-separated `scheme://host[:port]` origins; `*` is refused on purpose."""
    origins: list[str] = []
    for raw in value.split(","):
        origin = raw.strip().rstrip("/")
        if not origin:
            continue
        if "*" in origin:
            raise ValueError("ALLOWED_ORIGINS must list origins; '*' (any site) is not allowed")
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.path:
            raise ValueError(f"{origin!r} is not an origin like https://example.com:8443")
        origins.append(origin)
    return origins


class FrontendSettings(ServiceSettings):
    host: str = Field("0.0.0.0", description="address to listen on")
    port: int = Field(8080, ge=1, le=65535, description="HTTP port (page, socket.io, metrics)")
    redis_url: RedisURL = Field(
        "localhost:6379", description="Redis to subscribe to: host:port or a redis:// URL"
    )
    processor_url: str = Field(
        "http://localhost:8081",
        description="where to POST: one worker URL (the mesh routes), or "
        "primary=<url>,burst=<url> to split by the weights the watcher publishes in Redis",
    )
    channel: str = Field(
        CALCULATION_CHANNEL, min_length=1, description="Redis channel the workers publish on"
    )
    max_frequency: float = Field(
        100, gt=0, le=100_000, description="the slider's maximum, in requests per second"
    )
    frequency: float = Field(
        0,
        ge=0,
        description="requests per second when Redis holds no frequency for the deployment yet "
        "(0: idle until a page sets it); otherwise every replica starts at the shared one",
    )
    allowed_origins: str = Field(
        "",
        description="extra origins allowed to open the socket, comma-separated "
        "(https://a.example,http://b:8080); the page's own origin is always allowed; '*' is not",
    )
    request_timeout: float = Field(
        2.0, gt=0, le=60, description="seconds before a request to the worker counts as failed"
    )
    max_in_flight: int = Field(
        256, ge=1, le=10_000, description="requests to the workers at once; beyond this, skipped"
    )
    batch_window: float = Field(
        0.03, gt=0, le=0.05, description="seconds of hashes sent to the pages in one event"
    )
    hashes_per_batch: int = Field(
        200,
        ge=1,
        le=5000,
        description="most hashes in one event to one page, the newest (its counts stay exact); "
        "room for a burst after a stall",
    )
    graceful_timeout: float = Field(
        5.0, gt=0, description="seconds to finish in-flight requests after SIGTERM"
    )

    @field_validator("processor_url")
    @classmethod
    def _check_processor_url(cls, value: str) -> str:
        parse_processor_url(value)
        return value.strip()

    @field_validator("allowed_origins")
    @classmethod
    def _check_origins(cls, value: str) -> str:
        parse_origins(value)
        return value.strip()

    @model_validator(mode="after")
    def _frequency_within_max(self) -> Self:
        if self.frequency > self.max_frequency:
            raise ValueError(
                f"FREQUENCY {self.frequency:g} is over MAX_FREQUENCY {self.max_frequency:g}"
            )
        return self

    @property
    def targets(self) -> dict[str, str]:
        return parse_processor_url(self.processor_url)

    @property
    def origins(self) -> list[str]:
        return parse_origins(self.allowed_origins)
