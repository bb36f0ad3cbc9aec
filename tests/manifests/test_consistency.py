"""What a cluster would only reveal at run time: names, labels, ports and settings that must agree
between the manifests, the Istio objects and the services' code."""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import Any

import orjson
import pytest

from istio_burst.core.contracts import BURST_ONLY, PRIMARY_ONLY, SUBSETS, Weights
from tests.manifests.manifests import (
    IMAGE_PREFIX,
    K8S,
    REPO,
    Obj,
    Rendered,
    command_of,
    container_port,
    containers,
    env_names,
    image_name,
    literal_env,
    load_yaml,
    mesh_setting,
    name_of,
    namespace_of,
    pod_labels,
    pod_spec,
    referenced_only,
    resolved_env,
    selects,
)
from tests.manifests.watcher_calls import Use, grants, uses_in, watcher_uses

# The label values each overlay gives its workers, by overlay (= subset) name.
OVERLAY_OF_SUBSET = {"primary": "primary", "burst": "burst"}


def settings_class(command: str) -> Any:
    module = importlib.import_module(f"istio_burst.{command}.main")
    return module.Settings


def our_containers(rendered: Rendered) -> list[tuple[Obj, Obj, str]]:
    """(deployment, container, istio-burst command) for every container running our code."""
    found = []
    for deployment in rendered.deployments:
        for container in containers(deployment):
            command = command_of(container)
            if command is not None:
                found.append((deployment, container, command))
    return found


def the_deployment_selected(rendered: Rendered, service: Obj) -> Obj | None:
    matches = [
        d for d in rendered.deployments if selects(service["spec"]["selector"], pod_labels(d))
    ]
    assert len(matches) <= 1, f"{name_of(service)} selects several Deployments"
    return matches[0] if matches else None


# --- Services, ports and probes ---------------------------------------------------------------


def test_every_service_reaches_a_declared_container_port(
    overlays: dict[str, Rendered],
) -> None:
    primary = overlays["primary"]
    for rendered in overlays.values():
        for service in rendered.services:
            deployment = the_deployment_selected(rendered, service)
            if deployment is None:
                # Only for DNS (redis-cache-service on burst): the same Service must select pods
                # in the primary cluster, where the mesh sends the connection.
                assert rendered.name == "burst", f"{name_of(service)} selects no pods"
                twin = primary.get("Service", name_of(service))
                assert twin["spec"]["selector"] == service["spec"]["selector"]
                assert twin["spec"]["ports"] == service["spec"]["ports"]
                deployment = the_deployment_selected(primary, twin)
                assert deployment is not None, f"{name_of(service)} selects no pods anywhere"
            for port in service["spec"]["ports"]:
                declared = [container_port(c, port["targetPort"]) for c in containers(deployment)]
                assert any(declared), (
                    f"{rendered.name}: {name_of(service)} targetPort {port['targetPort']} is "
                    f"not a port {name_of(deployment)} declares"
                )


def test_original_service_names_and_ports(primary: Rendered) -> None:
    ports = {
        name_of(s): [(p["port"], p["targetPort"]) for p in s["spec"]["ports"]]
        for s in primary.services
    }
    assert ports == {
        "frontend-service": [(80, "http")],
        "worker-service": [(80, "http")],
        "redis-cache-service": [(6379, "redis")],
    }
    container_ports = {
        name_of(d): [(p["name"], p["containerPort"]) for c in containers(d) for p in c["ports"]]
        for d in primary.deployments
    }
    assert container_ports == {
        "frontend-deployment": [("http", 8080)],
        "worker-deployment": [("http", 8081)],
        "redis-cache": [("redis", 6379)],
        "istiowatcher-deployment": [("http", 8090)],
    }


def test_service_ports_tell_istio_their_protocol(overlays: dict[str, Rendered]) -> None:
    # Istio picks the protocol from the port name (http, http-*, tcp-*) or appProtocol.
    for rendered in overlays.values():
        for service in rendered.services:
            for port in service["spec"]["ports"]:
                name = port.get("appProtocol") or port.get("name", "")
                assert re.fullmatch(r"(http|tcp)(-[a-z0-9-]+)?", name), name_of(service)


