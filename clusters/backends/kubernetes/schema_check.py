"""Strict validation of Kubernetes manifests against the schemas in settings.EASYAI_K8S_SCHEMAS.

What the API server would refuse with ``fieldValidation=Strict`` we refuse here,
in tests and in ``manage.py k8s_validate``, before any cluster sees it:

- custom resources (training-operator, Volcano, KServe) against their CRD's
  ``openAPIV3Schema`` (JSON-Schema draft 4 plus Kubernetes extensions, which are
  translated: ``nullable``, ``x-kubernetes-int-or-string``,
  ``x-kubernetes-preserve-unknown-fields``, list types ``set``/``map``; every
  other object refuses unknown fields, as the API server's pruning would drop
  them silently and strict field validation would refuse them);
- core kinds (Namespace, ResourceQuota, Pod, Service, ...) against the
  "local-strict" core schemas, whose ``$ref``s point into ``_definitions.json``;
- root ``metadata`` against ObjectMeta, and names against DNS-1035/1123;
- the operators' admission rules, which no schema holds (replica types per
  framework, one Master, a container named after the framework with an image,
  Volcano policy events/actions, KServe's InferenceService webhook: its name,
  exactly one predictor, replicas, the canary's share, the protocol).

CEL rules (``x-kubernetes-validations``) are not evaluated: they only guard
updates (immutability) in the schemas we render against.
"""

from __future__ import annotations

import copy
import json
import re
import threading
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from django.conf import settings
from jsonschema import Draft4Validator, Draft202012Validator, ValidationError, validators
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")

# (apiVersion, kind) -> CRD file, relative to the schema folder. The MPIJob v2beta1
# (mpi-operator) shares its CRD name with the v1 one: a cluster has one or the other.
CRD_FILES: dict[tuple[str, str], str] = {
    ("kubeflow.org/v1", "PyTorchJob"): "training-operator/kubeflow.org_pytorchjobs.yaml",
    ("kubeflow.org/v1", "TFJob"): "training-operator/kubeflow.org_tfjobs.yaml",
    ("kubeflow.org/v1", "MPIJob"): "training-operator/kubeflow.org_mpijobs.yaml",
    ("kubeflow.org/v1", "XGBoostJob"): "training-operator/kubeflow.org_xgboostjobs.yaml",
    ("kubeflow.org/v1", "PaddleJob"): "training-operator/kubeflow.org_paddlejobs.yaml",
    ("kubeflow.org/v1", "JAXJob"): "training-operator/kubeflow.org_jaxjobs.yaml",
    ("kubeflow.org/v2beta1", "MPIJob"): "mpi-operator/kubeflow.org_mpijobs.v2beta1.yaml",
    ("batch.volcano.sh/v1alpha1", "Job"): "volcano/batch.volcano.sh_jobs.yaml",
    ("scheduling.volcano.sh/v1beta1", "Queue"): "volcano/scheduling.volcano.sh_queues.yaml",
    ("scheduling.volcano.sh/v1beta1", "PodGroup"): "volcano/scheduling.volcano.sh_podgroups.yaml",
    ("serving.kserve.io/v1beta1", "InferenceService"): "kserve/serving.kserve.io_inferenceservices.yaml",
    ("argoproj.io/v1alpha1", "Workflow"): "argo/argoproj.io_workflows.yaml",
    ("argoproj.io/v1alpha1", "CronWorkflow"): "argo/argoproj.io_cronworkflows.yaml",
    ("argoproj.io/v1alpha1", "WorkflowTemplate"): "argo/argoproj.io_workflowtemplates.yaml",
}

CORE_DIR = "core/v1.29.0-local-strict"
CORE_FILES: dict[tuple[str, str], str] = {
    ("v1", "Pod"): "pod-v1.json",
    ("v1", "Service"): "service-v1.json",
    ("v1", "Namespace"): "namespace-v1.json",
    ("v1", "ResourceQuota"): "resourcequota-v1.json",
    ("v1", "PersistentVolumeClaim"): "persistentvolumeclaim-v1.json",
    ("v1", "ConfigMap"): "configmap-v1.json",
    ("v1", "Secret"): "secret-v1.json",
    ("networking.k8s.io/v1", "Ingress"): "ingress-networking-v1.json",
    ("apps/v1", "Deployment"): "deployment-apps-v1.json",
    ("batch/v1", "Job"): "job-batch-v1.json",
}
OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"

