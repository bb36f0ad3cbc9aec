"""The fences around Redis and the page's host name agree with the workloads they protect.

Redis wants a password (Secret redis-auth) that every service sends; Istio admits only the
worker, frontend and watcher identities to it, under namespace-wide STRICT mTLS; a NetworkPolicy
admits only their pods. The Istio Gateway answers one host name, which the frontend allows.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.manifests.manifests import (
    ISTIO_MANIFESTS,
    K8S,
    Obj,
    Rendered,
    containers,
    kustomize,
    load_yaml,
    name_of,
    namespace_of,
    pod_labels,
    pod_spec,
    resolved_env,
    selects,
)

REDIS_CLIENTS = ("worker-deployment", "frontend-deployment", "istiowatcher-deployment")


def istio_object(kind: str, name: str) -> Obj:
    found = [
        obj
        for path in ISTIO_MANIFESTS.glob("*.yaml")
        for obj in load_yaml(path)
        if obj.get("kind") == kind and name_of(obj) == name
    ]
    assert len(found) == 1, f"{kind} {name}: {len(found)} found"
    return found[0]


def secret_ref(container: Obj, name: str) -> dict[str, str]:
    (entry,) = [e for e in container.get("env", []) if e["name"] == name]
    ref: dict[str, str] = entry["valueFrom"]["secretKeyRef"]
    return ref


def test_every_redis_user_sends_the_password_from_the_secret(
    overlays: dict[str, Rendered],
) -> None:
    for rendered in overlays.values():
        users = [d for d in rendered.deployments if name_of(d) in REDIS_CLIENTS]
        assert users, rendered.name
        assert rendered.get("Secret", "redis-auth")["stringData"]["password"]
        for deployment in users:
            (container,) = containers(deployment)
            ref = secret_ref(container, "REDIS_PASSWORD")
            assert ref == {"name": "redis-auth", "key": "password"}, name_of(deployment)
            env = resolved_env(deployment, container)
            assert env["REDIS_URL"].startswith(f"redis://:{env['REDIS_PASSWORD']}@"), env
            assert env["API_DOCS"] == "false", name_of(deployment)
    redis = containers(overlays["primary"].get("Deployment", "redis-cache"))[0]
    assert secret_ref(redis, "REDIS_PASSWORD") == {"name": "redis-auth", "key": "password"}
    args = redis["args"]
    assert args[args.index("--requirepass") + 1] == "$(REDIS_PASSWORD)"


def test_only_the_three_service_accounts_reach_redis_under_strict_mtls(
    overlays: dict[str, Rendered],
) -> None:
    primary = overlays["primary"]
    redis = primary.get("Deployment", "redis-cache")
    policy = istio_object("AuthorizationPolicy", "redis-cache")
    assert namespace_of(policy) == namespace_of(redis)
    assert selects(policy["spec"]["selector"]["matchLabels"], pod_labels(redis))
    assert policy["spec"]["action"] == "ALLOW"
    (rule,) = policy["spec"]["rules"]
    (source,) = rule["from"]
    clients = [d for r in overlays.values() for d in r.deployments if name_of(d) in REDIS_CLIENTS]
    assert len(clients) == 4  # the burst cluster's workers too
    expected = {
        f"cluster.local/ns/{namespace_of(d)}/sa/{pod_spec(d)['serviceAccountName']}"
        for d in clients
    }
    assert set(source["source"]["principals"]) == expected
    port = containers(redis)[0]["ports"][0]["containerPort"]
    assert rule["to"] == [{"operation": {"ports": [str(port)]}}]

    mtls = istio_object("PeerAuthentication", "default")
    assert namespace_of(mtls) == namespace_of(redis)
    assert "selector" not in mtls["spec"], "the whole namespace"
    assert mtls["spec"]["mtls"]["mode"] == "STRICT"


def test_the_network_policy_admits_only_the_redis_clients_pods(primary: Rendered) -> None:
    redis = primary.get("Deployment", "redis-cache")
    policy = primary.get("NetworkPolicy", "redis-cache")
    assert selects(policy["spec"]["podSelector"]["matchLabels"], pod_labels(redis))
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    redis_rule = next(r for r in policy["spec"]["ingress"] if "from" in r)
    assert redis_rule["ports"] == [{"protocol": "TCP", "port": 6379}]
    (pods,) = [peer["podSelector"] for peer in redis_rule["from"] if "podSelector" in peer]
    (expression,) = pods["matchExpressions"]
    admitted = {
        name_of(d)
        for d in primary.deployments
        if expression["operator"] == "In"
        and pod_labels(d).get(expression["key"]) in expression["values"]
    }
    assert admitted == set(REDIS_CLIENTS)


def test_two_frontends_spread_over_nodes_and_one_survives_a_disruption(
    primary: Rendered,
) -> None:
    frontend = primary.get("Deployment", "frontend-deployment")
    budget = primary.get("PodDisruptionBudget", "frontend")
    assert selects(budget["spec"]["selector"]["matchLabels"], pod_labels(frontend))
    assert budget["spec"]["minAvailable"] == 1 < frontend["spec"]["replicas"]
    (spread,) = pod_spec(frontend)["topologySpreadConstraints"]
    assert spread["topologyKey"] == "kubernetes.io/hostname"
    assert selects(spread["labelSelector"]["matchLabels"], pod_labels(frontend))


def test_long_polling_pages_stay_on_their_frontend_replica(
    primary: Rendered, istio_rendered: Rendered
) -> None:
    """Two replicas, and Engine.IO keeps a long-polling session in one process: the frontend's
    DestinationRule pins a browser to a replica by a session cookie (WebSockets need none)."""
    service = primary.get("Service", "frontend-service")
    rule = istio_rendered.get("DestinationRule", "frontend-destination-rule")
    assert rule["spec"]["host"] == name_of(service)
    cookie = rule["spec"]["trafficPolicy"]["loadBalancer"]["consistentHash"]["httpCookie"]
    assert cookie["name"] and cookie["path"] == "/"


def hosts_in(istio: list[Obj], primary: list[Obj]) -> tuple[list[str], list[str], str]:
    gateway = next(o for o in istio if o["kind"] == "Gateway")
    route = next(o for o in istio if name_of(o) == "frontend-ingress-virtual-service")
    frontend = next(o for o in primary if name_of(o) == "frontend-deployment")
    allowed = resolved_env(frontend, containers(frontend)[0])["ALLOWED_HOSTS"]
    return gateway["spec"]["servers"][0]["hosts"], route["spec"]["hosts"], allowed


def test_the_gateway_answers_one_host_set_in_one_place(tmp_path: Path) -> None:
    gateway_hosts, route_hosts, allowed = hosts_in(
        kustomize(ISTIO_MANIFESTS), kustomize(K8S / "overlays" / "primary")
    )
    assert gateway_hosts == route_hosts == ["string-hashr.example.com"]  # the documented default
    assert allowed.split(",")[0] == "string-hashr.example.com"

    # Change it in k8s/frontend-host/: the gateway, its route and ALLOWED_HOSTS all follow.
    shutil.copytree(K8S, tmp_path / "k8s")
    shutil.copytree(ISTIO_MANIFESTS, tmp_path / "istio-manifests")
    host_file = tmp_path / "k8s" / "frontend-host" / "frontend-host.yaml"
    host_file.write_text(
        host_file.read_text().replace("host: string-hashr.example.com", "host: hashr.test")
    )
    gateway_hosts, route_hosts, allowed = hosts_in(
        kustomize(tmp_path / "istio-manifests"), kustomize(tmp_path / "k8s/overlays/primary")
    )
    assert gateway_hosts == route_hosts == ["hashr.test"]
    assert allowed.split(",") == [
        "hashr.test",
        "frontend-service",
        "frontend-service.default.svc.cluster.local",
        "localhost",
        "127.0.0.1",
    ]


def test_the_frontends_metrics_are_not_served_through_the_gateway(
    istio_rendered: Rendered,
) -> None:
    """The ingress route answers /metrics itself (404) before the catch-all to the frontend:
    Prometheus scrapes the pods inside the mesh; the public gets the page and socket.io only."""
    ingress = istio_rendered.get("VirtualService", "frontend-ingress-virtual-service")
    first, *rest = ingress["spec"]["http"]
    assert first["match"] == [{"uri": {"prefix": "/metrics"}}]
    assert first["directResponse"]["status"] == 404
    assert "route" not in first
    assert [r.get("match") for r in rest] == [None]  # then everything else to the frontend
