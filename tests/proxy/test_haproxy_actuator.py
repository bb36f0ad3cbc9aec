"""The haproxy actuator against a real HAProxy (the demo's config): reads and writes the weights
of servers primary and burst through the runtime API, and says clearly what went wrong."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.haproxy import HAProxyServer, runtime_command
from harness.ports import free_port
from harness.processes import ManagedProcess, require_binary
from istio_burst.core.contracts import PRIMARY_ONLY, Weights
from istio_burst.watcher.actuators import ActuatorError, ActuatorErrorKind
from istio_burst.watcher.actuators.haproxy import HAProxyActuator, parse_runtime_api

# Nobody listens on the workers' ports: the servers are down, their weights are still there.
NOWHERE = f"127.0.0.1:{free_port()}"


@pytest.fixture
def proxy(tmp_path: Path) -> Iterator[HAProxyServer]:
    server = HAProxyServer(tmp_path, NOWHERE, NOWHERE).start()
    yield server
    server.stop()


def weights_by_hand(proxy: HAProxyServer) -> tuple[str, str]:
    return (
        runtime_command(proxy.runtime_api, "get weight workers/primary"),
        runtime_command(proxy.runtime_api, "get weight workers/burst"),
    )


async def test_reads_the_config_weights_and_writes_new_ones(proxy: HAProxyServer) -> None:
    actuator = HAProxyActuator(proxy.runtime_api)
    seen = await actuator.read()
    assert (seen.weights, seen.exact) == (PRIMARY_ONLY, True)

    await actuator.write(seen, Weights(30, 70))

    assert weights_by_hand(proxy) == ("30 (initial 100)", "70 (initial 0)")
    again = await actuator.read()
    assert (again.weights, again.exact) == (Weights(30, 70), True)
    await actuator.write(again, Weights(30, 70))  # idempotent: same weights, same answer
    assert (await actuator.read()).weights == Weights(30, 70)


async def test_a_weight_changed_by_hand_since_the_read_is_a_conflict(proxy: HAProxyServer) -> None:
    actuator = HAProxyActuator(proxy.runtime_api)
    seen = await actuator.read()
    assert runtime_command(proxy.runtime_api, "set weight workers/burst 50") == ""

    with pytest.raises(ActuatorError) as caught:
        await actuator.write(seen, Weights(0, 100))

    assert caught.value.kind is ActuatorErrorKind.CONFLICT
    assert weights_by_hand(proxy) == ("100 (initial 100)", "50 (initial 0)")  # not overwritten
    fresh = await actuator.read()  # relative weights 100:50 read as a share, to be rewritten
    assert (fresh.weights, fresh.exact) == (Weights(67, 33), False)
    await actuator.write(fresh, Weights(0, 100))
    assert weights_by_hand(proxy) == ("0 (initial 100)", "100 (initial 0)")


async def test_both_weights_zero_is_refused(proxy: HAProxyServer) -> None:
    runtime_command(proxy.runtime_api, "set weight workers/primary 0")
    with pytest.raises(ActuatorError) as caught:
        await HAProxyActuator(proxy.runtime_api).read()
    assert caught.value.kind is ActuatorErrorKind.INVALID
    assert "both server weights are 0" in caught.value.detail


async def test_an_unknown_backend_is_not_found(proxy: HAProxyServer) -> None:
    with pytest.raises(ActuatorError) as caught:
        await HAProxyActuator(proxy.runtime_api, backend="nosuch").read()
    assert caught.value.kind is ActuatorErrorKind.NOT_FOUND
    assert "No such backend" in caught.value.detail


async def test_a_stopped_proxy_is_unreachable_and_a_restarted_one_has_its_config_weights(
    proxy: HAProxyServer,
) -> None:
    actuator = HAProxyActuator(proxy.runtime_api, timeout=2)
    await actuator.write(await actuator.read(), Weights(0, 100))
    proxy.stop()
    with pytest.raises(ActuatorError) as caught:
        await actuator.read()
    assert caught.value.kind is ActuatorErrorKind.UNREACHABLE
    assert proxy.runtime_api.removeprefix("tcp://") in caught.value.detail

    proxy.start()
    assert (await actuator.read()).weights == PRIMARY_ONLY


async def test_a_runtime_api_that_never_answers_times_out() -> None:
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts, never answers
        port = silent.getsockname()[1]
        actuator = HAProxyActuator(f"tcp://127.0.0.1:{port}", timeout=0.5)
        with pytest.raises(ActuatorError) as caught:
            await asyncio.wait_for(actuator.read(), 10)
    assert caught.value.kind is ActuatorErrorKind.TIMEOUT
    assert "0.5 s" in caught.value.detail


async def test_a_unix_socket_works_too(tmp_path: Path) -> None:
    # A short directory: a unix socket path is limited to 107 bytes.
    with tempfile.TemporaryDirectory(prefix="hap") as short:
        sock = f"{short}/api.sock"
        proxy = HAProxyServer(tmp_path, NOWHERE, NOWHERE, runtime_bind=sock)
        proc = proxy.start_unchecked()
        try:
            actuator = HAProxyActuator(f"unix://{sock}")

            async def read_when_up() -> Weights:
                while True:
                    with contextlib.suppress(ActuatorError):
                        return (await actuator.read()).weights
                    assert proc.alive(), proc.output()
                    await asyncio.sleep(0.1)

            assert await asyncio.wait_for(read_when_up(), 20) == PRIMARY_ONLY
            await actuator.write(await actuator.read(), Weights(40, 60))
            assert (await actuator.read()).weights == Weights(40, 60)
        finally:
            proxy.stop()
    with pytest.raises(ActuatorError) as caught:
        await HAProxyActuator(f"unix://{sock}").read()
    assert caught.value.kind is ActuatorErrorKind.UNREACHABLE


async def test_a_socket_without_admin_level_is_forbidden(tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "user-level.cfg"
    config.write_text(
        f"global\n    stats socket ipv4@127.0.0.1:{port} level user\n"
        "defaults\n    mode http\n    timeout connect 1s\n    timeout client 5s\n"
        "    timeout server 5s\n"
        f"backend workers\n    server primary {NOWHERE} weight 100\n"
        f"    server burst {NOWHERE} weight 0\n"
    )
    proc = ManagedProcess(
        "haproxy-user", [require_binary("haproxy"), "-db", "-f", str(config)], tmp_path
    )
    proc.start()
    try:
        api = f"tcp://127.0.0.1:{port}"
        actuator = HAProxyActuator(api)

        def answers() -> bool:
            try:
                return "(initial" in runtime_command(api, "get weight workers/primary")
            except OSError:
                return False

        proc.wait_until(answers, 20, "runtime API answers")
        seen = await actuator.read()  # `get weight` is allowed at level user
        with pytest.raises(ActuatorError) as caught:
            await actuator.write(seen, Weights(0, 100))
        assert caught.value.kind is ActuatorErrorKind.FORBIDDEN
        assert "level admin" in caught.value.detail
    finally:
        proc.stop()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("tcp://127.0.0.1:9999", "tcp://127.0.0.1:9999"),
        ("tcp://haproxy:9999", "tcp://haproxy:9999"),
        ("unix:///run/haproxy/admin.sock", "unix:///run/haproxy/admin.sock"),
    ],
)
def test_runtime_api_addresses(value: str, expected: str) -> None:
    assert str(parse_runtime_api(value)) == expected


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("127.0.0.1:9999", "tcp://host:port or unix:///path"),
        ("http://127.0.0.1:9999", "tcp://host:port or unix:///path"),
        ("tcp://127.0.0.1", "needs a host and a port"),
        ("tcp://127.0.0.1:99999", "out of range"),
        ("unix://relative.sock", "absolute path"),
    ],
)
def test_bad_runtime_api_addresses_say_what_is_wrong(value: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        parse_runtime_api(value)
