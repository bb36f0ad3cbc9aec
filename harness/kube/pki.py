"""The certificates and keys a local API server needs, made with the `openssl` command.

One CA signs the API server's serving certificate and every client certificate, so a kubeconfig
needs only that CA. A separate RSA key pair signs ServiceAccount tokens (the TokenRequest API).
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from harness.processes import require_binary

DAYS = "2"  # a test cluster lives minutes; a short life limits what a leaked key could do


@dataclass(frozen=True)
class Pki:
    ca_cert: Path
    ca_key: Path
    serving_cert: Path
    serving_key: Path
    sa_key: Path  # signs ServiceAccount tokens
    sa_pub: Path  # verifies them
    admin_cert: Path
    admin_key: Path


def _openssl(*args: str) -> None:
    done = subprocess.run(
        [require_binary("openssl"), *args], capture_output=True, text=True, timeout=60
    )
    if done.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args[:2])} failed:\n{done.stderr}")


def _ec_key(path: Path) -> None:
    _openssl(
        "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", str(path)
    )  # fmt: skip


def signed(pki_dir: Path, name: str, subject: str, extensions: list[str], ca: Pki) -> Path:
    """A certificate for `<name>.key`, signed by the CA, valid for DAYS."""
    key, cert = pki_dir / f"{name}.key", pki_dir / f"{name}.crt"
    _ec_key(key)
    ext_args = [arg for ext in extensions for arg in ("-addext", ext)]
    _openssl(
        "req", "-new", "-x509", "-key", str(key), "-out", str(cert), "-days", DAYS,
        "-subj", subject, "-CA", str(ca.ca_cert), "-CAkey", str(ca.ca_key), *ext_args,
    )  # fmt: skip
    return cert


def make_pki(pki_dir: Path) -> Pki:
    pki_dir.mkdir(parents=True, exist_ok=True)
    ca_key, ca_cert = pki_dir / "ca.key", pki_dir / "ca.crt"
    _ec_key(ca_key)
    _openssl(
        "req", "-new", "-x509", "-key", str(ca_key), "-out", str(ca_cert), "-days", DAYS,
        "-subj", "/CN=istio-burst-local-ca",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    )  # fmt: skip
    sa_key, sa_pub = pki_dir / "sa.key", pki_dir / "sa.pub"
    _openssl(
        "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", str(sa_key)
    )  # fmt: skip
    _openssl("pkey", "-in", str(sa_key), "-pubout", "-out", str(sa_pub))
    partial = Pki(ca_cert, ca_key, ca_cert, ca_key, sa_key, sa_pub, ca_cert, ca_key)
    serving = signed(
        pki_dir,
        "apiserver",
        "/CN=kube-apiserver",
        [
            "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes.default.svc",
            "extendedKeyUsage=serverAuth",
        ],
        partial,
    )
    # O=system:masters: the group the API server's RBAC lets do everything (kubeadm's admin).
    admin = signed(
        pki_dir,
        "admin",
        "/O=system:masters/CN=istio-burst-admin",
        ["extendedKeyUsage=clientAuth"],
        partial,
    )
    return Pki(
        ca_cert=ca_cert,
        ca_key=ca_key,
        serving_cert=serving,
        serving_key=pki_dir / "apiserver.key",
        sa_key=sa_key,
        sa_pub=sa_pub,
        admin_cert=admin,
        admin_key=pki_dir / "admin.key",
    )
