"""The official schemas travel with the project: every kind validates from the vendored folder alone."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from clusters.backends.kubernetes import schema_check as k8s_schema
from clusters.backends.kubernetes.schemas.reduce import strip

BASE_DIR = Path(settings.BASE_DIR)
VENDORED = BASE_DIR / "clusters" / "backends" / "kubernetes" / "schemas"

CONTAINER = {"name": "main", "image": "busybox:1.36"}
POD_TEMPLATE = {"spec": {"containers": [CONTAINER]}}


def replica(container: str) -> dict[str, Any]:
    return {"replicas": 1, "template": {"spec": {"containers": [{**CONTAINER, "name": container}]}}}


# One small object of every kind the validator knows, as a user of that kind would write it.
SPECS: dict[tuple[str, str], dict[str, Any]] = {
    ("kubeflow.org/v1", "PyTorchJob"): {"pytorchReplicaSpecs": {"Master": replica("pytorch")}},
    ("kubeflow.org/v1", "TFJob"): {"tfReplicaSpecs": {"Worker": replica("tensorflow")}},
    ("kubeflow.org/v1", "MPIJob"): {"mpiReplicaSpecs": {"Launcher": replica("mpi"), "Worker": replica("mpi")}},
    ("kubeflow.org/v1", "XGBoostJob"): {"xgbReplicaSpecs": {"Master": replica("xgboost")}},
    ("kubeflow.org/v1", "PaddleJob"): {"paddleReplicaSpecs": {"Master": replica("paddle")}},
    ("kubeflow.org/v1", "JAXJob"): {"jaxReplicaSpecs": {"Worker": replica("jax")}},
    ("kubeflow.org/v2beta1", "MPIJob"): {"mpiReplicaSpecs": {"Launcher": replica("mpi"), "Worker": replica("mpi")}},
    ("batch.volcano.sh/v1alpha1", "Job"): {"minAvailable": 1, "tasks": [{"name": "worker", **replica("main")}]},
    ("scheduling.volcano.sh/v1beta1", "Queue"): {"weight": 1, "reclaimable": True},
    ("scheduling.volcano.sh/v1beta1", "PodGroup"): {"minMember": 2, "queue": "default"},
    ("serving.kserve.io/v1beta1", "InferenceService"): {
        "predictor": {"model": {"modelFormat": {"name": "sklearn"}, "storageUri": "pvc://models/iris"}}
    },
    ("argoproj.io/v1alpha1", "Workflow"): {
        "entrypoint": "main",
        "templates": [{"name": "main", "container": {"image": "busybox:1.36", "command": ["true"]}}],
    },
    ("argoproj.io/v1alpha1", "WorkflowTemplate"): {
        "templates": [{"name": "main", "container": {"image": "busybox:1.36"}}],
    },
    ("argoproj.io/v1alpha1", "CronWorkflow"): {
        "schedules": ["0 * * * *"],
        "concurrencyPolicy": "Forbid",
        "workflowSpec": {"entrypoint": "main", "templates": [{"name": "main", "container": {"image": "busybox"}}]},
    },
    ("v1", "Pod"): {"containers": [CONTAINER]},
    ("v1", "Service"): {"selector": {"app": "x"}, "ports": [{"name": "web", "port": 80, "targetPort": 8080}]},
    ("v1", "Namespace"): {},
    ("v1", "ResourceQuota"): {"hard": {"requests.cpu": "4", "requests.memory": "8Gi"}},
    ("v1", "PersistentVolumeClaim"): {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "1Gi"}}},
    ("networking.k8s.io/v1", "Ingress"): {
        "rules": [{"host": "x.example.com", "http": {"paths": [
            {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "x", "port": {"number": 80}}}}
        ]}}]
    },  # fmt: skip
    ("apps/v1", "Deployment"): {"selector": {"matchLabels": {"app": "x"}}, "template": {
        "metadata": {"labels": {"app": "x"}}, **POD_TEMPLATE}},  # fmt: skip
    ("batch/v1", "Job"): {"template": {"spec": {"containers": [CONTAINER], "restartPolicy": "Never"}}},
    ("v1", "ConfigMap"): None,
    ("v1", "Secret"): None,
}


def manifest(api_version: str, kind: str, spec: dict[str, Any] | None) -> dict[str, Any]:
    obj: dict[str, Any] = {"apiVersion": api_version, "kind": kind, "metadata": {"name": "demo", "namespace": "team-a"}}
    if kind == "ConfigMap":
        obj["data"] = {"key": "value"}
    elif kind == "Secret":
        obj["stringData"] = {"token": "s3cret"}
    else:
        obj["spec"] = spec
    return obj


def test_the_default_schema_folder_lies_inside_the_project():
    assert Path(settings.EASYAI_K8S_SCHEMAS).resolve().is_relative_to(BASE_DIR.resolve())
    for name in [*k8s_schema.CRD_FILES.values()]:
        assert (VENDORED / name).is_file(), name
    for name in [*k8s_schema.CORE_FILES.values(), "_definitions.json"]:
        assert (VENDORED / k8s_schema.CORE_DIR / name).is_file(), name


def test_every_kind_has_a_sample_here():
    assert set(SPECS) == set(k8s_schema.known_kinds())


@pytest.mark.parametrize(("api_version", "kind"), sorted(SPECS), ids=lambda v: str(v))
def test_a_small_object_of_every_kind_validates(api_version, kind, settings):
    settings.EASYAI_K8S_SCHEMAS = VENDORED
    assert k8s_schema.validate_manifest(manifest(api_version, kind, SPECS[(api_version, kind)])) == []


@pytest.mark.parametrize(("api_version", "kind"), sorted(SPECS), ids=lambda v: str(v))
def test_every_kind_refuses_an_unknown_field(api_version, kind, settings):
    settings.EASYAI_K8S_SCHEMAS = VENDORED
    obj = manifest(api_version, kind, SPECS[(api_version, kind)])
    obj["metadata"]["labelz"] = {"a": "b"}
    obj["extraField"] = 1
    problems = k8s_schema.validate_manifest(obj)
    assert any("extraField" in p for p in problems), problems
    assert any("labelz" in p for p in problems), problems


def test_the_reduction_drops_descriptions_but_keeps_a_property_named_description():
    schema = {
        "description": "prose",
        "type": "object",
        "properties": {
            "description": {"type": "string", "description": "the field's own prose"},
            "items": {"type": "array", "items": {"type": "string", "description": "x"}},
        },
        "additionalProperties": {"description": "y", "type": "integer"},
    }
    assert strip(schema) == {
        "type": "object",
        "properties": {"description": {"type": "string"}, "items": {"type": "array", "items": {"type": "string"}}},
        "additionalProperties": {"type": "integer"},
    }


@pytest.mark.slow
def test_a_copy_of_the_project_with_nothing_beside_it_validates_every_kind(tmp_path):
    """The project's files alone, in an empty folder: no shared folder beside it, no EASYAI_K8S_SCHEMAS."""
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=BASE_DIR, capture_output=True, check=True
    ).stdout.decode()
    project = tmp_path / "alone" / "easyai"
    for name in filter(None, listed.split("\0")):
        source = BASE_DIR / name
        if source.is_file():
            (project / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, project / name)
    environment = {k: v for k, v in os.environ.items() if k != "EASYAI_K8S_SCHEMAS" and k != "DATABASE_URL"}
    environment["EASYAI_VAR_DIR"] = str(tmp_path / "var")
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not slow",
         "clusters/tests/test_k8s_schemas.py", "clusters/tests/test_k8s_manifests.py"],
        cwd=project, env=environment, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert " passed" in done.stdout.splitlines()[-1]
    assert not (tmp_path / "alone" / "shared").exists()
