"""`istio-burst demo`: redis, Prometheus, both workers, frontend and watcher on this machine."""

from __future__ import annotations

import shutil
import signal
import sys
from pathlib import Path
from types import FrameType

from istio_burst.demo import haproxy, mesh, redis_server
from istio_burst.demo.prometheus import is_ready, prepare_config, prometheus_command
from istio_burst.demo.settings import DemoSettings as Settings
from istio_burst.demo.supervisor import (
    Component,
    DemoError,
    Supervisor,
    http_answers,
    http_ok,
    port_in_use,
    require_binary,
)
from istio_burst.watcher import overrides
from istio_burst.watcher.settings import LOCAL_BURST_ERROR_QUERY, LOCAL_QUERY, thresholds_problem

__all__ = ["Settings", "run"]


CLI_ENV_FILE = "watcher.env"


def say(line: str) -> None:
    print(line, flush=True)


def watcher_commands(s: Settings, state_dir: Path) -> list[str]:
    """How to read and take over the watcher from a terminal while the demo runs."""
    installed = Path(sys.executable).with_name("istio-burst")
    cli = f"{installed if installed.exists() else 'istio-burst'} watcher"
    env_file = f"--env-file {state_dir / CLI_ENV_FILE}"
    if s.mesh == "istio":  # the override is an annotation on the routed VirtualService
        take_over = (
            f"kubectl annotate virtualservice worker-virtual-service --overwrite "
            f"{overrides.ANNOTATION}=burst  (KUBECONFIG as above; or primary, pause)"
        )
    else:
        take_over = f"{cli} override burst --for 10m {env_file}  (or primary, pause, clear)"
    return [f"  watcher's decisions: {cli} status {env_file}", f"  take over: {take_over}"]


