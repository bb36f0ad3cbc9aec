"""Validating Istio objects against Istio's own CRD schemas, as strictly as `kubectl apply`.

The schemas are the `openAPIV3Schema` of the v1 CRDs in `tests/fixtures/istio/` (see its README:
Istio 1.30, Apache-2.0): networking.istio.io's routing objects and security.istio.io's
policies. The API server prunes unknown fields of a structural schema and, with kubectl's
default server-side field validation (Strict), rejects them: so every object schema that
declares its properties here also forbids others, unless it says it keeps unknown fields.
CEL rules (`x-kubernetes-validations`) are not evaluated.
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any

import jsonschema
import orjson

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "istio"
API_VERSION = "networking.istio.io/v1"
SECURITY_API_VERSION = "security.istio.io/v1"
SCHEMA_FILES = {
    "VirtualService": "virtualservice-v1.schema.json",
    "DestinationRule": "destinationrule-v1.schema.json",
    "Gateway": "gateway-v1.schema.json",
    "AuthorizationPolicy": "authorizationpolicy-v1.schema.json",
    "PeerAuthentication": "peerauthentication-v1.schema.json",
}
API_VERSIONS = {
    kind: SECURITY_API_VERSION
    if kind in {"AuthorizationPolicy", "PeerAuthentication"}
    else API_VERSION
    for kind in SCHEMA_FILES
}


def _forbid_unknown_fields(node: Any) -> None:
    if isinstance(node, dict):
        if (
            "properties" in node
            and "additionalProperties" not in node
            and not node.get("x-kubernetes-preserve-unknown-fields")
        ):
            node["additionalProperties"] = False
        for value in node.values():
            _forbid_unknown_fields(value)
    elif isinstance(node, list):
        for item in node:
            _forbid_unknown_fields(item)


@functools.cache
def strict_validator(kind: str) -> jsonschema.protocols.Validator:
    schema = orjson.loads((FIXTURES / SCHEMA_FILES[kind]).read_bytes())
    schema = copy.deepcopy(schema)
    _forbid_unknown_fields(schema)
    # The CRD schema covers spec and status; the API server adds the envelope.
    schema["properties"].update(
        {
            "apiVersion": {"const": API_VERSIONS[kind]},
            "kind": {"const": kind},
            "metadata": {
                "type": "object",
                "required": ["name"],
                "properties": {
                    "name": {"type": "string", "minLength": 1},
                    "namespace": {"type": "string"},
                    "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                    "annotations": {
                        "type": "object",
                        "additionalProperties": {"type": "string"},
                    },
                },
                "additionalProperties": False,
            },
        }
    )
    schema["required"] = ["apiVersion", "kind", "metadata", "spec"]
    validator_class = jsonschema.validators.validator_for(
        schema, default=jsonschema.Draft7Validator
    )
    return validator_class(schema)


def istio_errors(obj: dict[str, Any]) -> list[str]:
    """Every way `obj` breaks its kind's v1 schema (empty when it is valid)."""
    kind = obj.get("kind")
    if kind not in SCHEMA_FILES:
        return [f"kind {kind!r} is not one of {sorted(SCHEMA_FILES)}"]
    errors = strict_validator(str(kind)).iter_errors(obj)
    return [
        f"{'/'.join(str(p) for p in error.absolute_path) or '(top)'}: {error.message}"
        for error in sorted(errors, key=lambda e: list(map(str, e.absolute_path)))
    ]
