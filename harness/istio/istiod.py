"""istiod (`pilot-discovery discovery`, built from Istio's Go module) against a LocalKube.

It watches the API server as in a cluster: Services, EndpointSlices, WorkloadEntries and Istio's
configuration. It serves xDS in plaintext on loopback (what a proxy of ours connects to) and its
validating webhook over TLS, with a serving certificate for 127.0.0.1 signed by the API server's
own CA, registered under Istio's own webhook name, `validation.istio.io`. So a write to any Istio
object is admitted or refused by Istio's own validation code, with Istio's own message.
"""

from __future__ import annotations

import base64
import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from harness.istio.binaries import istio_bin_dir
from harness.kube import LocalKube
from harness.kube.pki import signed
from harness.ports import free_port
from harness.processes import ManagedProcess

NAMESPACE = "istio-system"
WEBHOOK_CONFIGURATION = "istio-burst-local-istiod"
WEBHOOK = "validation.istio.io"  # the name Istio's base chart gives its default validator
ISTIO_GROUPS = ("networking.istio.io", "security.istio.io", "telemetry.istio.io",
                "extensions.istio.io")  # fmt: skip


# istiod's settings for a proxy that is upstream Envoy, not istio-proxy. By default istiod puts
# Istio's metadata-exchange filter on every cluster, which upstream Envoy refuses (the whole CDS
# answer: "Didn't find a registered implementation for 'istio.metadata_exchange' with type URL:
# 'envoy.tcp.metadataexchange.config.MetadataExchange'"), and auto mTLS gives clusters TLS
# whose certificates come from istio-agent's SDS socket, which upstream Envoy waits for forever.
# Routes are the same either way.
UPSTREAM_ENVOY: dict[str, Any] = {
    "env": {"PILOT_ENABLE_METADATA_EXCHANGE": "false"},
    "mesh_config": {"enableAutoMtls": False},
}