def test_probes_use_declared_ports_and_the_port_the_app_listens_on(
    overlays: dict[str, Rendered],
) -> None:
    for rendered in overlays.values():
        for deployment in rendered.deployments:
            for container in containers(deployment):
                for kind in ("readinessProbe", "livenessProbe"):
                    probe = container.get(kind)
                    assert probe, f"{name_of(deployment)}/{container['name']} has no {kind}"
                    action = probe.get("httpGet") or probe.get("tcpSocket")
                    assert action is not None, f"{kind} of {container['name']}"
                    assert container_port(container, action["port"]), (
                        f"{kind} of {container['name']} names port {action['port']}"
                    )
                if command_of(container) is not None:
                    # The app listens on PORT: it must be the port the manifest declares.
                    (port,) = container["ports"]
                    assert literal_env(container)["PORT"] == str(port["containerPort"])
                    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
                    assert annotations["prometheus.io/port"] == str(port["containerPort"])


def test_probe_paths_are_the_ones_each_service_serves(primary: Rendered) -> None:
    # Which paths answer 200 on the real processes: tests/manifests/test_live_probes.py.
    paths = {
        name_of(d): {
            kind: c[kind]["httpGet"]["path"]
            for c in containers(d)
            for kind in ("readinessProbe", "livenessProbe")
            if "httpGet" in c[kind]
        }
        for d in primary.deployments
    }
    assert paths == {
        "worker-deployment": {"readinessProbe": "/_healthz", "livenessProbe": "/"},
        "frontend-deployment": {"readinessProbe": "/_healthz", "livenessProbe": "/"},
        "istiowatcher-deployment": {"readinessProbe": "/healthz", "livenessProbe": "/livez"},
        "redis-cache": {},
    }


# --- Settings ------------------------------------------------------------------------------------


def test_every_env_var_is_a_setting_the_service_reads(overlays: dict[str, Rendered]) -> None:
    for rendered in overlays.values():
        for deployment, container, command in our_containers(rendered):
            settings = settings_class(command)
            known = {field.upper() for field in settings.model_fields}
            unknown = set(env_names(container)) - known - referenced_only(container)
            assert not unknown, (
                f"{rendered.name}: {name_of(deployment)} sets {sorted(unknown)}, which "
                f"`istio-burst {command}` does not read"
            )


def test_every_env_value_is_accepted_by_the_service(overlays: dict[str, Rendered]) -> None:
    # The settings' own validation (ports, URLs, modes, thresholds): a bad value here would be
    # a crash-looping pod.
    for rendered in overlays.values():
        for deployment, container, command in our_containers(rendered):
            env = resolved_env(deployment, container)
            settings = settings_class(command).model_validate(
                {name.lower(): value for name, value in env.items()}
            )
            assert settings.port == int(env["PORT"])


def test_burst_workers_prefix_their_hashes(overlays: dict[str, Rendered]) -> None:
    worker_env = {
        name: literal_env(containers(r.get("Deployment", "worker-deployment"))[0])
        for name, r in overlays.items()
    }
    assert worker_env["burst"]["PREFIX"] == "bursty-"
    assert "PREFIX" not in worker_env["primary"]
    # CLUSTER (in every message) is the subset name of the cluster the worker runs in.
    assert worker_env["primary"]["CLUSTER"] == "primary"
    assert worker_env["burst"]["CLUSTER"] == "burst"


def test_every_service_image_is_set_through_kustomize_images() -> None:
    # `images:` entries in the sub-bases make registry and tag settable from any overlay.
    declared = {
        entry["name"]
        for path in K8S.glob("base/*/kustomization.yaml")
        for doc in load_yaml(path)
        for entry in doc.get("images", [])
    }
    assert {f"{IMAGE_PREFIX}{n}" for n in ("worker", "frontend", "istiowatcher")} <= declared


