"""The debug toolbox in a pod (clusters/backends/contract/toolbox.py): the tools, the wrapper, the hold.

Every task's pod gets an init container ``easyai-tools`` from the cluster's tools image (its ``tools_image``
setting, else ``DEFAULT_TOOLS_IMAGE``; built from ``clusters/backends/kubernetes/tools-image/``) that copies the
image's ``/tools`` into an emptyDir, which the task's container sees read-only at ``toolbox.POD_TOOLS_DIR``; a
second emptyDir is the wrapper's run folder (``toolbox.POD_RUN_DIR``: ``held``, ``release``). The task's
command runs under the wrapper (services, the static tools on PATH, the hold), with the wrapper's variables.
A task without a command of its own (the image's entrypoint) cannot be wrapped: it gets the tools, for SSH, and
nothing else (``check`` refuses services or a hold for it).

A job whose spec holds a failed task (``debug``) says so in an annotation on its object and its pods
(``easyai.io/hold``: the mode; ``easyai.io/hold-seconds``), and its containers are not ready while held (a
readiness probe on the ``held`` file): a sync pass reads the file only in such pods, and nothing more for the
others.
"""

from __future__ import annotations

from typing import Any

from clusters.backends.base import JobDescription, TaskDescription
from clusters.backends.contract import toolbox

DEFAULT_TOOLS_IMAGE = "easyai/tools:1"  # a cluster's ``tools_image`` setting names another (its registry's copy)
TOOLS_SETTING = "tools_image"
INIT_CONTAINER = "easyai-tools"
TOOLS_VOLUME = "easyai-tools"
RUN_VOLUME = "easyai-run"
# The init container's copy: the image's static busybox, so the image needs no shell.
TOOLS_IN_IMAGE = "/tools"
INIT_COMMAND = [f"{TOOLS_IN_IMAGE}/busybox", "cp", "-R", f"{TOOLS_IN_IMAGE}/.", f"{toolbox.POD_TOOLS_DIR}/"]
# Small and explicit: a quota on limits needs them on every container, and the copy takes a second.
INIT_RESOURCES = {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"cpu": "200m", "memory": "64Mi"}}
BUSYBOX = f"{toolbox.POD_TOOLS_DIR}/busybox"
HELD_FILE = f"{toolbox.POD_RUN_DIR}/held"
RELEASE_FILE = f"{toolbox.POD_RUN_DIR}/release"
ANNOTATION_HOLD = "easyai.io/hold"
ANNOTATION_HOLD_SECONDS = "easyai.io/hold-seconds"
# Not ready while held: the pod list then tells which pods may hold, without asking each one.
HELD_PROBE = {
    "exec": {"command": [BUSYBOX, "test", "!", "-e", HELD_FILE]},
    "periodSeconds": 5,
    "timeoutSeconds": 5,
    "failureThreshold": 1,
    "successThreshold": 1,
}


def tools_image(cluster: Any) -> str:
    """The cluster's tools image: its ``tools_image`` setting when it names one, else the default."""
    settings = getattr(cluster, "settings", None)
    value = settings.get(TOOLS_SETTING) if isinstance(settings, dict) else None
    return value.strip() if isinstance(value, str) and value.strip() else DEFAULT_TOOLS_IMAGE


def job_hold(job: JobDescription) -> tuple[str, int] | None:
    """(mode, seconds) of the job's hold (the spec's ``debug``, the same on every task), or None."""
    for task in job.tasks:
        if task.hold_mode in toolbox.HOLD_MODES and task.hold_seconds > 0:
            return task.hold_mode, int(task.hold_seconds)
    return None


def hold_annotations(job: JobDescription) -> dict[str, str]:
    hold = job_hold(job)
    if hold is None:
        return {}
    return {ANNOTATION_HOLD: hold[0], ANNOTATION_HOLD_SECONDS: str(hold[1])}


def pod_hold(pod: dict[str, Any]) -> tuple[str, int] | None:
    """(mode, seconds) of the hold a pod's annotations announce, or None."""
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    mode = annotations.get(ANNOTATION_HOLD)
    if mode not in toolbox.HOLD_MODES:
        return None
    try:
        return mode, int(annotations.get(ANNOTATION_HOLD_SECONDS, "0"))
    except ValueError:
        return mode, 0


def wrappable(task: TaskDescription) -> bool:
    """A task with a command of its own runs under the wrapper; one left to its image's entrypoint cannot."""
    return bool(task.command)


def problems(job: JobDescription) -> list[str]:
    """What the spec asks of the toolbox that a pod cannot give."""
    found = []
    for task in job.tasks:
        if (task.services or task.hold_mode) and not wrappable(task):
            asks = "services" if task.services else f"debug.{task.hold_mode}"
            found.append(
                f"{task.name}: {asks} need the task's command (the image's own entrypoint cannot be wrapped): "
                "give the role a command"
            )
    return found


def init_container(cluster: Any) -> dict[str, Any]:
    return {
        "name": INIT_CONTAINER,
        "image": tools_image(cluster),
        "imagePullPolicy": "IfNotPresent",
        "command": list(INIT_COMMAND),
        "resources": {kind: dict(values) for kind, values in INIT_RESOURCES.items()},
        "volumeMounts": [{"name": TOOLS_VOLUME, "mountPath": toolbox.POD_TOOLS_DIR}],
    }


def volumes() -> list[dict[str, Any]]:
    return [{"name": TOOLS_VOLUME, "emptyDir": {}}, {"name": RUN_VOLUME, "emptyDir": {}}]


def mounts() -> list[dict[str, Any]]:
    return [
        {"name": TOOLS_VOLUME, "mountPath": toolbox.POD_TOOLS_DIR, "readOnly": True},
        {"name": RUN_VOLUME, "mountPath": toolbox.POD_RUN_DIR},
    ]


def service_logs(nfs: bool) -> str:
    """Where the services log: beside the task's log on the NFS (``log_dir/{task}.services``, as locally), else
    in the run folder. The task's name comes from the variables the identity env sets before it."""
    if nfs:
        return "/log_dir/$(EASYAI_TASK_ROLE)-$(EASYAI_TASK_INDEX).services"
    return f"{toolbox.POD_RUN_DIR}/services"


def wrapper_env(task: TaskDescription, nfs: bool) -> list[dict[str, str]]:
    """The wrapper's variables (the tools, the run folder, the services' logs, the services, the hold)."""
    values = {
        toolbox.TOOLS: toolbox.POD_TOOLS_DIR,
        toolbox.RUN_DIR: toolbox.POD_RUN_DIR,
        toolbox.SERVICE_LOGS: service_logs(nfs),
        **toolbox.wrapper_env(task.services, task.hold_mode, task.hold_seconds),
    }
    return [{"name": name, "value": value} for name, value in values.items()]


def wrapped_command(task: TaskDescription) -> list[str]:
    return toolbox.wrapped_argv(toolbox.POD_TOOLS_DIR, list(task.command))
