"""Reduce an upstream CRD or core schema file to what validation reads.

    python clusters/backends/kubernetes/schemas/reduce.py UPSTREAM_FILE OUT_FILE

Keeps a CRD's group, names and, per version, its name, served/storage flags and
``openAPIV3Schema``; drops every schema node's ``description`` (prose, about 80 %
of the bytes) and nothing else, so a manifest passes or fails exactly as against
the upstream file. Core schema files (JSON) keep their shape, minus descriptions.
Property *names* called ``description`` (e.g. a KServe field) are kept: only the
keyword is removed, never a member of ``properties``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml

# Keywords whose value maps names to schemas (not schema keywords themselves).
NAMED_SCHEMAS = ("properties", "patternProperties", "definitions", "$defs")
# Keywords whose value is a schema or a list of schemas.
SUB_SCHEMAS = ("items", "additionalProperties", "additionalItems", "not", "allOf", "anyOf", "oneOf", "prefixItems")


def strip(node: Any) -> Any:
    """A schema node without ``description`` keywords, recursively."""
    if isinstance(node, list):
        return [strip(item) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "description":
            continue
        if key in NAMED_SCHEMAS and isinstance(value, dict):
            out[key] = {name: strip(sub) for name, sub in value.items()}
        elif key in SUB_SCHEMAS:
            out[key] = strip(value)
        else:
            out[key] = value
    return out


def reduce_crd(crd: dict[str, Any]) -> dict[str, Any]:
    spec = crd["spec"]
    return {
        "apiVersion": crd["apiVersion"],
        "kind": crd["kind"],
        "metadata": {"name": crd["metadata"]["name"]},
        "spec": {
            "group": spec["group"],
            "names": spec["names"],
            "scope": spec.get("scope"),
            "versions": [
                {
                    "name": version["name"],
                    "served": version.get("served", True),
                    "storage": version.get("storage", False),
                    "schema": {"openAPIV3Schema": strip(version["schema"]["openAPIV3Schema"])},
                }
                for version in spec["versions"]
            ],
        },
    }


def main(source: str, target: str) -> None:
    text = Path(source).read_text()
    if source.endswith(".json"):
        Path(target).write_text(json.dumps(strip(json.loads(text)), indent=1, sort_keys=False) + "\n")
        return
    crd = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    Path(target).write_text(json.dumps(reduce_crd(crd), separators=(",", ":")) + "\n")


if __name__ == "__main__":
    main(*sys.argv[1:3])