def test_rendered_images_are_ours_or_redis(overlays: dict[str, Rendered]) -> None:
    for rendered in overlays.values():
        for deployment in rendered.deployments:
            for container in containers(deployment):
                assert image_name(container) in {
                    "istio-burst/worker",
                    "istio-burst/frontend",
                    "istio-burst/istiowatcher",
                    "redis",
                }, name_of(deployment)


# --- Security, resources, accounts ---------------------------------------------------------------

RESTRICTED_VOLUME_TYPES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}


def test_pods_meet_pod_security_restricted(overlays: dict[str, Rendered]) -> None:
    for rendered in overlays.values():
        for deployment in rendered.deployments:
            where = f"{rendered.name}/{name_of(deployment)}"
            spec = pod_spec(deployment)
            pod_security = spec["securityContext"]
            assert pod_security["runAsNonRoot"] is True, where
            assert pod_security["seccompProfile"] == {"type": "RuntimeDefault"}, where
            assert pod_security.get("runAsUser", 1) != 0, where
            for key in ("hostNetwork", "hostPID", "hostIPC"):
                assert not spec.get(key), where
            for volume in spec.get("volumes", []):
                assert set(volume) - {"name"} <= RESTRICTED_VOLUME_TYPES, where
            for container in containers(deployment):
                security = container["securityContext"]
                assert security["allowPrivilegeEscalation"] is False, where
                assert security["readOnlyRootFilesystem"] is True, where
                assert security["capabilities"] == {"drop": ["ALL"]}, where
                assert not security.get("privileged"), where
                assert all("hostPort" not in p for p in container["ports"]), where


def dockerfile_of(image: str) -> Path:
    return REPO / "services" / image.removeprefix(IMAGE_PREFIX) / "Dockerfile"


def test_our_images_are_the_ones_their_dockerfiles_build(primary: Rendered) -> None:
    # The user the image runs as, the command it starts and the port it exposes must be the
    # ones the manifest assumes (runAsUser, probes, containerPort).
    missing = []
    for deployment, container, command in our_containers(primary):
        dockerfile = dockerfile_of(image_name(container))
        if not dockerfile.exists():
            missing.append(str(dockerfile.relative_to(REPO)))
            continue
        text = dockerfile.read_text()
        security = pod_spec(deployment)["securityContext"]
        (user,) = re.findall(r"^USER\s+(\S+)\s*$", text, re.M)
        assert user == f"{security['runAsUser']}:{security['runAsGroup']}", dockerfile
        entrypoint = re.findall(r"^ENTRYPOINT\s+(.+)$", text, re.M)[-1]
        assert orjson.loads(entrypoint) == ["istio-burst", command], dockerfile
        exposed = re.findall(r"^EXPOSE\s+(\d+)", text, re.M)
        assert exposed in ([], [str(container["ports"][0]["containerPort"])]), dockerfile
    if missing:
        pytest.skip(f"not written yet (by the services' owners): {', '.join(missing)}")


def test_our_pods_run_as_uid_10001(overlays: dict[str, Rendered]) -> None:
    for rendered in overlays.values():
        for deployment, _container, _command in our_containers(rendered):
            security = pod_spec(deployment)["securityContext"]
            assert (security["runAsUser"], security["runAsGroup"]) == (10001, 10001)


def test_only_redis_writes_and_only_to_an_emptydir(primary: Rendered) -> None:
    # readOnlyRootFilesystem everywhere; redis-server's working directory is the one exception.
    for deployment in primary.deployments:
        mounts = {m["mountPath"] for c in containers(deployment) for m in c.get("volumeMounts", [])}
        volumes = {v["name"]: v for v in pod_spec(deployment).get("volumes", [])}
        if name_of(deployment) == "redis-cache":
            assert mounts == {"/data"}
            assert "emptyDir" in volumes["data"]
        else:
            assert mounts == set(), name_of(deployment)