# training-operator 1.9 admission: the replica-spec field, allowed replica types and the
# container each replica must have (kubeflow.org/v1 *JobDefaultContainerName).
TRAINING_KINDS: dict[str, tuple[str, tuple[str, ...], str]] = {
    "PyTorchJob": ("pytorchReplicaSpecs", ("Master", "Worker"), "pytorch"),
    "TFJob": ("tfReplicaSpecs", ("PS", "Worker", "Chief", "Master", "Evaluator"), "tensorflow"),
    "MPIJob": ("mpiReplicaSpecs", ("Launcher", "Worker"), "mpi"),
    "XGBoostJob": ("xgbReplicaSpecs", ("Master", "Worker"), "xgboost"),
    "PaddleJob": ("paddleReplicaSpecs", ("Master", "Worker"), "paddle"),
}
CLEAN_POD_POLICIES = ("None", "All", "Running")
RESTART_POLICIES = ("Always", "OnFailure", "Never", "ExitCode")
# Volcano bus/v1alpha1 actions a user may name (SyncJob, EnqueueJob... are internal).
VOLCANO_ACTIONS = ("AbortJob", "RestartJob", "RestartTask", "TerminateJob", "CompleteJob", "ResumeJob")
VOLCANO_EVENTS = (
    "*", "PodPending", "PodRunning", "PodFailed", "PodEvicted", "Unknown",
    "TaskCompleted", "OutOfSync", "CommandIssued", "JobUpdated", "TaskFailed",
)  # fmt: skip
# KServe's predictor implementations (serving.kserve.io/v1beta1 PredictorSpec): exactly one is given, the
# custom predictor's containers counting as one; and the protocols its webhook knows.
KSERVE_PREDICTORS = (
    "model", "sklearn", "xgboost", "tensorflow", "pytorch", "triton", "onnx", "huggingface", "pmml", "lightgbm",
    "paddle",
)  # fmt: skip
KSERVE_PROTOCOLS = ("v1", "v2", "grpc-v1", "grpc-v2")


def schema_dir() -> Path:
    return Path(settings.EASYAI_K8S_SCHEMAS)


# --- the Kubernetes extension keywords, as jsonschema validators ---------------------


def _list_type(validator: Any, list_type: str, instance: Any, schema: dict[str, Any]) -> Iterator[ValidationError]:
    """x-kubernetes-list-type: 'set' items are unique, 'map' items are unique by their map keys."""
    if not isinstance(instance, list):
        return
    if list_type == "set":
        seen: list[Any] = []
        for item in instance:
            if item in seen:
                yield ValidationError(f"duplicate entry {item!r} in a list of type set")
            seen.append(item)
    elif list_type == "map":
        keys = schema.get("x-kubernetes-list-map-keys") or []
        seen_keys: set[str] = set()
        for item in instance:
            if not isinstance(item, dict):
                continue
            key = json.dumps([item.get(k) for k in keys])
            if key in seen_keys:
                yield ValidationError(f"duplicate entry for map keys {keys}: {key} in a list of type map")
            seen_keys.add(key)


_CRDValidator = validators.extend(Draft4Validator, {"x-kubernetes-list-type": _list_type})
_CoreValidator = validators.extend(Draft202012Validator, {"x-kubernetes-list-type": _list_type})


