"""NOTIFY_URL: each new decision record as a JSON POST to a webhook (repeats are not sent again).

`json` posts the record itself; `slack` posts `{"text": "<the record in words>"}`, which Slack's
incoming webhooks (and Mattermost's, Rocket.Chat's, ...) take. A webhook URL often carries its
secret in the path or the query (Slack's does), so it is only ever shown as `scheme://host/***`.
"""

from __future__ import annotations

from typing import Any

import httpx

from istio_burst.core.contracts import DecisionRecord
from istio_burst.core.redis import describe_error
from istio_burst.core.settings import redact_webhook
from istio_burst.watcher import metrics
from istio_burst.watcher.delivery import BackgroundSender
from istio_burst.watcher.words import record_words


def payload(record: DecisionRecord, form: str) -> dict[str, Any]:
    if form == "slack":
        return {"text": f"istio-burst watcher: {record_words(record)}"}
    return record.model_dump(mode="json")


class Notifier:
    def __init__(self, url: str, form: str, *, timeout: float, queue_size: int) -> None:
        self.url = url
        self.shown_url = redact_webhook(url)
        self.form = form
        self._http = httpx.AsyncClient(timeout=timeout, follow_redirects=False)
        self._sender: BackgroundSender[DecisionRecord] = BackgroundSender(
            f"notify {self.shown_url}",
            self._post,
            lambda outcome: metrics.NOTIFICATIONS.labels(outcome=outcome).inc(),
            queue_size=queue_size,
            deadline=timeout,
            describe=self._describe,
        )

    def offer(self, record: DecisionRecord, repeat: bool) -> None:
        if not repeat:  # one notification per record: its repeats are only counted
            self._sender.put(record)

    async def _post(self, record: DecisionRecord) -> None:
        response = await self._http.post(self.url, json=payload(record, self.form))
        if not response.is_success:
            raise RuntimeError(f"HTTP {response.status_code}")

    def _describe(self, exc: BaseException) -> str:
        return describe_error(exc).replace(self.url, self.shown_url)

    async def close(self) -> None:
        await self._sender.close()
        await self._http.aclose()