def test_every_container_has_requests_and_limits(overlays: dict[str, Rendered]) -> None:
    for rendered in overlays.values():
        for deployment in rendered.deployments:
            for container in containers(deployment):
                resources = container["resources"]
                for bound in ("requests", "limits"):
                    assert set(resources[bound]) == {"cpu", "memory"}, name_of(deployment)


def test_one_service_account_per_workload(overlays: dict[str, Rendered]) -> None:
    for rendered in overlays.values():
        accounts = [pod_spec(d)["serviceAccountName"] for d in rendered.deployments]
        assert len(set(accounts)) == len(accounts), rendered.name
        declared = {name_of(a) for a in rendered.of_kind("ServiceAccount")}
        assert set(accounts) == declared, rendered.name


def test_only_the_watcher_gets_an_api_token(overlays: dict[str, Rendered]) -> None:
    for rendered in overlays.values():
        for deployment in rendered.deployments:
            mounted = pod_spec(deployment).get("automountServiceAccountToken", True)
            assert mounted is (name_of(deployment) == "istiowatcher-deployment"), name_of(
                deployment
            )


def test_replica_counts(overlays: dict[str, Rendered]) -> None:
    primary, burst = overlays["primary"], overlays["burst"]
    # Two frontends, spread over nodes, one kept through disruptions (issue 12).
    assert primary.get("Deployment", "frontend-deployment")["spec"]["replicas"] == 2
    # Two watchers, one writer: they elect a leader through the Lease (issue 18).
    watcher = primary.get("Deployment", "istiowatcher-deployment")
    assert watcher["spec"]["replicas"] == 2
    env = literal_env(containers(watcher)[0])
    assert env["LEADER_ELECTION"] == "true"
    assert name_of(primary.get("Lease", env["LEASE_NAME"])) == env["LEASE_NAME"]
    # On burst the autoscaler owns the count (a replicas field would reset it on every apply).
    assert "replicas" not in burst.get("Deployment", "worker-deployment")["spec"]
    autoscaler = burst.get("HorizontalPodAutoscaler", "worker-autoscaler")["spec"]
    assert autoscaler["scaleTargetRef"]["name"] == "worker-deployment"
    assert 1 <= autoscaler["minReplicas"] < autoscaler["maxReplicas"]


# --- The watcher, its Role and the Istio objects -------------------------------------------------

ISTIO_ACTUATOR = "istio_burst.watcher.actuators.istio"


def test_the_role_grants_exactly_what_the_watcher_calls(primary: Rendered) -> None:
    actuator = importlib.import_module(ISTIO_ACTUATOR)
    watcher = primary.get("Deployment", "istiowatcher-deployment")
    env = literal_env(containers(watcher)[0])
    used = watcher_uses(env["ACTUATOR"])
    virtual_service_verbs = {
        u.verb for u in used if (u.group, u.resource) == (actuator.GROUP, actuator.PLURAL)
    }
    assert virtual_service_verbs == set(actuator.VERBS), "the actuator's VERBS disagree with it"
    (role,) = primary.of_kind("Role")
    granted = grants(role)
    assert sorted(granted) == sorted(used), "the Role grants more or less than the code calls"
    for verb in actuator.VERBS:
        assert granted[Use(actuator.GROUP, actuator.PLURAL, verb)] == [env["VIRTUAL_SERVICE"]]


