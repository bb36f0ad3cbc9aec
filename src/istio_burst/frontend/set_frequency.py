"""`python -m istio_burst.frontend.set_frequency F`: set the deployment's frequency from outside a
page (scripts, operators), through the same atomic step a page's change takes.

It reads the frontend's own settings (REDIS_URL, CHANNEL, MAX_FREQUENCY from the environment or
.env), so run it where a frontend runs: `kubectl exec deploy/frontend-deployment -- python -m
istio_burst.frontend.set_frequency 30`. Every replica follows within milliseconds.
"""

from __future__ import annotations

import asyncio
import sys

from istio_burst.core.redis import REDIS_DOWN_ERRORS, create_client, describe_error
from istio_burst.frontend.page.frequency_input import FrequencyError, parse_frequency
from istio_burst.frontend.replicas.shared_frequency import store_frequency
from istio_burst.frontend.settings import FrontendSettings


async def set_frequency(settings: FrontendSettings, frequency: float) -> int:
    client = create_client(settings.redis_url)
    try:
        return await store_frequency(client, settings.channel, frequency)
    finally:
        await client.aclose()


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m istio_burst.frontend.set_frequency F", file=sys.stderr)
        return 2
    settings = FrontendSettings()
    try:
        frequency = parse_frequency({"freq": _number(argv[0])}, settings.max_frequency)
        version = asyncio.run(set_frequency(settings, frequency))
    except FrequencyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except REDIS_DOWN_ERRORS as exc:
        print(f"error: Redis: {describe_error(exc)}", file=sys.stderr)
        return 1
    print(f"frequency {frequency:g} req/s (version {version})")
    return 0


def _number(text: str) -> object:
    try:
        return float(text)
    except ValueError:
        return text  # parse_frequency says what is wrong with it


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
