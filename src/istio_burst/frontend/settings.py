from __future__ import annotations

from typing import Self
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from istio_burst.core.contracts import CALCULATION_CHANNEL
from istio_burst.core.settings import GracefulTimeout, HTTPServiceSettings, Port, RedisURL
from istio_burst.frontend.page.hosts import parse_hosts

# The name the driver's figures and metrics give the one PROCESSOR_URL.
DEFAULT_TARGET = "default"


def parse_processor_url(value: str) -> str:
    """The one worker URL (`http://worker-service`, or the local proxy), with a trailing slash."""
    value = value.strip()
    if not value:
        raise ValueError("PROCESSOR_URL is empty")
    if "=" in value.split("://", 1)[0] or "," in value:
        raise ValueError(
            "PROCESSOR_URL is one URL (the mesh's worker-service, or the local proxy), not "
            "primary=<url>,burst=<url>: the data plane splits the requests between them"
        )
    return _http_url(value)


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


class FrontendSettings(HTTPServiceSettings):
    port: Port = 8080
    redis_url: RedisURL = Field(
        "localhost:6379", description="Redis to subscribe to: host:port or a redis:// URL"
    )
    processor_url: str = Field(
        "http://localhost:8081",
        description="where to POST: one URL; the data plane (Istio in Kubernetes, HAProxy "
        "locally) splits the requests between primary and burst",
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
    frequency_events_per_second: float = Field(
        10,
        gt=0,
        le=1000,
        description="frequency changes one page may send per second (the page sends at most "
        "about 7 while the slider is dragged); more are dropped, counted and the page told",
    )
    allowed_hosts: str = Field(
        "localhost,127.0.0.1,frontend",
        description="host names the frontend answers to, comma-separated (*.example.com for "
        "subdomains; IP addresses are always answered): the Host of every request and the Origin "
        "of every socket must name one; a name of anyone else's (DNS rebinding) gets 400/403",
    )
    allowed_origins: str = Field(
        "",
        description="extra origins allowed to open the socket, comma-separated "
        "(https://a.example,http://b:8080); pages from an ALLOWED_HOSTS name, or opened by IP "
        "address, always may; '*' is not allowed",
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
    graceful_timeout: GracefulTimeout = 5.0

    @field_validator("processor_url")
    @classmethod
    def _check_processor_url(cls, value: str) -> str:
        return parse_processor_url(value)

    # Checked field by field, so a bad value is reported under its own name; kept as the
    # normalized, comma-joined list the properties below split.
    @field_validator("allowed_hosts")
    @classmethod
    def _check_hosts(cls, value: str) -> str:
        return ",".join(parse_hosts(value))

    @field_validator("allowed_origins")
    @classmethod
    def _check_origins(cls, value: str) -> str:
        return ",".join(parse_origins(value))

    @model_validator(mode="after")
    def _check_frequency(self) -> Self:
        if self.frequency > self.max_frequency:
            raise ValueError(
                f"FREQUENCY {self.frequency:g} is over MAX_FREQUENCY {self.max_frequency:g}"
            )
        return self

    @property
    def hosts(self) -> list[str]:
        return self.allowed_hosts.split(",") if self.allowed_hosts else []

    @property
    def origins(self) -> list[str]:
        return self.allowed_origins.split(",") if self.allowed_origins else []