def build_components(s: Settings, state_dir: Path) -> list[Component]:
    istio_burst = [sys.executable, "-m", "istio_burst.cli"]
    host = s.bind
    redis_password = s.redis_password or redis_server.new_password()
    redis_url = redis_server.redis_url(s.redis_port, redis_password)
    common = {"LOG_FORMAT": s.log_format, "LOG_LEVEL": s.log_level, "REDIS_URL": redis_url}
    # For `istio-burst watcher status|override --env-file`: the password is only in this demo.
    redis_server.write_private(
        state_dir / CLI_ENV_FILE,
        f"REDIS_URL='{redis_url}'\nWATCHER_URL='http://{host}:{s.watcher_port}'\n",
    )
    worker_url = {
        "primary": f"http://{host}:{s.primary_port}",
        "burst": f"http://{host}:{s.burst_port}",
    }
    proxy = haproxy.ProxyPorts(host, s.proxy_port, s.proxy_metrics_port, s.proxy_api_port)
    istio = s.mesh == "istio"
    proxy_url = f"http://127.0.0.1:{s.proxy_port}" if istio else proxy.url
    # Envoy's metrics are on its admin, which listens on 127.0.0.1 only, whatever DEMO_BIND is.
    envoy_metrics = f"{mesh.ENVOY_ADMIN_HOST}:{s.proxy_metrics_port}"
    proxy_metrics = envoy_metrics if istio else proxy.metrics_address

    prom_dir = state_dir / "prometheus"
    prom_config = prepare_config(
        prom_dir,
        {
            "frontend": [f"{host}:{port}" for port in frontend_ports(s)],
            "worker-primary": [f"{host}:{s.primary_port}"],
            "worker-burst": [f"{host}:{s.burst_port}"],
            "envoy" if istio else "haproxy": [proxy_metrics],
            "watcher": [f"{host}:{s.watcher_port}"],
        },
        {"envoy": mesh.ENVOY_METRICS_PATH},
    )

    def frontend(index: int, port: int) -> Component:
        return Component(
            name="frontend" if index == 0 else f"frontend-{index + 1}",
            argv=[*istio_burst, "frontend"],
            port=port,
            ready=http_ok(f"http://{host}:{port}/_healthz"),
            env={
                **common,
                "HOST": host,
                "PORT": str(port),
                "PROCESSOR_URL": proxy_url,
            },
            hint="If it says the page's assets are missing, run ./run setup.",
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

    def data_plane() -> Component:
        if istio:
            return mesh.mesh_component(
                s, state_dir, {"primary": s.primary_port, "burst": s.burst_port}
            )
        return Component(
            name="haproxy",
            argv=haproxy.haproxy_command(
                require_binary("haproxy", "haproxy"), haproxy.prepare_config(state_dir / "haproxy")
            ),
            port=s.proxy_port,
            ready=lambda: haproxy.is_ready(proxy),
            env=haproxy.proxy_env(proxy, f"{host}:{s.primary_port}", f"{host}:{s.burst_port}"),
        )

    actuator = (
        mesh.watcher_env(state_dir)
        if istio
        else {
            "ACTUATOR": "haproxy",
            "HAPROXY_RUNTIME_API": proxy.runtime_api,
            "QUERY": LOCAL_QUERY,
            "BURST_ERROR_QUERY": LOCAL_BURST_ERROR_QUERY,
        }
    )
    return [
        Component(
            name="redis",
            argv=[
                require_binary("redis-server", "redis-server"),
                str(
                    redis_server.write_config(
                        state_dir / "redis.conf", s.redis_port, redis_password, state_dir
                    )
                ),
            ],
            port=s.redis_port,
            ready=lambda: redis_server.answers(redis_url),
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
        data_plane(),
        *(frontend(i, port) for i, port in enumerate(frontend_ports(s))),
        Component(
            name="watcher",
            argv=[*istio_burst, "watcher"],
            port=s.watcher_port,
            ready=http_answers(f"http://{host}:{s.watcher_port}/status"),
            env={
                **common,
                "HOST": host,
                "PORT": str(s.watcher_port),
                **actuator,
                "PROMETHEUS_URL": f"http://{host}:{s.prometheus_port}",
                "MODE": s.mode,
                "HIGH": str(s.high),
                "LOW": str(s.low),
                "STABILIZATION_WINDOW": str(s.stabilization_window),
            },
        ),
    ]


def frontend_ports(s: Settings) -> list[int]:
    """--frontends N: N replicas on consecutive ports from --frontend-port."""
    return [s.frontend_port + i for i in range(s.frontends)]


def preflight(components: list[Component], s: Settings) -> None:
    frontends = [c for c in components if c.name.startswith("frontend")]
    for c in components:
        if c not in frontends and c.port in {f.port for f in frontends}:
            raise DemoError(
                f"--frontends {len(frontends)} needs ports {frontends[0].port}-"
                f"{frontends[-1].port}, and {c.name} listens on {c.port}: start the frontends "
                f"elsewhere, e.g. --frontend-port 8100"
            )
    # HAProxy listens on two more ports than its component's own.
    ports = [(c.port, c.name) for c in components] + [
        (s.proxy_metrics_port, "haproxy exporter"),
        (s.proxy_api_port, "haproxy runtime API"),
    ]
    for port, name in ports:
        host = {"redis": redis_server.REDIS_HOST, "haproxy runtime API": haproxy.API_HOST}.get(
            name, s.bind
        )
        if port_in_use(host, port):
            flag = {
                "redis": "redis",
                "prometheus": "prometheus",
                "worker-primary": "primary",
                "worker-burst": "burst",
                "haproxy": "proxy",
                "haproxy exporter": "proxy-metrics",
                "haproxy runtime API": "proxy-api",
                "watcher": "watcher",
            }.get(name, "frontend")
            raise DemoError(
                f"port {port} ({name}) is already in use. Stop what listens there "
                f"(ss -ltnp 'sport = :{port}') or pick another: --{flag}-port PORT "
                f"(env DEMO_{flag.upper().replace('-', '_')}_PORT)."
            )


def where(component: Component, s: Settings, state_dir: Path) -> str:
    """What to print beside a ready component: its address (no password)."""
    if component.name == "redis":
        return (
            f"redis://{redis_server.REDIS_HOST}:{component.port} "
            f"(password in {state_dir / 'redis.conf'})"
        )
    if component.name == "mesh":
        return (
            f"Envoy http://127.0.0.1:{component.port}  admin http://{mesh.ENVOY_ADMIN_HOST}:"
            f"{s.proxy_metrics_port}  KUBECONFIG={state_dir / mesh.ADMIN_KUBECONFIG}"
        )
    if component.name == "haproxy":
        return (
            f"http://{s.bind}:{component.port}  metrics http://{s.bind}:{s.proxy_metrics_port}"
            f"/metrics  runtime API tcp://{haproxy.API_HOST}:{s.proxy_api_port}"
        )
    return f"http://{s.bind}:{component.port}"


def run(settings: Settings) -> int:
    if problem := thresholds_problem(settings.low, settings.high):
        say(f"error: {problem}")
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
        preflight(components, settings)
        say(f"starting String Hashr (logs: {log_dir}/<component>.log)")
        for component in components:
            supervisor.start(component)
            if supervisor.stop_requested.is_set():
                break
            say(f"  ready  {component.name:<15} {where(component, settings, state_dir)}")
        else:
            say("")
            say(f"String Hashr is running: open http://{settings.bind}:{settings.frontend_port}")
            if settings.frontends > 1:
                others = ", ".join(str(p) for p in frontend_ports(settings)[1:])
                say(f"  the same page from the other frontends on ports {others}")
            say(
                f"  Prometheus http://{settings.bind}:{settings.prometheus_port}  "
                f"watcher http://{settings.bind}:{settings.watcher_port}/status  "
                f"logs {log_dir}  (Ctrl-C stops everything)"
            )
            for line in watcher_commands(settings, state_dir):
                say(line)
            supervisor.watch()
    except DemoError as exc:
        say(f"error: {exc}")
        exit_code = 1
    finally:
        supervisor.stop_all()
    say("demo stopped" if exit_code == 0 else "demo stopped after an error")
    return exit_code
