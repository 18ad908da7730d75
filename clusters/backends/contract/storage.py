"""Storage conventions: the directories every task sees, on every backend.

| variable      | in the container     | on shared storage                           |
| summary_dir   | /summary_dir         | {prefix}/{job_id}/{task_id}/summary_dir     |
| model_dir     | /model_dir           | {prefix}/{job_id}/model_dir                 |
| log_dir       | /log_dir             | {prefix}/{job_id}/log_dir                   |
| data_dir      | /data_dir (ro)       | {prefix}/data/{owner}                       |
| pre_model_dir | /pre_model_dir       | {prefix}/{pre_job_id}/model_dir             |
| share_dir     | /share_dir           | {prefix}/{job_id}/share_dir                 |
| registered_model_dir | /mnt/models (ro) | {prefix}/models/{team}/{model}/{version} |
| app_dir       | /app (ro)            | {prefix}/apps/{team}/{app}/{revision}       |
| EASYAI_DATASET_{NAME} | /datasets/{name} (ro) | {prefix}/datasets/{team}/{name}/{version} |
|               | /workspace/personal  | {prefix}/notebook/{owner}                   |
|               | /workspace/public    | {prefix}/notebook/public                    |

On Kubernetes the prefix is the cluster's NFS path, mounted with sub-paths; on
the local backend it is the storage root, and the variables hold real paths.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any


@dataclass(frozen=True)
class Place:
    variable: str  # environment variable ("" for the workspaces, which have none)
    container_path: str  # where a container sees it
    relative: str  # where it lies under the storage prefix
    read_only: bool = False


# The outputs a user may browse and download from a job's page.
JOB_OUTPUTS = ("model_dir", "summary_dir", "log_dir", "share_dir")

# A TensorBoard task's environment names the summary_dirs it shows, "j-xxxxxxxx/role-0,...": each backend
# makes them readable to it, read-only (Backend.summary_place says where it sees them).
TENSORBOARD_SOURCES = "EASYAI_TENSORBOARD_SOURCES"
TENSORBOARD_SOURCE = re.compile(r"^(j-[a-z0-9]{8})/([a-z0-9]([-a-z0-9]*[a-z0-9])?-[0-9]+)$")  # (job id, task name)


# A registered model version's files, as the model registry keeps them (KServe's /mnt/models in a pod).
REGISTERED_MODEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?/[1-9][0-9]{0,8}$")


# A job's inputs: earlier jobs' output folders it reads (spec "inputs": name -> "j-…/model_dir[/sub/path]"),
# read-only at /inputs/{name}, in $EASYAI_INPUT_{NAME}. Only model_dir and share_dir, never a workspace.
MAX_INPUTS = 20
INPUT_NAME = re.compile(r"[a-z][a-z0-9_]{0,62}", re.ASCII)
INPUT_SOURCE = re.compile(r"j-[a-z0-9]{8}/(model_dir|share_dir)(/(?!\.\.?(/|$))[^/\x00]+)*", re.ASCII)


def input_variable(name: str) -> str:
    return "EASYAI_INPUT_" + name.upper()


# A team's datasets a job mounts (spec "datasets": ["name@version", ...]), read-only at /datasets/{name}, in
# $EASYAI_DATASET_{NAME} ('-' as '_'); a version's files lie at datasets/{team}/{name}/{version}, never changed.
MAX_DATASETS = 20
DATASET_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", re.ASCII)  # at most 63 characters
DATASET_REF = re.compile(r"([a-z0-9]([-a-z0-9]*[a-z0-9])?)@([1-9][0-9]{0,8})", re.ASCII)  # name@version
DATASET_VARIABLE_PREFIX = "EASYAI_DATASET_"


def dataset_variable(name: str) -> str:
    return DATASET_VARIABLE_PREFIX + name.upper().replace("-", "_")


def dataset_dir(team: str, name: str, version: int | str) -> str:
    """Where a version of a team's dataset lies under the storage prefix."""
    return f"datasets/{team}/{name}/{version}"


def is_foreign(place: Place) -> bool:
    """A place that is not the job's own (a previous job's model_dir, an input, a dataset): read, never made or
    changed."""
    return (
        place.variable == "pre_model_dir"
        or place.variable.startswith("EASYAI_INPUT_")
        or place.variable.startswith(DATASET_VARIABLE_PREFIX)
    )


def registry_version_dir(team: str, model_version: str) -> str:
    """Where a registered version ("{model}/{version}") of a team lies under the storage prefix."""
    return f"models/{team}/{model_version}"