class Istiod:
    """One istiod for `kube`, its files under `workdir`; stop() also unregisters its webhook
    (a webhook that fails closed would otherwise refuse every later Istio write)."""

    def __init__(
        self,
        kube: LocalKube,
        workdir: Path,
        bin_dir: Path | None = None,
        env: dict[str, str] | None = None,
        mesh_config: dict[str, Any] | None = None,
    ) -> None:
        self.kube = kube
        self.extra_env = env or {}
        self.mesh_config = mesh_config or {}
        self.workdir = workdir
        self.bin_dir = bin_dir or istio_bin_dir()
        self.grpc_port = free_port()  # plaintext xDS
        self.webhook_port = free_port()
        self.http_port = free_port()  # /ready and istiod's debug endpoints
        self.process: ManagedProcess | None = None

    @property
    def xds_address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.grpc_port)

    def start(self, timeout: float = 120.0) -> Istiod:
        try:
            self.kube.kubectl("create", "namespace", NAMESPACE, check=False)
            cert, key = self._serving_certificate()
            mesh = self.workdir / "etc" / "istio" / "config" / "mesh"  # its --meshConfig default
            mesh.parent.mkdir(parents=True, exist_ok=True)
            mesh.write_text(json.dumps(self.mesh_config))  # JSON is YAML
            self.process = ManagedProcess(
                "istiod", self._argv(cert, key), self.workdir / "logs", env=self._env(),
                cwd=self.workdir,  # its relative defaults (./etc/istio, ./var/lib/istio) land here
            ).start(fresh_log=True)  # fmt: skip
            self.process.wait_http_ok(f"http://127.0.0.1:{self.http_port}/ready", timeout)
            self.register_webhook(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _serving_certificate(self) -> tuple[Path, Path]:
        assert self.kube.pki is not None, "start the LocalKube first"
        pki_dir = self.workdir / "pki"
        pki_dir.mkdir(parents=True, exist_ok=True)
        cert = signed(
            pki_dir,
            "istiod",
            "/CN=istiod.istio-system.svc",
            [
                "subjectAltName=IP:127.0.0.1,DNS:istiod.istio-system.svc",
                "extendedKeyUsage=serverAuth",
            ],
            self.kube.pki,
        )
        return cert, pki_dir / "istiod.key"

    def _argv(self, cert: Path, key: Path) -> list[str]:
        def loopback(port: int) -> str:
            return f"127.0.0.1:{port}"

        assert self.kube.pki is not None
        return [
            str(self.bin_dir / "pilot-discovery"),
            "discovery",
            f"--kubeconfig={self.kube.kubeconfig}",
            f"--grpcAddr={loopback(self.grpc_port)}",
            f"--httpsAddr={loopback(self.webhook_port)}",
            f"--httpAddr={loopback(self.http_port)}",
            f"--secureGRPCAddr={loopback(free_port())}",
            f"--monitoringAddr={loopback(free_port())}",
            f"--ctrlz_port={free_port()}",
            # The serving certificate of the webhook (and of the TLS xDS port): ours, so that the
            # API server, which trusts only its own CA, can call the webhook at 127.0.0.1.
            f"--tlsCertFile={cert}",
            f"--tlsKeyFile={key}",
            f"--caCertFile={self.kube.pki.ca_cert}",
            "--log_output_level=default:info",
        ]

    def _env(self) -> dict[str, str]:
        # What a pod of Istio's chart gets from the downward API; the rest are Istio's defaults.
        pod = {"POD_NAMESPACE": NAMESPACE, "POD_NAME": "istiod-local", "REVISION": "default"}
        return {**pod, **self.extra_env}

    def register_webhook(self, timeout: float = 60.0) -> None:
        """Register the webhook; returns once the API server calls it."""
        self.kube.kubectl("apply", "-f", "-", input=json.dumps(self._webhook_configuration()))
        self._wait_for_probe(refused=True, timeout=timeout)

    def unregister_webhook(self, timeout: float = 60.0) -> None:
        """Remove the webhook; returns once the API server no longer calls it."""
        self.kube.kubectl(
            "delete", "validatingwebhookconfiguration", WEBHOOK_CONFIGURATION,
            "--ignore-not-found",
        )  # fmt: skip
        self._wait_for_probe(refused=False, timeout=timeout)

    @contextlib.contextmanager
    def webhook_unregistered(self) -> Iterator[None]:
        """The API without Istio's validation, as before istiod is installed or ready."""
        self.unregister_webhook()
        try:
            yield
        finally:
            self.register_webhook()

    def _webhook_configuration(self) -> dict[str, Any]:
        assert self.kube.pki is not None
        bundle = base64.b64encode(self.kube.pki.ca_cert.read_bytes()).decode()
        return {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": WEBHOOK_CONFIGURATION},
            "webhooks": [
                {
                    "name": WEBHOOK,
                    "clientConfig": {
                        "url": f"https://127.0.0.1:{self.webhook_port}/validate",
                        "caBundle": bundle,
                    },
                    "rules": [
                        {
                            "operations": ["CREATE", "UPDATE"],
                            "apiGroups": list(ISTIO_GROUPS),
                            "apiVersions": ["*"],
                            "resources": ["*"],
                        }
                    ],
                    "failurePolicy": "Fail",  # as Istio's chart once istiod is ready
                    "sideEffects": "None",
                    "admissionReviewVersions": ["v1"],
                }
            ],
        }

    def _wait_for_probe(self, *, refused: bool, timeout: float) -> None:
        """Until the API server does (or no longer does) refuse, through the webhook, what only
        Istio refuses: it learns of webhook configurations a moment after they are written."""
        probe = json.dumps(ALL_WEIGHTS_ZERO)
        deadline = time.monotonic() + timeout
        while True:
            done = self.kube.kubectl(
                "create", "--dry-run=server", "-f", "-", input=probe, check=False
            )
            refusing = done.returncode != 0 and WEBHOOK in done.stderr
            if refusing if refused else done.returncode == 0:
                return
            if time.monotonic() > deadline:
                state = "refuse" if refused else "admit"
                raise TimeoutError(f"the API server does not {state} the probe: {done.stderr}")
            time.sleep(0.2)

    def debug(self, endpoint: str, **params: str) -> Any:
        """One of istiod's debug endpoints (`configz`, `syncz`, `config_dump`...), as JSON."""
        answer = httpx.get(
            f"http://127.0.0.1:{self.http_port}/debug/{endpoint}", params=params, timeout=10
        )
        answer.raise_for_status()
        return answer.json()

    def stop(self) -> None:
        self.kube.kubectl(
            "delete", "validatingwebhookconfiguration", WEBHOOK_CONFIGURATION,
            "--ignore-not-found", check=False,
        )  # fmt: skip
        if self.process is not None:
            self.process.stop()


# A VirtualService that the CRD schema accepts and Istio's validation refuses.
ALL_WEIGHTS_ZERO = {
    "apiVersion": "networking.istio.io/v1",
    "kind": "VirtualService",
    "metadata": {"name": "istio-burst-webhook-probe", "namespace": "default"},
    "spec": {
        "hosts": ["probe.default.svc.cluster.local"],
        "http": [
            {
                "route": [
                    {"destination": {"host": "a.default.svc.cluster.local"}, "weight": 0},
                    {"destination": {"host": "b.default.svc.cluster.local"}, "weight": 0},
                ]
            }
        ],
    },
}
