from __future__ import annotations

import socket

from pydantic import Field

from istio_burst.core.contracts import CALCULATION_CHANNEL, SUBSET_BURST, SUBSET_PRIMARY
from istio_burst.core.settings import HTTPServiceSettings, Port, RedisURL


class WorkerSettings(HTTPServiceSettings):
    port: Port = 8081
    redis_url: RedisURL = Field(
        "localhost:6379", description="Redis to publish to: host:port or a redis:// URL"
    )
    prefix: str = Field("", description="put in front of every hash (burst workers: bursty-)")
    channel: str = Field(
        CALCULATION_CHANNEL, min_length=1, description="Redis channel to publish on"
    )
    cluster: str = Field(
        "",
        description="name of the side this worker serves, in each message "
        "(default: burst when PREFIX is set, else primary)",
    )
    worker_name: str = Field(
        default_factory=socket.gethostname, description="this process's name in each message"
    )
    max_body_bytes: int = Field(64 * 1024, ge=64, description="largest request body accepted")
    publish_timeout: float = Field(
        1.0, gt=0, description="seconds a request waits for Redis before answering 503"
    )

    @property
    def cluster_name(self) -> str:
        return self.cluster or (SUBSET_BURST if self.prefix else SUBSET_PRIMARY)
