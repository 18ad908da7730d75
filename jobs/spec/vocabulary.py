"""The spec's vocabulary: frameworks, roles, priorities, fields and limits, and the error it raises."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from django.db import models
from django.utils.translation import gettext_lazy as _


# The one source of the frameworks and priorities: the spec validates against them and the models' fields
# take their choices from them.
class Framework(models.TextChoices):
    PYTORCH = "pytorch", "PyTorch"
    TENSORFLOW = "tensorflow", "TensorFlow"
    MPI = "mpi", "MPI"
    XGBOOST = "xgboost", "XGBoost"
    PADDLE = "paddle", "Paddle"
    BATCH = "batch", _("batch")
    NOTEBOOK = "notebook", _("notebook")
    TENSORBOARD = "tensorboard", "TensorBoard"
    SERVING = "serving", _("model server")
    APP = "app", _("app")


class Priority(models.TextChoices):
    LOW = "low", _("low")
    NORMAL = "normal", _("normal")
    HIGH = "high", _("high")


FRAMEWORK_ROLES: dict[str, tuple[str, ...] | None] = {
    "pytorch": ("master", "worker"),
    "tensorflow": ("chief", "ps", "worker", "evaluator"),
    "mpi": ("launcher", "worker"),
    "xgboost": ("master", "worker"),
    "paddle": ("master", "worker"),
    "batch": None,  # any DNS-1123 label up to 40 characters
}
# Frameworks the platform starts for itself (notebook servers, TensorBoard): they validate like any
# other, but only the notebooks app submits them (``job_submit(internal=True)``), so they are kept out of
# FRAMEWORK_ROLES, which lists what a user may submit.
INTERNAL_FRAMEWORK_ROLES: dict[str, tuple[str, ...]] = {
    "notebook": ("notebook",),
    "tensorboard": ("tensorboard",),
    "serving": ("predictor",),  # a revision of an inference service on the local backend
    "app": ("app",),  # a published Streamlit, Gradio or custom web app (apps/)
}
ALL_FRAMEWORK_ROLES: dict[str, tuple[str, ...] | None] = {**FRAMEWORK_ROLES, **INTERNAL_FRAMEWORK_ROLES}
# Roles that have at most one task, and roles a framework cannot run without
# (the training operator refuses a PyTorchJob or XGBoostJob without a master,
# and an MPIJob without its launcher and workers).
SINGLE_ROLES: dict[str, tuple[str, ...]] = {
    "pytorch": ("master",),
    "xgboost": ("master",),
    "paddle": ("master",),
    "mpi": ("launcher",),
    "tensorflow": ("chief", "evaluator"),
    "notebook": ("notebook",),
    "tensorboard": ("tensorboard",),
    "app": ("app",),
}
REQUIRED_ROLES: dict[str, tuple[str, ...]] = {
    "pytorch": ("master",),
    "xgboost": ("master",),
    "mpi": ("launcher", "worker"),
    "notebook": ("notebook",),
    "tensorboard": ("tensorboard",),
    "serving": ("predictor",),
    "app": ("app",),
}
# The role the simple form adds once next to its workers.
LEADER_ROLE: dict[str, str | None] = {
    "pytorch": "master",
    "tensorflow": "chief",
    "mpi": "launcher",
    "xgboost": "master",
    "paddle": "master",
    "batch": None,
    "notebook": "notebook",
    "tensorboard": "tensorboard",
    "serving": "predictor",
    "app": "app",
}
PRIORITIES: tuple[str, ...] = tuple(Priority.values)
# Set by the backends (the operators' contract and the storage places); a user value would break them.
RESERVED_ENV = frozenset(
    {
        "RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "TF_CONFIG", "LOCAL_RANK", "CUDA_VISIBLE_DEVICES",
        "summary_dir", "model_dir", "log_dir", "data_dir", "pre_model_dir", "share_dir", "registered_model_dir",
        "app_dir",
    }
)  # fmt: skip
MAX_TASKS = 1000
MAX_RETRIES = 10
MAX_SPEC_CHARS = 1_000_000
SHELL = ("/bin/sh", "-c")
DEFAULT_CPU = "1"
DEFAULT_MEMORY = "2Gi"
TOLERATION_OPERATORS = ("Exists", "Equal")
TOLERATION_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")

# Stable, human order: also the order of to_yaml.
FIELDS = (
    "name", "team", "experiment", "cluster", "framework", "image", "command", "working_dir", "env", "roles",
    "priority", "scheduling", "pre_job", "volumes", "timeout", "max_retries", "ports",
)  # fmt: skip
# Present only when given: a model server's job names the registered version it serves ("churn/3"), an app's
# job the published revision of its code it runs ("demo/2"), a job may read folders of earlier jobs' outputs
# ("inputs": name -> "j-3k9x2m4q/model_dir/ckpt", read-only at /inputs/{name}, as a pipeline's steps do), and
# mount versions of its team's datasets ("datasets": ["imagenet@3", ...], read-only at /datasets/{name}), and
# keep a failed task to look at ("debug": {"keep_failed": "2h"} or {"pause_on_failure": "30m"}).
OPTIONAL_FIELDS = ("registered_model", "app_source", "inputs", "datasets", "debug")
# A role's ``services`` is present only when given, like OPTIONAL_FIELDS: other roles keep their shape.
ROLE_FIELDS = ("replicas", "cpu", "memory", "gpu", "image", "command", "env", "services")
# A background service beside a role's command (clusters.backends.contract.toolbox starts and restarts it); its
# port is served through the endpoint proxy like the spec's ``ports``, under the service's name.
SERVICE_FIELDS = ("name", "command", "port", "health")
MAX_SERVICES = 16  # per role
MAX_SERVICE_COMMAND = 16 * 1024  # characters: the command travels in a variable (EASYAI_SERVICE_<NAME>)
# How a failed task is kept (``debug``): one of these, for a duration at most the cluster's ``debug_hold_max``.
DEBUG_FIELDS = ("keep_failed", "pause_on_failure")
DEFAULT_DEBUG_HOLD_MAX = 3600  # seconds: a cluster without debug_hold_max in its settings keeps one an hour at most
SCHEDULING_FIELDS = ("node_selector", "tolerations", "queue", "gang", "oversell")
TOLERATION_FIELDS = ("key", "operator", "value", "effect")

_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"  # DNS-1123 label
_DNS_LABEL = re.compile(_LABEL, re.ASCII)
_DNS_SUBDOMAIN = re.compile(rf"{_LABEL}(\.{_LABEL})*", re.ASCII)
_SLUG = re.compile(r"[-a-zA-Z0-9_]+", re.ASCII)  # Django's SlugField: cluster and volume names
_NO_SPACES = re.compile(r"\S+")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*", re.ASCII)
_JOB_ID = re.compile(r"j-[a-z0-9]{8}", re.ASCII)
_LABEL_NAME = re.compile(r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?", re.ASCII)  # Kubernetes label name/value
_PORT_NAME = re.compile(r"(?=.*[a-z])[a-z0-9]([a-z0-9]|-(?!-))*(?<!-)", re.ASCII)  # Kubernetes IANA_SVC_NAME

_LABEL_MESSAGE = "must be lowercase letters, digits and '-', starting and ending with a letter or digit"
_MAX_LIST = 100  # volumes and tolerations; longer lists are a mistake, and capping keeps errors bounded
MAX_ENV = 1000  # variables in one env mapping; Kubernetes and exec() both choke long before a spec's size does
MAX_ENV_ENTRY = 128 * 1024 - 1  # "NAME=value" in bytes: Linux refuses a longer one (MAX_ARG_STRLEN) at exec
MAX_DEPTH = 32  # nesting of a spec document (a spec needs 5): deeper input is refused before anything walks it
_MAX_UNKNOWN = 50  # unknown fields reported one by one in a mapping; the rest are counted
_MAX_SUGGESTED_KEY = 100  # longer unknown keys get no "did you mean": difflib's cost grows with their length
_SURROGATE = re.compile("[\ud800-\udfff]")  # a lone surrogate: text that UTF-8 (and so MySQL, JSON out) cannot carry
_MAX_GPU_TOTAL = 2**31 - 1  # the job's gpu column
_MAX_TIMEOUT = 2**31 - 1  # the job's timeout_seconds column


class SpecError(Exception):
    """Every problem of a spec, by field path (``roles.worker.replicas``, ``scheduling.tolerations.0.effect``)."""

    def __init__(self, errors: dict[str, list[str]]):
        self.errors = errors
        super().__init__("; ".join(f"{path}: {message}" for path, messages in errors.items() for message in messages))


def _join(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)


def _absent(value: Any) -> bool:
    """Null or empty: an optional field that was not given."""
    return value is None or (isinstance(value, str | list | dict) and not value)


def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, Mapping):
        return "a mapping"
    if value is None:
        return "null"
    if isinstance(value, str):
        return "a string"
    return f"a {type(value).__name__}"