def test_the_call_scan_sees_every_kind_of_call() -> None:
    source = """
api = client.CustomObjectsApi(api_client)
api.get_namespaced_custom_object(GROUP, "v1", ns, PLURAL, name)
api.replace_namespaced_custom_object(GROUP, "v1", ns, PLURAL, name, body)
api.patch_namespaced_custom_object_status(GROUP, "v1", ns, PLURAL, name, body)
leases = client.CoordinationV1Api(api_client)
leases.read_namespaced_lease(name, ns)
leases.create_namespaced_lease(ns, body)
events = client.EventsV1Api(api_client)
events.patch_namespaced_event(name, ns, body)
watch.Watch().stream(events.list_namespaced_event, ns)
"""
    constants = {"GROUP": "networking.istio.io", "PLURAL": "virtualservices"}
    assert sorted(map(str, uses_in(source, constants))) == [
        "create leases.coordination.k8s.io",
        "get leases.coordination.k8s.io",
        "get virtualservices.networking.istio.io",
        "list events.events.k8s.io",
        "patch events.events.k8s.io",
        "patch virtualservices/status.networking.istio.io",
        "update virtualservices.networking.istio.io",
        "watch events.events.k8s.io",
    ]
    core = "client.CoreV1Api(c).create_namespaced_event(ns, body)"
    assert uses_in(core, {}) == {Use("", "events", "create")}


def test_the_watcher_account_is_bound_in_its_own_namespace_only(
    overlays: dict[str, Rendered],
) -> None:
    for rendered in overlays.values():
        assert not rendered.of_kind("ClusterRole")
        assert not rendered.of_kind("ClusterRoleBinding")
    primary = overlays["primary"]
    watcher = primary.get("Deployment", "istiowatcher-deployment")
    (binding,) = primary.of_kind("RoleBinding")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": name_of(primary.get("Role", "istiowatcher")),
    }
    assert binding["subjects"] == [
        {
            "kind": "ServiceAccount",
            "name": pod_spec(watcher)["serviceAccountName"],
            "namespace": namespace_of(watcher),
        }
    ]
    assert namespace_of(binding) == namespace_of(watcher)


def worker_virtual_service(istio_rendered: Rendered) -> Obj:
    return istio_rendered.get("VirtualService", "worker-virtual-service")


def route_weights(virtual_service: Obj) -> dict[str, int]:
    (http,) = virtual_service["spec"]["http"]
    return {d["destination"]["subset"]: d["weight"] for d in http["route"]}


def test_the_watchers_defaults_find_the_worker_virtual_service(
    primary: Rendered, istio_rendered: Rendered
) -> None:
    settings = settings_class("watcher")
    virtual_service = worker_virtual_service(istio_rendered)
    watcher = primary.get("Deployment", "istiowatcher-deployment")
    env = resolved_env(watcher, containers(watcher)[0])
    assert settings.model_fields["virtual_service"].default == name_of(virtual_service)
    assert env["VIRTUAL_SERVICE"] == name_of(virtual_service)
    assert env["NAMESPACE"] == namespace_of(virtual_service) == namespace_of(watcher)
    assert env["ACTUATOR"] == "istio"
    assert tuple(route_weights(virtual_service)) == SUBSETS


def test_the_watchers_default_query_names_our_workloads(primary: Rendered) -> None:
    # Istio labels requests with the Deployment's name and the Service's FQDN.
    query = settings_class("watcher").model_fields["query"].default
    worker_service = primary.get("Service", "worker-service")
    fqdn = f"{name_of(worker_service)}.{namespace_of(worker_service)}.svc.cluster.local"
    assert f'destination_service="{fqdn}"' in query
    frontend = primary.get("Deployment", "frontend-deployment")
    assert f'source_workload="{name_of(frontend)}"' in query
    assert 'reporter="source"' in query


def test_the_burst_error_query_is_the_watchers_own_example(primary: Rendered) -> None:
    watcher_settings = importlib.import_module("istio_burst.watcher.settings")
    watcher = primary.get("Deployment", "istiowatcher-deployment")
    query = literal_env(containers(watcher)[0])["BURST_ERROR_QUERY"]
    assert query == watcher_settings.KUBERNETES_BURST_ERROR_QUERY_EXAMPLE
    # destination_cluster is Istio's clusterName of the burst cluster, as scripts/ install it.
    assert f'destination_cluster="{mesh_setting("BURST_MESH_CLUSTER")}"' in query


