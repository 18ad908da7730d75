"""A served model as a KServe ``serving.kserve.io/v1beta1`` InferenceService (inference_service), the patch
that brings one up to date (spec_patch), and its status read back (service_observation). Pure: no API calls,
no database.

One InferenceService per service, in the team's namespace, named after the service: KServe keeps its
revisions. The spec names the newest version; ``canaryTrafficPercent`` gives that newest revision its share and
the last rolled-out one the rest. KServe splits traffic only in Serverless (Knative) mode: a canary in
RawDeployment (Standard) mode would be silently ignored there, so it is refused here instead.

Every format but ``custom`` is a ``predictor.model`` with KServe's format name, and KServe picks the serving
runtime that supports it and the protocol asked. ``custom`` is the predictor's own container
(``kserve-container``), given the version's place as ``STORAGE_URI``: KServe's storage initializer then copies
the files to ``/mnt/models`` for it.
"""

from __future__ import annotations

from typing import Any

from clusters.backends.base import MODEL_FORMATS, ServiceDescription, ServiceObservation, TrafficObservation
from clusters.backends.kubernetes.manifests.names import (
    DNS_SUBDOMAIN,
    LABEL_MANAGED_BY,
    LABEL_TEAM,
    MANAGED_BY,
    ClusterSettings,
    ObjectKind,
    label_value,
    namespace_name,
)
from clusters.backends.kubernetes.manifests.pods import _quantity_cpu, pull_secrets

KSERVE_GROUP, KSERVE_VERSION = "serving.kserve.io", "v1beta1"
INFERENCE_SERVICE_KIND = ObjectKind(KSERVE_GROUP, KSERVE_VERSION, "inferenceservices", "InferenceService")
ANNOTATION_DEPLOYMENT_MODE = "serving.kserve.io/deploymentMode"
# KServe 0.17 renamed RawDeployment to Standard and Serverless to Knative; it still takes the older names.
DEPLOYMENT_MODES = ("Serverless", "RawDeployment", "Knative", "Standard")
SPLITTING_MODES = ("Serverless", "Knative")  # the modes whose revisions KServe splits traffic between
CUSTOM_CONTAINER = "kserve-container"  # the name KServe finds a custom predictor's serving container by
CUSTOM_PORT = 8080  # where KServe sends a custom predictor's requests

# Our format -> (KServe's modelFormat name, protocolVersion or None for the runtime's own default).
# The V2 (Open Inference) protocol wherever the runtime KServe picks for the format speaks it: the sklearn and
# xgboost servers (V1 and V2), TorchServe (V1 and V2), the Hugging Face server (V1 and V2), Triton for ONNX (V2
# only). TensorFlow Serving speaks V1 only, and asking V2 would hand a SavedModel to Triton, which wants a model
# repository instead: tensorflow keeps the runtime's default (V1). TorchScript files are served as KServe's
# pytorch format.
KSERVE_FORMATS: dict[str, tuple[str, str | None]] = {
    "sklearn": ("sklearn", "v2"),
    "xgboost": ("xgboost", "v2"),
    "onnx": ("onnx", "v2"),
    "tensorflow": ("tensorflow", None),
    "huggingface": ("huggingface", "v2"),
    "pytorch": ("pytorch", "v2"),
    "torchscript": ("pytorch", "v2"),
}
assert set(KSERVE_FORMATS) | {"custom"} == set(MODEL_FORMATS), "every model format has a KServe rendering"


def service_labels(service: ServiceDescription) -> dict[str, str]:
    """The description's labels (values made valid), then ours: observe finds the service by them."""
    labels = {key: label_value(str(value)) for key, value in service.labels.items()}
    return {**labels, LABEL_MANAGED_BY: MANAGED_BY, LABEL_TEAM: service.team}


def service_resources(cluster: ClusterSettings, service: ServiceDescription) -> dict[str, Any]:
    """Requests equal to limits: a predictor is not oversold (a revision that is throttled fails its probes)."""
    limits: dict[str, str] = {}
    if service.cpu_milli:
        limits["cpu"] = _quantity_cpu(service.cpu_milli)
    if service.memory_bytes:
        limits["memory"] = str(int(service.memory_bytes))
    if service.gpu:
        if not cluster.gpu_resource_name:
            raise ValueError("this cluster names no GPU resource")
        limits[cluster.gpu_resource_name] = str(service.gpu)
    return {"requests": dict(limits), "limits": limits}


def _problems(service: ServiceDescription) -> list[str]:
    problems = []
    if service.model_format not in MODEL_FORMATS:
        problems.append(f"model format {service.model_format!r} is not one of {', '.join(MODEL_FORMATS)}")
    if service.deployment_mode not in DEPLOYMENT_MODES:
        problems.append(f"deployment mode {service.deployment_mode!r} is not one of {', '.join(DEPLOYMENT_MODES)}")
    if service.canary_percent is not None:
        if not 0 <= service.canary_percent <= 100:
            problems.append(f"the canary's share {service.canary_percent} is not between 0 and 100")
        elif service.deployment_mode not in SPLITTING_MODES:
            problems.append(
                f"KServe splits traffic between revisions only in Serverless mode: "
                f"a canary cannot be served in {service.deployment_mode} mode"
            )
    if not service.storage_uri:
        problems.append("the model has no storage URI")
    if service.model_format == "custom" and not service.image:
        problems.append("a custom model needs a predictor image (the cluster's custom_model_image)")
    if service.min_replicas < 0 or service.max_replicas < 0:
        problems.append("replicas cannot be negative")
    elif service.max_replicas and service.min_replicas > service.max_replicas:
        problems.append(f"min replicas ({service.min_replicas}) is more than max replicas ({service.max_replicas})")
    if service.service_account and (
        len(service.service_account) > 253 or not DNS_SUBDOMAIN.match(service.service_account)
    ):
        problems.append(f"the service account {service.service_account!r} is not a DNS-1123 subdomain")
    return problems


