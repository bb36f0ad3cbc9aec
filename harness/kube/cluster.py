"""A real Kubernetes API on this machine: etcd and kube-apiserver on loopback, nothing else.

There is no scheduler, controller-manager or kubelet: objects are stored, validated, admitted
(PodSecurity, ServiceAccount, webhooks) and authorized (RBAC) exactly as on a cluster, but no
Pod ever runs and no controller acts. That is what the watcher and the manifests talk to.
"""

from __future__ import annotations

import shutil
import ssl
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import yaml

from harness.kube.binaries import kube_bin_dir
from harness.kube.pki import Pki, make_pki
from harness.ports import free_port
from harness.processes import ManagedProcess

CRDS = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "crds"
CRD_FILES = ("istio-1.30.yaml", "gateway-api-v1.6.1-standard.yaml")
CONTEXT = "local"
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"


class LocalKube:
    """etcd + kube-apiserver with their data under `workdir`; stop() removes nothing it did not
    make (the caller owns `workdir`)."""

    def __init__(self, workdir: Path, bin_dir: Path | None = None) -> None:
        self.workdir = workdir
        self.bin_dir = bin_dir or kube_bin_dir()
        self.port = free_port()
        self.server = f"https://127.0.0.1:{self.port}"
        self.kubeconfig = workdir / "kubeconfig"
        self.pki: Pki | None = None
        self.etcd: ManagedProcess | None = None
        self.apiserver: ManagedProcess | None = None

    @property
    def ca_file(self) -> Path:
        assert self.pki is not None, "start() first"
        return self.pki.ca_cert

    @property
    def kubectl_path(self) -> str:
        return str(self.bin_dir / "kubectl")

    def start(self, timeout: float = 60.0) -> LocalKube:
        try:
            self.pki = make_pki(self.workdir / "pki")
            self._start_etcd(timeout)
            self._write_admin_kubeconfig()
            self.start_apiserver(timeout)
            self._install_crds(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    # -- processes -------------------------------------------------------------------------

    def _start_etcd(self, timeout: float) -> None:
        client, peer = free_port(), free_port()
        self.etcd_url = f"http://127.0.0.1:{client}"
        self.etcd = ManagedProcess(
            "etcd",
            [
                str(self.bin_dir / "etcd"),
                "--name=local",
                f"--data-dir={self.workdir / 'etcd'}",
                f"--listen-client-urls={self.etcd_url}",
                f"--advertise-client-urls={self.etcd_url}",
                f"--listen-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-cluster=local=http://127.0.0.1:{peer}",
                "--unsafe-no-fsync",  # throw-away data: durability costs time and buys nothing
                "--log-level=warn",
            ],
            self.workdir / "logs",
        ).start(fresh_log=True)
        self.etcd.wait_http_ok(f"{self.etcd_url}/health", timeout)

    def _apiserver_argv(self) -> list[str]:
        assert self.pki is not None
        pki = self.pki
        return [
            str(self.bin_dir / "kube-apiserver"),
            f"--etcd-servers={self.etcd_url}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={self.port}",
            f"--tls-cert-file={pki.serving_cert}",
            f"--tls-private-key-file={pki.serving_key}",
            f"--client-ca-file={pki.ca_cert}",
            f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
            f"--service-account-key-file={pki.sa_pub}",
            f"--service-account-signing-key-file={pki.sa_key}",
            "--authorization-mode=RBAC",
            # As on real clusters: a privileged pod is PodSecurity's to refuse, per namespace.
            "--allow-privileged=true",
            # The default plugins include PodSecurity, ServiceAccount, NamespaceLifecycle and the
            # admission webhooks; named here so a reader sees what is enforced.
            "--enable-admission-plugins=NamespaceLifecycle,ServiceAccount,PodSecurity,"
            "ValidatingAdmissionWebhook,MutatingAdmissionWebhook,ResourceQuota",
            "--service-cluster-ip-range=10.96.0.0/16",
            "--profiling=false",
            "--v=1",
        ]

    def start_apiserver(self, timeout: float = 60.0) -> None:
        """Start (or restart, on the same port and data) the API server; returns when /readyz."""
        log_dir = self.workdir / "logs"
        first = self.apiserver is None
        self.apiserver = ManagedProcess("kube-apiserver", self._apiserver_argv(), log_dir)
        self.apiserver.start(fresh_log=first)
        self.apiserver.wait_until(self._ready, timeout, f"{self.server}/readyz answers ok")

    def stop_apiserver(self) -> None:
        """A real outage: the process is gone, the port refuses, etcd keeps the objects."""
        if self.apiserver is not None:
            self.apiserver.stop()

    def _ready(self) -> bool:
        try:
            with self.admin_client(timeout=2) as api:
                return api.get("/readyz").text == "ok"
        except httpx.HTTPError:
            return False

    # -- clients ---------------------------------------------------------------------------

    def _write_admin_kubeconfig(self) -> None:
        assert self.pki is not None
        self.kubeconfig.write_text(
            yaml.safe_dump(
                kubeconfig_for(
                    self.server,
                    "admin",
                    {
                        "client-certificate": str(self.pki.admin_cert),
                        "client-key": str(self.pki.admin_key),
                    },
                    ca=self.pki.ca_cert,
                )
            )
        )

    def tls(self) -> ssl.SSLContext:
        """Trusts this API server's certificate (and nothing else)."""
        return ssl.create_default_context(cafile=str(self.ca_file))

    def admin_client(self, timeout: float = 10.0) -> httpx.Client:
        """An HTTP client authenticated as the cluster admin (client certificate)."""
        assert self.pki is not None, "start() first"
        tls = self.tls()
        tls.load_cert_chain(str(self.pki.admin_cert), str(self.pki.admin_key))
        return httpx.Client(base_url=self.server, verify=tls, timeout=timeout)

    def delete_namespace(self, namespace: str, *collections: str) -> None:
        """Delete `namespace`, and first every object in each of its `collections` (API paths):
        with no namespace controller here a deleted namespace only turns Terminating and keeps
        what is in it, which an istiod watching this API still acts on."""
        with self.admin_client() as admin:
            for collection in collections:
                admin.delete(collection).raise_for_status()
            gone = admin.delete(f"/api/v1/namespaces/{namespace}")
            if gone.status_code != 404:
                gone.raise_for_status()

    def kubectl(
        self,
        *args: str,
        input: str | None = None,
        check: bool = True,
        timeout: float = 60.0,
        kubeconfig: Path | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run the pinned kubectl as the admin (or as `kubeconfig`'s user)."""
        done = subprocess.run(
            [self.kubectl_path, f"--kubeconfig={kubeconfig or self.kubeconfig}", *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and done.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)} failed:\n{done.stderr}")
        return done

    def service_account_token(self, namespace: str, name: str, seconds: int = 3600) -> str:
        """A token for the ServiceAccount from the TokenRequest API, as a pod would get one."""
        done = self.kubectl("create", "token", name, "-n", namespace, f"--duration={seconds}s")
        return done.stdout.strip()

    def service_account_kubeconfig(self, namespace: str, name: str, path: Path) -> Path:
        """A kubeconfig that authenticates as the ServiceAccount, with `namespace` as default."""
        token = self.service_account_token(namespace, name)
        config = kubeconfig_for(
            self.server,
            f"{namespace}-{name}",
            {"token": token},
            ca=self.ca_file,
            namespace=namespace,
        )
        path.write_text(yaml.safe_dump(config))
        return path

    # -- CRDs ------------------------------------------------------------------------------

    def _install_crds(self, timeout: float) -> None:
        """Create every CRD at once, then wait until each is Established and served.

        Straight through the API rather than `kubectl apply`: parsing 1.6 MB of YAML and the
        OpenAPI download made that the slowest step of starting.
        """
        crds = _crds()
        path = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
        deadline = time.monotonic() + timeout

        def create(api: httpx.Client, crd: dict[str, Any]) -> httpx.Response:
            # A server just ready has been seen to drop a TLS handshake or two under load.
            while True:
                try:
                    return api.post(path, json=crd)
                except httpx.TransportError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)

        with self.admin_client(timeout=timeout) as api, ThreadPoolExecutor(4) as pool:
            for answer in pool.map(lambda crd: create(api, crd), crds):
                if answer.status_code not in (201, 409):  # 409: already there (a restart)
                    raise RuntimeError(f"creating a CRD failed: {answer.text[:500]}")
            for crd in crds:
                name, group = crd["metadata"]["name"], crd["spec"]["group"]
                version = next(v["name"] for v in crd["spec"]["versions"] if v.get("storage"))
                served = f"/apis/{group}/{version}/{crd['spec']['names']['plural']}"
                while not (_established(api.get(f"{path}/{name}")) and api.get(served).is_success):
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"CRD {name} is not Established and served")
                    time.sleep(0.1)

    def stop(self) -> None:
        for process in (self.apiserver, self.etcd):
            if process is not None:
                process.stop()


def kubeconfig_for(
    server: str,
    user: str,
    credentials: dict[str, str],
    *,
    ca: Path | None = None,
    namespace: str | None = None,
) -> dict[str, Any]:
    """A kubeconfig (as a dict) with one context: `user` on `server`, in `namespace` if given;
    without `ca`, for a plain-HTTP server."""
    cluster = {"server": server, **({"certificate-authority": str(ca)} if ca else {})}
    context = {"cluster": CONTEXT, "user": user, **({"namespace": namespace} if namespace else {})}
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": CONTEXT, "cluster": cluster}],
        "users": [{"name": user, "user": credentials}],
        "contexts": [{"name": CONTEXT, "context": context}],
        "current-context": CONTEXT,
    }


@cache
def _crds() -> list[dict[str, Any]]:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: ten times faster
    return [
        doc
        for name in CRD_FILES
        for doc in yaml.load_all((CRDS / name).read_text(), Loader=loader)
        if doc
    ]


def _established(answer: httpx.Response) -> bool:
    if not answer.is_success:
        return False
    conditions = (answer.json().get("status") or {}).get("conditions") or []
    return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)


def remove(workdir: Path) -> None:
    shutil.rmtree(workdir, ignore_errors=True)
