"""Check connection: the server's version and which operators' CRDs are installed, recorded on the cluster."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from kubernetes import client as k8s

from clusters.backends.base import BackendError
from clusters.backends.kubernetes.client import Connection

if TYPE_CHECKING:
    from clusters.models import Cluster

SUPPORTED_VERSIONS = ((1, 18), (1, 30))  # what the operators' CRDs we render against are tested on
OPERATORS: dict[str, tuple[str, ...]] = {
    "training-operator": (
        "pytorchjobs.kubeflow.org",
        "tfjobs.kubeflow.org",
        "mpijobs.kubeflow.org",
        "xgboostjobs.kubeflow.org",
        "paddlejobs.kubeflow.org",
    ),
    "Volcano": ("jobs.batch.volcano.sh", "queues.scheduling.volcano.sh", "podgroups.scheduling.volcano.sh"),
    "KServe": ("inferenceservices.serving.kserve.io",),
}


@dataclass
class ConnectionReport:
    ok: bool
    server_version: str = ""
    warnings: list[str] = field(default_factory=list)
    operators: dict[str, list[str]] = field(default_factory=dict)  # operator -> its CRDs found
    error: str = ""

    def summary(self) -> str:
        if not self.ok:
            return self.error
        found = "; ".join(
            f"{name}: {', '.join(crds) if crds else 'not installed'}" for name, crds in self.operators.items()
        )
        return " ".join([f"Kubernetes {self.server_version}.", f"Operators — {found}.", *self.warnings])


def version_warning(git_version: str) -> str:
    match = re.match(r"v?(\d+)\.(\d+)", git_version)
    if not match:
        return f"cannot read the server version {git_version!r}"
    version = (int(match.group(1)), int(match.group(2)))
    low, high = SUPPORTED_VERSIONS
    if not low <= version <= high:
        return f"Warning: Kubernetes {git_version} is outside the tested range {low[0]}.{low[1]}–{high[0]}.{high[1]}."
    return ""


def check_connection(cluster: Cluster) -> ConnectionReport:
    """Ask the cluster for its version and CRDs; the result is recorded on the cluster through its service."""
    from clusters.services import cluster_record_health

    conn = Connection(cluster)
    try:
        version = conn.raw_json("version", k8s.VersionApi(conn.api_client).get_code)
        report = ConnectionReport(ok=True, server_version=str(version.get("gitVersion", "")))
        if warning := version_warning(report.server_version):
            report.warnings.append(warning)
        try:
            crds = conn.raw_json(
                "list CRDs",
                k8s.ApiextensionsV1Api(conn.api_client).list_custom_resource_definition,
                mark_refusal=False,
            )
            names = {item["metadata"]["name"] for item in crds.get("items") or []}
            report.operators = {op: [c for c in wanted if c in names] for op, wanted in OPERATORS.items()}
        except BackendError as exc:
            report.warnings.append(f"CRDs cannot be listed: {exc}")
    except BackendError as exc:
        report = ConnectionReport(ok=False, error=str(exc))
    cluster_record_health(
        cluster_id=cluster.pk,
        healthy=report.ok,
        message=report.summary(),
        server_version=report.server_version if report.ok else None,
    )
    return report