# A published revision of an app's code, as the apps app keeps it ("{app}/{revision}"); /app in a pod.
APP_SOURCE = REGISTERED_MODEL


def app_source_dir(team: str, app_revision: str) -> str:
    """Where a published revision ("{app}/{revision}") of a team's app lies under the storage prefix."""
    return f"apps/{team}/{app_revision}"


def places(
    job_id: str,
    task_name: str,
    owner: str,
    pre_job_id: str | None = None,
    *,
    team: str = "",
    registered_model: str | None = None,
    app_source: str | None = None,
    inputs: dict[str, str] | None = None,
    datasets: dict[str, str] | None = None,
) -> list[Place]:
    """Every place a task of this job sees, in the order of the table; a registered model version
    ("{model}/{version}" of the job's team) and an app's code ("{app}/{revision}") only when the job names one;
    ``datasets``: name -> "{team}/{name}/{version}", each read-only at /datasets/{name}.

    An app's run serves visitors (anyone, for a public app): it sees its code and its job's own folders, never
    its owner's data_dir or workspaces."""
    app = bool(app_source and team)
    result = [
        Place("summary_dir", "/summary_dir", f"{job_id}/{task_name}/summary_dir"),
        Place("model_dir", "/model_dir", f"{job_id}/model_dir"),
        Place("log_dir", "/log_dir", f"{job_id}/log_dir"),
    ]
    if not app:
        result.append(Place("data_dir", "/data_dir", f"data/{owner}", read_only=True))
    if pre_job_id:
        result.append(Place("pre_model_dir", "/pre_model_dir", f"{pre_job_id}/model_dir"))
    result += [
        Place("share_dir", "/share_dir", f"{job_id}/share_dir"),
    ]
    if registered_model and team:
        result.append(
            Place(
                "registered_model_dir",
                "/mnt/models",
                registry_version_dir(team, registered_model),
                read_only=True,
            )
        )
    for name, source in sorted((inputs or {}).items()):
        result.append(Place(input_variable(name), f"/inputs/{name}", source, read_only=True))
    for name, version_dir in sorted((datasets or {}).items()):
        result.append(Place(dataset_variable(name), f"/datasets/{name}", f"datasets/{version_dir}", read_only=True))
    if app:
        result.append(Place("app_dir", "/app", app_source_dir(team, app_source), read_only=True))
        return result
    result += [
        Place("", "/workspace/personal", f"notebook/{owner}"),
        Place("", "/workspace/public", "notebook/public"),
    ]
    return result


def local_env(
    root: Path, job_id: str, task_name: str, owner: str, pre_job_id: str | None = None, **named: Any
) -> dict[str, str]:
    """Variable -> real path under a local storage root (``named``: places()'s team, registered_model, app_source,
    inputs and datasets)."""
    return {
        p.variable: str(root / p.relative)
        for p in places(job_id, task_name, owner, pre_job_id, **named)  # type: ignore[arg-type]
        if p.variable
    }


def container_env(
    job_id: str, task_name: str, owner: str, pre_job_id: str | None = None, **named: Any
) -> dict[str, str]:
    """Variable -> path inside a container."""
    return {
        p.variable: p.container_path
        for p in places(job_id, task_name, owner, pre_job_id, **named)  # type: ignore[arg-type]
        if p.variable
    }


def nfs_subpath(prefix: str, place: Place) -> str:
    return str(PurePosixPath(prefix) / place.relative)


def personal_workspace(root: Path, owner: str) -> Path:
    return root / "notebook" / owner


def public_workspace(root: Path) -> Path:
    return root / "notebook" / "public"


def job_dir(root: Path, job_id: str) -> Path:
    return root / job_id


def task_log_path(root: Path, job_id: str, task_name: str) -> Path:
    """A task's log file, the source of truth for its live and persisted log."""
    return root / job_id / "log_dir" / f"{task_name}.log"


def output_dir(root: Path, job_id: str, output: str, task_name: str | None = None) -> Path:
    """One of a job's outputs; summary_dir is per task (the first task when none is named)."""
    if output not in JOB_OUTPUTS:
        raise ValueError(f"unknown output {output!r}; one of {', '.join(JOB_OUTPUTS)}")
    if output == "summary_dir":
        if not task_name:
            raise ValueError("summary_dir belongs to a task: name the task")
        return root / job_id / task_name / "summary_dir"
    return root / job_id / output
