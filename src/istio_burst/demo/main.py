"""`istio-burst demo`: redis, Prometheus, both workers, frontend and watcher on this machine."""

from __future__ import annotations

import shutil
import signal
import sys
from pathlib import Path
from types import FrameType

from istio_burst.core.prometheus_process import is_ready, prepare_config, prometheus_command
from istio_burst.demo.settings import DemoSettings as Settings
from istio_burst.demo.supervisor import (
    Component,
    DemoError,
    Supervisor,
    http_answers,
    http_ok,
    port_in_use,
    redis_pong,
    require_binary,
)
from istio_burst.watcher.settings import LOCAL_BURST_ERROR_QUERY, LOCAL_QUERY

__all__ = ["Settings", "run"]


def say(line: str) -> None:
    print(line, flush=True)


def build_components(s: Settings, state_dir: Path) -> list[Component]:
    istio_burst = [sys.executable, "-m", "istio_burst.cli"]
    host = s.bind
    redis_url = f"redis://{host}:{s.redis_port}/0"
    common = {"LOG_FORMAT": s.log_format, "LOG_LEVEL": s.log_level, "REDIS_URL": redis_url}
    worker_url = {
        "primary": f"http://{host}:{s.primary_port}",
        "burst": f"http://{host}:{s.burst_port}",
    }

    prom_dir = state_dir / "prometheus"
    prom_config = prepare_config(
        prom_dir,
        {
            "frontend": [f"{host}:{s.frontend_port}"],
            "worker-primary": [f"{host}:{s.primary_port}"],
            "worker-burst": [f"{host}:{s.burst_port}"],
            "watcher": [f"{host}:{s.watcher_port}"],
        },
    )

    def worker(side: str, port: int, prefix: str) -> Component:
        return Component(
            name=f"worker-{side}",
            argv=[*istio_burst, "worker"],
            port=port,
            ready=http_ok(f"{worker_url[side]}/_healthz"),
            env={
                **common,
                "HOST": host,
                "PORT": str(port),
                "PREFIX": prefix,
                "CLUSTER": side,
                "WORKER_NAME": f"worker-{side}",
            },
        )

    return [
        Component(
            name="redis",
            argv=[
                require_binary("redis-server", "redis-server"),
                "--port",
                str(s.redis_port),
                "--bind",
                host,
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(state_dir),
            ],
            port=s.redis_port,
            ready=redis_pong(host, s.redis_port),
        ),
        Component(
            name="prometheus",
            argv=prometheus_command(
                require_binary("prometheus", "prometheus"),
                str(prom_config),
                str(prom_dir / "data"),
                s.prometheus_port,
                host,
            ),
            port=s.prometheus_port,
            ready=lambda: is_ready(f"http://{host}:{s.prometheus_port}"),
        ),
        worker("primary", s.primary_port, ""),
        worker("burst", s.burst_port, "bursty-"),
        Component(
            name="frontend",
            argv=[*istio_burst, "frontend"],
            port=s.frontend_port,
            ready=http_ok(f"http://{host}:{s.frontend_port}/_healthz"),
            env={
                **common,
                "HOST": host,
                "PORT": str(s.frontend_port),
                "PROCESSOR_URL": f"primary={worker_url['primary']},burst={worker_url['burst']}",
            },
            hint="If it says the page's assets are missing, run ./run setup.",
        ),
        Component(
            name="watcher",
            argv=[*istio_burst, "watcher"],
            port=s.watcher_port,
            ready=http_answers(f"http://{host}:{s.watcher_port}/status"),
            env={
                **common,
                "HOST": host,
                "PORT": str(s.watcher_port),
                "ACTUATOR": "local",
                "PROMETHEUS_URL": f"http://{host}:{s.prometheus_port}",
                "QUERY": LOCAL_QUERY,
                "MODE": s.mode,
                "HIGH": str(s.high),
                "LOW": str(s.low),
                "STABILIZATION_WINDOW": str(s.stabilization_window),
                "BURST_HEALTH_URL": f"{worker_url['burst']}/_healthz",
                "BURST_ERROR_QUERY": LOCAL_BURST_ERROR_QUERY,
            },
        ),
    ]


def preflight(components: list[Component], bind: str) -> None:
    for c in components:
        if port_in_use(bind, c.port):
            flag = {
                "redis": "redis",
                "prometheus": "prometheus",
                "worker-primary": "primary",
                "worker-burst": "burst",
                "frontend": "frontend",
                "watcher": "watcher",
            }[c.name]
            raise DemoError(
                f"port {c.port} ({c.name}) is already in use. Stop what listens there "
                f"(ss -ltnp 'sport = :{c.port}') or pick another: --{flag}-port PORT "
                f"(env DEMO_{flag.upper()}_PORT)."
            )


def run(settings: Settings) -> int:
    if settings.low >= settings.high:
        say(f"error: LOW ({settings.low:g}) must be below HIGH ({settings.high:g})")
        return 2
    state_dir = settings.state_dir.resolve()
    log_dir = state_dir / "logs"
    shutil.rmtree(state_dir, ignore_errors=True)
    state_dir.mkdir(parents=True)

    supervisor = Supervisor(log_dir, say, settings.start_timeout)

    def request_stop(signum: int, _: FrameType | None) -> None:
        say(f"\n{signal.Signals(signum).name}: stopping the demo")
        supervisor.stop_requested.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)

    exit_code = 0
    try:
        components = build_components(settings, state_dir)
        preflight(components, settings.bind)
        say(f"starting String Hashr (logs: {log_dir}/<component>.log)")
        for component in components:
            supervisor.start(component)
            if supervisor.stop_requested.is_set():
                break
            say(f"  ready  {component.name:<15} http://{settings.bind}:{component.port}")
        else:
            say("")
            say(f"String Hashr is running: open http://{settings.bind}:{settings.frontend_port}")
            say(
                f"  Prometheus http://{settings.bind}:{settings.prometheus_port}  "
                f"watcher http://{settings.bind}:{settings.watcher_port}/status  "
                f"logs {log_dir}  (Ctrl-C stops everything)"
            )
            supervisor.watch()
    except DemoError as exc:
        say(f"error: {exc}")
        exit_code = 1
    finally:
        supervisor.stop_all()
    say("demo stopped" if exit_code == 0 else "demo stopped after an error")
    return exit_code