def test_natural_and_burst_differ_only_in_the_weights(istio_files: dict[str, list[Obj]]) -> None:
    (natural,) = istio_files["natural.yaml"]
    (burst,) = istio_files["burst.yaml"]
    assert Weights.decode(route_weights(natural)) == PRIMARY_ONLY
    assert Weights.decode(route_weights(burst)) == BURST_ONLY

    def without_weights(vs: Obj) -> Obj:
        copy: Obj = {**vs, "spec": {**vs["spec"]}}
        copy["spec"]["http"] = [
            {**h, "route": [{k: v for k, v in d.items() if k != "weight"} for d in h["route"]]}
            for h in vs["spec"]["http"]
        ]
        return copy

    assert without_weights(natural) == without_weights(burst)


def test_the_worker_starts_natural(istio_rendered: Rendered) -> None:
    assert route_weights(worker_virtual_service(istio_rendered)) == PRIMARY_ONLY.as_dict()


def test_destination_rule_subsets_select_each_clusters_workers(
    overlays: dict[str, Rendered], istio_rendered: Rendered
) -> None:
    rule = istio_rendered.get("DestinationRule", "worker-destination-rule")
    subsets = {s["name"]: s["labels"] for s in rule["spec"]["subsets"]}
    assert tuple(subsets) == SUBSETS
    for subset, labels in subsets.items():
        for overlay, rendered in overlays.items():
            worker = rendered.get("Deployment", "worker-deployment")
            expected = overlay == OVERLAY_OF_SUBSET[subset]
            assert selects(labels, pod_labels(worker)) is expected, (
                f"subset {subset} {'misses' if expected else 'also selects'} the {overlay} "
                "cluster's workers"
            )


def service_fqdns(rendered: Rendered) -> dict[str, Obj]:
    return {f"{name_of(s)}.{namespace_of(s)}.svc.cluster.local": s for s in rendered.services}


def destinations(virtual_service: Obj) -> list[Obj]:
    spec = virtual_service["spec"]
    return [
        d["destination"]
        for protocol in ("http", "tcp", "tls")
        for route in spec.get(protocol, [])
        for d in route.get("route", [])  # a directResponse has none
    ]


def test_istio_routes_point_at_our_services_and_their_ports(
    primary: Rendered, istio_rendered: Rendered
) -> None:
    services = service_fqdns(primary)
    gateways = {name_of(g) for g in istio_rendered.of_kind("Gateway")}
    for virtual_service in istio_rendered.of_kind("VirtualService"):
        for gateway in virtual_service["spec"].get("gateways", []):
            assert gateway == "mesh" or gateway in gateways, name_of(virtual_service)
        for destination in destinations(virtual_service):
            service = services.get(destination["host"])
            assert service is not None, f"{name_of(virtual_service)}: {destination['host']}"
            ports = {p["port"] for p in service["spec"]["ports"]}
            assert destination["port"]["number"] in ports, name_of(virtual_service)
    rule = istio_rendered.get("DestinationRule", "worker-destination-rule")
    worker_hosts = {d["host"] for d in destinations(worker_virtual_service(istio_rendered))}
    assert worker_hosts == {rule["spec"]["host"]}
    redis = istio_rendered.get("VirtualService", "redis-virtual-service")
    assert [m["port"] for r in redis["spec"]["tcp"] for m in r["match"]] == [6379]


def test_the_page_is_served_through_the_ingress_gateway(istio_rendered: Rendered) -> None:
    gateway = istio_rendered.get("Gateway", "frontend-gateway")
    assert gateway["spec"]["selector"] == {"istio": "ingressgateway"}
    (server,) = gateway["spec"]["servers"]
    assert (server["port"]["number"], server["port"]["protocol"]) == (80, "HTTP")
    ingress = istio_rendered.get("VirtualService", "frontend-ingress-virtual-service")
    assert ingress["spec"]["gateways"] == ["frontend-gateway"]
    assert [d["host"] for d in destinations(ingress)] == [
        "frontend-service.default.svc.cluster.local"
    ]