def inference_service(service: ServiceDescription, cluster: ClusterSettings) -> dict[str, Any]:
    """The InferenceService of a served model; ValueError names every reason it cannot be rendered."""
    if problems := _problems(service):
        raise ValueError("; ".join(problems))
    predictor: dict[str, Any] = {"minReplicas": service.min_replicas, "maxReplicas": service.max_replicas}
    if service.canary_percent is not None:
        predictor["canaryTrafficPercent"] = service.canary_percent
    if service.service_account:
        predictor["serviceAccountName"] = service.service_account
    if secrets := pull_secrets(cluster):
        predictor["imagePullSecrets"] = secrets
    resources = service_resources(cluster, service)
    if service.model_format == "custom":
        predictor["containers"] = [
            {
                "name": CUSTOM_CONTAINER,
                "image": service.image,
                "env": [{"name": "STORAGE_URI", "value": service.storage_uri}],
                "resources": resources,
                "ports": [{"containerPort": CUSTOM_PORT, "protocol": "TCP"}],
            }
        ]
    else:
        name, protocol = KSERVE_FORMATS[service.model_format]
        model_format = {"name": name}
        if service.runtime_version:
            model_format["version"] = service.runtime_version
        model: dict[str, Any] = {"modelFormat": model_format, "storageUri": service.storage_uri, "resources": resources}
        if protocol:
            model["protocolVersion"] = protocol
        predictor["model"] = model
    return {
        "apiVersion": INFERENCE_SERVICE_KIND.api_version,
        "kind": INFERENCE_SERVICE_KIND.kind,
        "metadata": {
            "name": service.name,
            "namespace": namespace_name(cluster, service.team),
            "labels": service_labels(service),
            "annotations": {ANNOTATION_DEPLOYMENT_MODE: service.deployment_mode},
        },
        "spec": {"predictor": predictor},
    }


def spec_patch(current: dict[str, Any], wanted: dict[str, Any]) -> dict[str, Any]:
    """The JSON merge patch (RFC 7386) that turns ``current`` into ``wanted``: a field no longer wanted is null
    (a promoted canary loses ``canaryTrafficPercent``), lists are replaced whole; empty when nothing changes."""
    patch: dict[str, Any] = {key: None for key in current if key not in wanted}
    for key, value in wanted.items():
        have = current.get(key)
        if isinstance(value, dict) and isinstance(have, dict):
            if inner := spec_patch(have, value):
                patch[key] = inner
        elif have != value:
            patch[key] = value
    return patch


# --- what the cluster reports -------------------------------------------------------------------------------


def _failure(status: dict[str, Any], conditions: list[dict[str, Any]]) -> tuple[str, str]:
    """(reason, message) of a service that is not ready. Only a condition that is False, or a model that failed
    to load, gives a message: one that is Unknown is a revision still rolling out, not a failure."""
    ready = next((c for c in conditions if c.get("type") == "Ready"), {})
    for condition in [ready, *(c for c in conditions if c is not ready)]:
        if condition.get("status") == "False" and (condition.get("message") or condition.get("reason")):
            return str(condition.get("reason") or ""), str(condition.get("message") or "")
    model = status.get("modelStatus") or {}
    failure = model.get("lastFailureInfo") or {}
    if model.get("transitionStatus") in ("BlockedByFailedLoad", "InvalidSpec") and failure:
        return str(failure.get("reason") or model["transitionStatus"]), str(failure.get("message") or "")
    return str(ready.get("reason") or ""), ""


def service_observation(obj: dict[str, Any]) -> ServiceObservation | None:
    """An InferenceService as the cluster reports it; None for one being deleted or not labelled with a team."""
    meta = obj.get("metadata") or {}
    team, name = (meta.get("labels") or {}).get(LABEL_TEAM), meta.get("name")
    if not team or not name or meta.get("deletionTimestamp"):
        return None
    status = obj.get("status") or {}
    conditions = [c for c in status.get("conditions") or [] if isinstance(c, dict)]
    predictor = (status.get("components") or {}).get("predictor") or {}
    latest_created = str(predictor.get("latestCreatedRevision") or "")
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
    reason = message = ""
    generation, observed = meta.get("generation"), status.get("observedGeneration")
    if isinstance(generation, int) and isinstance(observed, int) and observed < generation:
        # A spec applied but not yet seen by KServe: its revisions and readiness are the previous spec's.
        ready, reason = False, "Reconciling"
    elif not ready:
        reason, message = _failure(status, conditions)
    traffic = [
        TrafficObservation(
            revision=str(entry["revisionName"]),
            percent=int(entry["percent"]),
            latest=entry["revisionName"] == latest_created if latest_created else bool(entry.get("latestRevision")),
        )
        for entry in predictor.get("traffic") or []
        if isinstance(entry, dict) and entry.get("revisionName") and entry.get("percent") is not None
    ]
    return ServiceObservation(
        team=str(team),
        name=str(name),
        ready=ready,
        url=str(status.get("url") or ""),
        address=str((status.get("address") or {}).get("url") or ""),
        reason=reason,
        message=message,
        latest_ready_revision=str(predictor.get("latestReadyRevision") or ""),
        latest_created_revision=latest_created,
        previous_rolledout_revision=str(predictor.get("previousRolledoutRevision") or ""),
        traffic=traffic,
        grpc_address=str(predictor.get("grpcUrl") or ""),
    )
