"""The watcher's RBAC is minimal and sufficient, as the real API server decides it: `kubectl auth
can-i --as=system:serviceaccount:<ns>:<account>` on the primary cluster, with the manifests
applied. What the watcher needs is read from its code (watcher_calls.py), the object names it may
touch from its Role; everything else must be refused.
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.kube import LocalKube
from tests.manifests.clusters import Applied
from tests.manifests.manifests import Rendered, containers, literal_env, namespace_of, pod_spec
from tests.manifests.watcher_calls import ALL_VERBS, Use, grants, watcher_uses

OTHER_NAMESPACES = ("kube-system", "elsewhere")
# A few of what it must never do, named so that a failure reads plainly; the --list comparison
# below covers everything else.
FORBIDDEN = (
    Use("", "secrets", "get"),
    Use("", "pods", "list"),
    Use("", "pods/exec", "create"),
    Use("apps", "deployments", "patch"),
    Use("networking.istio.io", "destinationrules", "patch"),
    Use("rbac.authorization.k8s.io", "rolebindings", "create"),
)


@dataclass(frozen=True)
class Identity:
    namespace: str
    account: str

    @property
    def user(self) -> str:
        return f"system:serviceaccount:{self.namespace}:{self.account}"


@dataclass(frozen=True)
class Check:
    """One `kubectl auth can-i` question and the answer it must get."""

    use: Use
    name: str
    namespace: str
    allowed: bool

    def __str__(self) -> str:
        asked = " ".join(self.use.can_i(self.name))
        return f"can-i {asked} -n {self.namespace} should be {'yes' if self.allowed else 'no'}"


@pytest.fixture(scope="module")
def watcher(deployed: Applied, primary: Rendered) -> Identity:
    deployment = primary.get("Deployment", "istiowatcher-deployment")
    return Identity(namespace_of(deployment), pod_spec(deployment)["serviceAccountName"])


@pytest.fixture(scope="module")
def needed(primary: Rendered) -> dict[Use, list[str]]:
    """Each permission the code uses (with the manifest's ACTUATOR), with the names the Role
    limits it to ([]: any name)."""
    (role,) = primary.of_kind("Role")
    granted = grants(role)
    watcher = primary.get("Deployment", "istiowatcher-deployment")
    actuator = literal_env(containers(watcher)[0])["ACTUATOR"]
    return {use: granted.get(use, []) for use in watcher_uses(actuator)}


def can_i(kube: LocalKube, who: Identity, check: Check) -> bool:
    args = ["auth", "can-i", *check.use.can_i(check.name), "-n", check.namespace]
    done = kube.kubectl(*args, f"--as={who.user}", check=False)
    assert done.stdout.strip() in ("yes", "no"), f"{' '.join(args)}: {done.stderr}"
    return done.stdout.strip() == "yes"


def wrong_answers(kube: LocalKube, who: Identity, checks: list[Check]) -> list[str]:
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda check: can_i(kube, who, check), checks))
    return [str(c) for c, answer in zip(checks, answers, strict=True) if answer != c.allowed]


def test_the_watcher_may_do_everything_its_code_does(
    deployed: Applied, watcher: Identity, needed: dict[Use, list[str]]
) -> None:
    checks = [
        Check(use, name, watcher.namespace, True)
        for use, names in needed.items()
        for name in names or [""]
    ]
    assert checks, "the watcher's code calls nothing?"
    assert not wrong_answers(deployed.clusters.primary, watcher, checks)


def test_only_on_its_own_objects_in_its_own_namespace(
    deployed: Applied, watcher: Identity, needed: dict[Use, list[str]]
) -> None:
    checks = []
    for use, names in needed.items():
        if names:  # limited to named objects: not another one, not the whole collection
            checks.append(Check(use, f"not-{names[0]}", watcher.namespace, False))
            checks.append(Check(use, "", watcher.namespace, False))
        for namespace in OTHER_NAMESPACES:
            for name in names or [""]:
                checks.append(Check(use, name, namespace, False))
    assert not wrong_answers(deployed.clusters.primary, watcher, checks)


def test_no_verb_its_code_does_not_use(
    deployed: Applied, watcher: Identity, needed: dict[Use, list[str]]
) -> None:
    names_of: dict[tuple[str, str], set[str]] = {}
    for use, names in needed.items():
        names_of.setdefault((use.group, use.resource), {""}).update(names)
    checks = [
        Check(Use(group, resource, verb), name, watcher.namespace, False)
        for (group, resource), names in names_of.items()
        for verb in ALL_VERBS
        if Use(group, resource, verb) not in needed
        for name in sorted(names)
    ]
    checks += [Check(use, "", watcher.namespace, False) for use in FORBIDDEN]
    assert not wrong_answers(deployed.clusters.primary, watcher, checks)


Rule = tuple[str, str, str]  # (resource.group, resource name or "", verb)
LIST_LINE = re.compile(
    r"^\s*(?:(?P<resource>[^\s\[]\S*)\s+)?\[(?P<urls>[^\]]*)\]\s+\[(?P<names>[^\]]*)\]"
    r"\s+\[(?P<verbs>[^\]]*)\]\s*$"
)


def rules(
    kube: LocalKube, namespace: str, who: str = "", kubeconfig: Path | None = None
) -> set[Rule]:
    """What `kubectl auth can-i --list` says an account may do on resources in `namespace`."""
    args = ["auth", "can-i", "--list", "-n", namespace] + ([f"--as={who}"] if who else [])
    lines = kube.kubectl(*args, kubeconfig=kubeconfig).stdout.splitlines()
    found: set[Rule] = set()
    for line in lines[1:]:
        match = LIST_LINE.match(line)
        assert match, f"cannot read this line of can-i --list: {line!r}"
        if match["resource"]:
            for verb in match["verbs"].split():
                for name in match["names"].split() or [""]:
                    found.add((match["resource"], name, verb))
    return found


def test_its_rules_are_exactly_what_its_code_uses(
    deployed: Applied, watcher: Identity, needed: dict[Use, list[str]], tmp_path: Path
) -> None:
    # Against an account with no binding at all: what every account gets (asking about its own
    # rights) is the same for both, so the difference is what the Role adds.
    kube = deployed.clusters.primary
    nobody = Identity(watcher.namespace, "nobody-at-all").user
    expected = {
        (use.target, name, use.verb) for use, names in needed.items() for name in names or [""]
    }
    assert rules(kube, watcher.namespace, watcher.user) - rules(
        kube, watcher.namespace, nobody
    ) == (expected)
    for namespace in OTHER_NAMESPACES:
        assert rules(kube, namespace, watcher.user) == rules(kube, namespace, nobody), namespace
    # The same with the account's own token (TokenRequest, as its pod gets one), no impersonation.
    own = kube.service_account_kubeconfig(watcher.namespace, watcher.account, tmp_path / "sa")
    assert rules(kube, watcher.namespace, kubeconfig=own) == rules(
        kube, watcher.namespace, watcher.user
    )