def _strict(node: Any, *, root: bool = False) -> Any:
    """Translate a CRD openAPIV3Schema node into strict draft 4."""
    if isinstance(node, list):
        return [_strict(item) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in ("properties", "patternProperties", "definitions"):
            out[key] = {name: _strict(sub) for name, sub in value.items()}
        elif key in ("items", "additionalProperties", "not", "allOf", "anyOf", "oneOf"):
            out[key] = _strict(value)
        else:
            out[key] = value
    if root and "metadata" in out.get("properties", {}):
        # A CRD's root metadata is only "type: object": ObjectMeta is checked on its own.
        out["properties"]["metadata"] = {"type": "object"}
    preserve = node.get("x-kubernetes-preserve-unknown-fields") is True
    is_object = node.get("type") == "object" or "properties" in node
    if is_object and not preserve and "additionalProperties" not in node:
        out["additionalProperties"] = False
    if node.get("x-kubernetes-int-or-string") and "anyOf" not in node:
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if node.get("nullable") is True:
        out.pop("nullable", None)
        return {"anyOf": [{"type": "null"}, out]}
    return out


@cache
def _core_registry() -> Registry:
    path = schema_dir() / CORE_DIR / "_definitions.json"
    definitions = json.loads(path.read_text())
    return Registry().with_resource(definitions["$id"], Resource.from_contents(definitions, DRAFT202012))


@cache
def _object_meta_validator() -> Any:
    schema = {"$ref": f"https://kubernetes.io/api/_definitions.json#/$defs/{OBJECT_META}"}
    return _CoreValidator(schema, registry=_core_registry())


def _load_crd(path: Path) -> dict[str, Any]:
    """A CRD file: the vendored ones are reduced to JSON (which is YAML too); upstream ones are YAML."""
    data = path.read_bytes()
    if data.lstrip()[:1] == b"{":
        return json.loads(data)
    return yaml.load(data, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


_build_lock = threading.Lock()
_validators: dict[tuple[str, str], Any] = {}


def _validator_for(api_version: str, kind: str) -> Any | None:
    """One validator per kind per process: the CRD files are large (KServe's is 1.9 MB)."""
    key = (api_version, kind)
    with _build_lock:
        if key in _validators:
            return _validators[key]
        validator = None
        if key in CRD_FILES:
            crd = _load_crd(schema_dir() / CRD_FILES[key])
            version = api_version.rsplit("/", 1)[-1]
            for served in crd["spec"]["versions"]:
                if served["name"] == version:
                    schema = _strict(copy.deepcopy(served["schema"]["openAPIV3Schema"]), root=True)
                    validator = _CRDValidator(schema)
        elif key in CORE_FILES:
            schema = json.loads((schema_dir() / CORE_DIR / CORE_FILES[key]).read_text())
            validator = _CoreValidator(schema, registry=_core_registry())
        _validators[key] = validator
        return validator


def known_kinds() -> list[tuple[str, str]]:
    return sorted([*CRD_FILES, *CORE_FILES])


# --- the whole check -----------------------------------------------------------------


def _path(error: ValidationError, prefix: str = "") -> str:
    return ".".join([*([prefix] if prefix else []), *(str(p) for p in error.absolute_path)]) or "(root)"


def validate_manifest(obj: dict[str, Any]) -> list[str]:
    """Every reason the API server (strict field validation) or the operator's admission would refuse obj."""
    if not isinstance(obj, dict):
        return ["(root): a manifest is an object"]
    api_version, kind = obj.get("apiVersion"), obj.get("kind")
    if not isinstance(api_version, str) or not isinstance(kind, str):
        return ["(root): apiVersion and kind are required"]
    validator = _validator_for(api_version, kind)
    if validator is None:
        return [f"(root): no schema for {api_version} {kind} in {schema_dir()}"]
    problems = [f"{_path(e)}: {e.message}" for e in validator.iter_errors(obj)]
    metadata = obj.get("metadata")
    if not isinstance(metadata, dict):
        problems.append("metadata: required")
        return problems
    problems += [f"{_path(e, 'metadata')}: {e.message}" for e in _object_meta_validator().iter_errors(metadata)]
    problems += _metadata_rules(api_version, kind, metadata)
    if api_version == "kubeflow.org/v1" and kind in TRAINING_KINDS:
        problems += _training_operator_rules(kind, obj)
    elif (api_version, kind) == ("batch.volcano.sh/v1alpha1", "Job"):
        problems += _volcano_job_rules(obj)
    elif (api_version, kind) == ("v1", "Pod"):
        problems += _pod_spec_rules("spec", obj.get("spec") or {}, None)
    elif (api_version, kind) == ("serving.kserve.io/v1beta1", "InferenceService"):
        problems += _inference_service_rules(obj)
    elif (api_version, kind) == ("argoproj.io/v1alpha1", "Workflow"):
        problems += _workflow_rules(obj)
    return problems


def _metadata_rules(api_version: str, kind: str, metadata: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    name = metadata.get("name")
    if not isinstance(name, str) or not name:
        problems.append("metadata.name: required")
    elif (
        api_version in ("kubeflow.org/v1", "batch.volcano.sh/v1alpha1")
        or kind in ("Service",)
        or (api_version, kind) == ("serving.kserve.io/v1beta1", "InferenceService")
    ):
        # training-operator, KServe's webhook (and Services' DNS names) want a DNS-1035 label.
        if len(name) > 63 or not DNS1035_LABEL.match(name):
            problems.append(f"metadata.name: {name!r} is not a DNS-1035 label")
    elif kind == "Namespace":
        if len(name) > 63 or not DNS1123_LABEL.match(name):
            problems.append(f"metadata.name: {name!r} is not a DNS-1123 label")
    elif len(name) > 253 or not DNS1123_SUBDOMAIN.match(name):
        problems.append(f"metadata.name: {name!r} is not a DNS-1123 subdomain")
    namespace = metadata.get("namespace")
    if namespace is not None and (len(namespace) > 63 or not DNS1123_LABEL.match(namespace)):
        problems.append(f"metadata.namespace: {namespace!r} is not a DNS-1123 label")
    problems += _label_rules("metadata.labels", metadata.get("labels"))
    return problems


def _label_rules(where: str, labels: Any) -> list[str]:
    problems: list[str] = []
    for key, value in (labels or {}).items():
        prefix, _, name = key.rpartition("/")
        if len(name) > 63 or not LABEL_NAME.match(name) or (prefix and not DNS1123_SUBDOMAIN.match(prefix)):
            problems.append(f"{where}: {key!r} is not a valid label key")
        if not isinstance(value, str) or len(value) > 63 or not LABEL_VALUE.match(value):
            problems.append(f"{where}.{key}: {value!r} is not a valid label value")
    return problems


def _pod_spec_rules(where: str, spec: dict[str, Any], required_container: str | None) -> list[str]:
    problems: list[str] = []
    containers = spec.get("containers") or []
    if not containers:
        problems.append(f"{where}.containers: a pod needs at least one container")
    names = [c.get("name") for c in containers if isinstance(c, dict)]
    if required_container and required_container not in names:
        problems.append(f"{where}.containers: no container named {required_container!r}")
    for i, container in enumerate(containers):
        if isinstance(container, dict) and not container.get("image"):
            problems.append(f"{where}.containers.{i}.image: required")
        name = container.get("name") if isinstance(container, dict) else None
        if isinstance(name, str) and not DNS1123_LABEL.match(name):
            problems.append(f"{where}.containers.{i}.name: {name!r} is not a DNS-1123 label")
    return problems


def _training_operator_rules(kind: str, obj: dict[str, Any]) -> list[str]:
    field, allowed, container = TRAINING_KINDS[kind]
    spec = obj.get("spec") or {}
    replica_specs = spec.get(field) or {}
    problems: list[str] = []
    if not replica_specs:
        problems.append(f"spec.{field}: at least one replica spec is required")
    for replica_type, replica in replica_specs.items():
        where = f"spec.{field}.{replica_type}"
        if replica_type not in allowed:
            problems.append(f"{where}: replica type {replica_type!r} is not one of {', '.join(allowed)}")
        if not isinstance(replica, dict):
            continue
        if replica_type in ("Master", "Chief", "Launcher") and _count(replica.get("replicas"), 1) > 1:
            problems.append(f"{where}.replicas: there must be at most one {replica_type}")
        if replica.get("restartPolicy") not in (None, *RESTART_POLICIES):
            problems.append(f"{where}.restartPolicy: {replica.get('restartPolicy')!r} is not a restart policy")
        template_spec = (replica.get("template") or {}).get("spec") or {}
        problems += _pod_spec_rules(f"{where}.template.spec", template_spec, container)
        problems += _label_rules(
            f"{where}.template.metadata.labels", (replica.get("template") or {}).get("metadata", {}).get("labels")
        )
    if kind == "TFJob" and sum(1 for t in replica_specs if t in ("Master", "Chief")) > 1:
        problems.append(f"spec.{field}: a TFJob has either a Chief or a Master, not both")
    if kind == "MPIJob" and "Launcher" not in replica_specs:
        problems.append(f"spec.{field}: an MPIJob needs a Launcher")
    for where, policy in (
        ("spec.runPolicy.cleanPodPolicy", (spec.get("runPolicy") or {}).get("cleanPodPolicy")),
        ("spec.cleanPodPolicy", spec.get("cleanPodPolicy")),
    ):
        if policy is not None and policy not in CLEAN_POD_POLICIES:
            problems.append(f"{where}: {policy!r} is not one of {', '.join(CLEAN_POD_POLICIES)}")
    return problems


def _count(value: Any, default: int) -> int:
    """An integer field for a rule; a wrong type is the schema's finding, not a crash here."""
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _volcano_policies(where: str, policies: Any) -> list[str]:
    problems: list[str] = []
    for i, policy in enumerate(policies or []):
        if not isinstance(policy, dict):
            continue
        events = [policy["event"]] if "event" in policy else list(policy.get("events") or [])
        if not events and "exitCode" not in policy:
            problems.append(f"{where}.{i}: a policy needs an event or an exit code")
        for event in events:
            if event not in VOLCANO_EVENTS:
                problems.append(f"{where}.{i}.event: {event!r} is not a Volcano event")
        if policy.get("action") not in VOLCANO_ACTIONS:
            problems.append(f"{where}.{i}.action: {policy.get('action')!r} is not one of {', '.join(VOLCANO_ACTIONS)}")
    return problems


def _volcano_job_rules(obj: dict[str, Any]) -> list[str]:
    spec = obj.get("spec") or {}
    tasks = spec.get("tasks") or []
    problems = _volcano_policies("spec.policies", spec.get("policies"))
    names: set[str] = set()
    total = 0
    for i, task in enumerate(tasks):
        if not isinstance(task, dict):
            continue
        name = task.get("name", "")
        if name in names:
            problems.append(f"spec.tasks.{i}.name: duplicate task name {name!r}")
        names.add(name)
        total += _count(task.get("replicas"), 0)
        problems += _volcano_policies(f"spec.tasks.{i}.policies", task.get("policies"))
        template = task.get("template") or {}
        problems += _pod_spec_rules(f"spec.tasks.{i}.template.spec", template.get("spec") or {}, None)
        problems += _label_rules(
            f"spec.tasks.{i}.template.metadata.labels", (template.get("metadata") or {}).get("labels")
        )
    if _count(spec.get("minAvailable"), 0) > total:
        problems.append(f"spec.minAvailable: {spec.get('minAvailable')} is more than the {total} replicas of all tasks")
    return problems


def _inference_service_rules(obj: dict[str, Any]) -> list[str]:
    """KServe's InferenceService webhook (v1beta1 validation): what its CRD schema does not hold."""
    predictor = (obj.get("spec") or {}).get("predictor") or {}
    if not isinstance(predictor, dict):
        return []
    problems: list[str] = []
    found = [name for name in KSERVE_PREDICTORS if isinstance(predictor.get(name), dict)]
    if predictor.get("containers"):
        found.append("containers")
    if len(found) != 1:
        problems.append(
            f"spec.predictor: exactly one of {', '.join((*KSERVE_PREDICTORS, 'containers'))} is required "
            f"(found {', '.join(found) or 'none'})"
        )
    for name in found:
        if name == "containers":
            problems += _pod_spec_rules("spec.predictor", predictor, None)
            continue
        implementation = predictor[name]
        if implementation.get("name"):
            problems.append(f"spec.predictor.{name}.name: not allowed in a standard predictor")
        protocol = implementation.get("protocolVersion")
        if protocol is not None and protocol not in KSERVE_PROTOCOLS:
            problems.append(
                f"spec.predictor.{name}.protocolVersion: {protocol!r} is not one of {', '.join(KSERVE_PROTOCOLS)}"
            )
    minimum, maximum = _count(predictor.get("minReplicas"), 1), _count(predictor.get("maxReplicas"), 0)
    if minimum < 0:
        problems.append("spec.predictor.minReplicas: cannot be less than 0")
    if maximum < 0:
        problems.append("spec.predictor.maxReplicas: cannot be less than 0")
    if maximum and minimum > maximum:
        problems.append(f"spec.predictor.minReplicas: {minimum} is more than maxReplicas {maximum}")
    canary = predictor.get("canaryTrafficPercent")
    if isinstance(canary, int) and not isinstance(canary, bool) and not 0 <= canary <= 100:
        problems.append(f"spec.predictor.canaryTrafficPercent: {canary} is not between 0 and 100")
    return problems


# --- Argo Workflows: the CEL rules of the CRD and what the controller refuses --------------------------------------

ARGO_TEMPLATE_KINDS = ("container", "script", "dag", "steps", "resource", "suspend", "containerSet", "data", "http",
                       "plugin")  # fmt: skip
ARGO_ARTIFACT_LOCATIONS = ("s3", "git", "http", "artifactory", "hdfs", "raw", "oss", "gcs", "azure", "plugin")
# A task's result in a DAG ``depends`` expression (Argo's enhanced depends logic).
ARGO_TASK_RESULTS = ("Succeeded", "Failed", "Errored", "Skipped", "Omitted", "Daemoned", "AnySucceeded", "AllFailed")
_ARGO_DEPENDS_TOKEN = re.compile(r"\s*(?:(&&|\|\||!|\(|\))|([A-Za-z0-9_-]+)(?:\.([A-Za-z]+))?)")


def _argo_depends_names(text: str) -> tuple[list[str], str]:
    """The task names a ``depends`` expression reads, and what is wrong with it ("" when nothing)."""
    names: list[str] = []
    position, depth, expect_operand = 0, 0, True
    text = text.rstrip()
    while position < len(text):
        match = _ARGO_DEPENDS_TOKEN.match(text, position)
        if match is None or match.end() == position:
            return names, f"cannot read {text[position:].strip()!r}"
        operator, name, result = match.groups()
        position = match.end()
        if name is not None:
            if not expect_operand:
                return names, f"an operator is missing before {name!r}"
            if result is not None and result not in ARGO_TASK_RESULTS:
                return names, f"{name}.{result}: {result!r} is not one of {', '.join(ARGO_TASK_RESULTS)}"
            names.append(name)
            expect_operand = False
        elif operator in ("&&", "||"):
            if expect_operand:
                return names, f"{operator!r} has nothing on its left"
            expect_operand = True
        elif operator == "!":
            if not expect_operand:
                return names, "'!' follows an operand"
        elif operator == "(":
            if not expect_operand:
                return names, "'(' follows an operand"
            depth += 1
        else:
            depth -= 1
            if depth < 0 or expect_operand:
                return names, "unbalanced ')'"
    if depth or (expect_operand and names):
        return names, "the expression is incomplete"
    return names, ""


def _argo_artifact_rules(where: str, artifacts: Any) -> list[str]:
    problems: list[str] = []
    for i, artifact in enumerate(artifacts or []):
        if isinstance(artifact, dict):
            found = [key for key in ARGO_ARTIFACT_LOCATIONS if key in artifact]
            if len(found) > 1:
                problems.append(
                    f"{where}.{i}: at most one artifact location can be specified (found {', '.join(found)})"
                )
    return problems


def _argo_parameter_rules(where: str, parameters: Any) -> list[str]:
    problems: list[str] = []
    for i, parameter in enumerate(parameters or []):
        if not isinstance(parameter, dict):
            continue
        for key in ("value", "default"):
            if key in parameter and not isinstance(parameter[key], str):
                problems.append(f"{where}.{i}.{key}: a parameter's {key} is a string, not {parameter[key]!r}")
    return problems


def _argo_io_rules(where: str, section: Any) -> list[str]:
    if not isinstance(section, dict):
        return []
    return _argo_parameter_rules(f"{where}.parameters", section.get("parameters")) + _argo_artifact_rules(
        f"{where}.artifacts", section.get("artifacts")
    )


def _argo_call_rules(where: str, call: dict[str, Any], templates: set[str]) -> list[str]:
    """A DAG task or a step: the template it calls, its arguments, withSequence."""
    problems = _argo_io_rules(f"{where}.arguments", call.get("arguments"))
    if "template" in call and call["template"] not in templates and "templateRef" not in call:
        problems.append(f"{where}.template: no template named {call['template']!r}")
    sequence = call.get("withSequence")
    if isinstance(sequence, dict) and "count" in sequence and "end" in sequence:
        problems.append(f"{where}.withSequence: only one of count or end can be defined")
    loops = [key for key in ("withItems", "withParam", "withSequence") if key in call]
    if len(loops) > 1:
        problems.append(f"{where}: only one of {', '.join(loops)} can be used")
    return problems


def _argo_dag_rules(where: str, dag: dict[str, Any], templates: set[str]) -> list[str]:
    problems: list[str] = []
    tasks = [t for t in dag.get("tasks") or [] if isinstance(t, dict)]
    names = [t.get("name") for t in tasks]
    graph: dict[str, list[str]] = {}
    for i, task in enumerate(tasks):
        at, name = f"{where}.tasks.{i}", task.get("name")
        if names.count(name) > 1:
            problems.append(f"{at}.name: the task name {name!r} is used twice")
        if "depends" in task and "dependencies" in task:
            problems.append(f"{at}: cannot use both 'depends' and 'dependencies'")
        if "depends" in task and "continueOn" in task:
            problems.append(f"{at}: cannot use 'continueOn' when using 'depends'")
        if ("depends" in task or "dependencies" in task) and isinstance(name, str) and name[:1].isdigit():
            problems.append(f"{at}.name: task name cannot begin with a digit when using 'depends' or 'dependencies'")
        needs: list[str] = []
        if isinstance(task.get("depends"), str):
            found, problem = _argo_depends_names(task["depends"])
            if problem:
                problems.append(f"{at}.depends: {problem}")
            needs += found
        needs += [d for d in task.get("dependencies") or [] if isinstance(d, str)]
        for needed in dict.fromkeys(needs):
            if needed not in names:
                problems.append(f"{at}: depends on the unknown task {needed!r}")
        if isinstance(name, str):
            graph[name] = [n for n in needs if n in names]
        problems += _argo_call_rules(at, task, templates)
    if "target" in dag:
        for target in str(dag["target"]).split():
            if target not in names:
                problems.append(f"{where}.target: no task named {target!r}")
    if cycle := _argo_cycle(graph):
        problems.append(f"{where}.tasks: the dependencies make a cycle: {' -> '.join(cycle)}")
    return problems


def _argo_cycle(graph: dict[str, list[str]]) -> list[str]:
    """One cycle of the graph (task -> what it needs), as the path around it; [] when it has none."""
    state: dict[str, int] = {}  # 1: on the path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for needed in graph.get(node, []):
            if state.get(needed) == 1:
                return path[path.index(needed) :] + [needed]
            if needed not in state and (found := visit(needed)):
                return found
        path.pop()
        state[node] = 2
        return []

    for node in graph:
        if node not in state and (found := visit(node)):
            return found
    return []


def _workflow_rules(obj: dict[str, Any]) -> list[str]:
    """Argo's CEL rules (x-kubernetes-validations, which the schema check skips) and the controller's own checks:
    one template kind per template, depends xor dependencies, no continueOn with depends, task names not starting
    with a digit, timeouts on leaf templates only, parameter values and defaults as strings, at most one location
    per artifact, withSequence's count xor end, no unknown dependency or template, no cycle, an entrypoint."""
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return []
    problems: list[str] = []
    templates = [t for t in spec.get("templates") or [] if isinstance(t, dict)]
    names = [t.get("name") for t in templates]
    known = {n for n in names if isinstance(n, str)}
    if not spec.get("workflowTemplateRef"):
        entrypoint = spec.get("entrypoint")
        if not entrypoint:
            problems.append("spec.entrypoint: required (or a workflowTemplateRef)")
        elif entrypoint not in known:
            problems.append(f"spec.entrypoint: no template named {entrypoint!r}")
    if spec.get("onExit") and spec["onExit"] not in known:
        problems.append(f"spec.onExit: no template named {spec['onExit']!r}")
    problems += _argo_io_rules("spec.arguments", spec.get("arguments"))
    for i, template in enumerate(templates):
        where = f"spec.templates.{i}"
        if names.count(template.get("name")) > 1:
            problems.append(f"{where}.name: the template name {template.get('name')!r} is used twice")
        kinds = [k for k in ARGO_TEMPLATE_KINDS if k in template]
        if len(kinds) != 1:
            problems.append(
                f"{where}: a template has exactly one of {', '.join(ARGO_TEMPLATE_KINDS)} (found {', '.join(kinds) or 'none'})"
            )
        if "steps" in template or "dag" in template:
            if template.get("timeout") not in (None, ""):
                problems.append(f"{where}.timeout: timeout cannot be applied to steps or dag templates")
            if "activeDeadlineSeconds" in template:
                problems.append(
                    f"{where}.activeDeadlineSeconds: activeDeadlineSeconds is only valid for leaf templates"
                )
        problems += _argo_io_rules(f"{where}.inputs", template.get("inputs"))
        problems += _argo_io_rules(f"{where}.outputs", template.get("outputs"))
        resource = template.get("resource")
        if isinstance(resource, dict) and "manifest" in resource and "manifestFrom" in resource:
            problems.append(f"{where}.resource: only one of manifest or manifestFrom can be specified")
        if isinstance(template.get("dag"), dict):
            problems += _argo_dag_rules(f"{where}.dag", template["dag"], known)
        for j, group in enumerate(template.get("steps") or []):
            for k, step in enumerate(group if isinstance(group, list) else []):
                if isinstance(step, dict):
                    problems += _argo_call_rules(f"{where}.steps.{j}.{k}", step, known)
    return problems
