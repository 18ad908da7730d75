"""A TensorBoard's job spec over other jobs' summary_dirs, and whether a job has summaries to show; the
service that opens one is ``notebooks.services.tensorboard_open``."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from django.conf import settings

from clusters.backends import get_backend
from clusters.backends.contract import storage
from clusters.models import Cluster
from jobs.models import Job
from notebooks.models import TENSORBOARD_TASK
from notebooks.specs import bind_address
from teams.models import Team

TENSORBOARD_PORT = 6006
# Used when settings.py has no EASYAI_TENSORBOARD_IMAGE: an image with the tensorboard command on PATH.


def summary_dirs(job: Job) -> list[tuple[str, Path]]:
    """(task name, summary_dir under the portal's storage root) of each task of a job.

    On a local cluster that is where the task wrote. On Kubernetes it is the same place only where the
    cluster's NFS export is mounted at the storage root on the portal's host too.
    """
    root = Path(settings.EASYAI_STORAGE_ROOT)
    return [
        (task.name, storage.output_dir(root, job.public_id, "summary_dir", task.name))
        for task in sorted(job.tasks.all(), key=lambda t: (t.role, t.index))
    ]


def has_nfs_storage(cluster: Cluster) -> bool:
    return bool(cluster.nfs_server and cluster.nfs_path)


def has_summaries(job: Job) -> bool:
    """Whether "Open TensorBoard" makes sense for the job: a task wrote summaries, or may have.

    Locally the summary_dirs are listed. On Kubernetes they lie on the cluster's NFS export, which the
    portal can list only where it is mounted at the storage root: then they are listed too; otherwise
    every job that has started on a cluster with NFS storage qualifies, and a TensorBoard over a job
    that wrote nothing shows an empty board.
    """
    if job.framework in ("notebook", "tensorboard"):
        return False
    if job.cluster.kind == Cluster.Kind.LOCAL:
        return any(path.is_dir() and any(path.iterdir()) for _name, path in summary_dirs(job))
    if not has_nfs_storage(job.cluster):
        return False
    visible = [path for _name, path in summary_dirs(job) if path.is_dir()]
    if visible:
        return any(any(path.iterdir()) for path in visible)
    return job.started_at is not None


def tensorboard_spec(jobs: list[Job], cluster: Cluster, team: Team) -> dict[str, Any]:
    """The TensorBoard job's spec over these jobs' summary_dirs, each where the cluster's backend shows it."""
    backend = get_backend(cluster)
    runs, sources = [], []
    for job in jobs:
        for task_name, path in summary_dirs(job):
            # Locally where it lies; on Kubernetes the pod mounts each summary_dir read-only in a place of its own.
            where = backend.summary_place(job.public_id, task_name, str(path))
            # logdir_spec is "name:path,name:path": neither may hold a comma, nor the name a colon.
            runs.append(f"{job.name}.{job.public_id}/{task_name}:{where}")
            sources.append(f"{job.public_id}/{task_name}")
    logdir_spec = ",".join(runs)
    prefix = f'/endpoints/"$EASYAI_JOB_ID"/{TENSORBOARD_TASK}/tensorboard'
    command = (
        f"exec tensorboard --logdir_spec {shlex.quote(logdir_spec)} --path_prefix {prefix} "
        f'--host {bind_address(cluster)} --port "$EASYAI_PORT_TENSORBOARD" --load_fast false --reload_interval 15'
    )
    spec = {
        "name": "tensorboard",
        "team": team.slug,
        "cluster": cluster.name,
        "framework": "tensorboard",
        "image": settings.EASYAI_TENSORBOARD_IMAGE,
        "command": command,
        "roles": {"tensorboard": {"replicas": 1, "cpu": "1", "memory": "2Gi"}},
        "scheduling": {"oversell": settings.EASYAI_NOTEBOOK_OVERSELL},
        "ports": {"tensorboard": TENSORBOARD_PORT},
    }
    # Which summary_dirs the task sees: mounted read-only in its pod, or in its sandbox on the local backend.
    spec["env"] = {storage.TENSORBOARD_SOURCES: ",".join(sources)}
    return spec
