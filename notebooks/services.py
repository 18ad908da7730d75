"""Functions that change notebooks and TensorBoards. Pages, API, admin and workers all call these.

A notebook server or a TensorBoard runs as a single-task job that the jobs app
submits, follows and stops (``job_submit(internal=True)``: users cannot submit
those frameworks themselves). This module builds the job's spec: the command
with its base URL under the portal's endpoint proxy, the web endpoint, the
workspaces, the oversold resources.
"""

from __future__ import annotations

import logging
import re
import shlex
import shutil
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from clusters.models import Cluster
from jobs import services as job_services
from jobs import storage
from jobs.models import Job
from jobs.quantity import whole_number
from jobs.state import ACTIVE, Input
from notebooks.models import NOTEBOOK_TASK, TENSORBOARD_TASK, Notebook, TensorBoard
from teams import permissions
from teams.models import Team

log = logging.getLogger(__name__)

DEFAULT_LEASE_HOURS = 8
MAX_TENSORBOARD_JOBS = 20
_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", re.ASCII)
# Where the servers listen inside a pod; locally each named port gets a free host port instead.
JUPYTER_PORT = 8888
VSCODE_PORT = 8080
TENSORBOARD_PORT = 6006
# Used when settings.py has no EASYAI_TENSORBOARD_IMAGE: an image with the tensorboard command on PATH.
DEFAULT_TENSORBOARD_IMAGE = "tensorflow/tensorflow:latest"


class NotebookActionRefused(Exception):  # noqa: N818 - reads as what happened
    """An action the notebook's state does not allow (renewing a stopped one). Faces answer 409."""


def _setting(name: str, default: Any) -> Any:
    return getattr(settings, name, default)


def access_key(job_id: str) -> str:
    """Cache key of the last time the endpoint proxy served a request of this job (a UNIX time)."""
    return f"easyai:endpoint-access:{job_id}"


def record_access(job_id: str, when: float | None = None) -> None:
    cache.set(access_key(job_id), when if when is not None else timezone.now().timestamp(), timeout=7 * 86400)


# --- what a run looks like ---------------------------------------------------------------


def _local_program(program: str) -> str | None:
    """A program as a local task finds it: the portal's Python's bin first, then PATH (contract.task_env)."""
    here = Path(sys.executable).parent / program
    return str(here) if here.exists() else shutil.which(program)


def _workspaces(cluster: Cluster, owner: str) -> tuple[str, str]:
    if cluster.kind == Cluster.Kind.LOCAL:
        root = Path(settings.EASYAI_STORAGE_ROOT)
        return str(storage.personal_workspace(root, owner)), str(storage.public_workspace(root))
    return "/workspace/personal", "/workspace/public"


def _bind(cluster: Cluster) -> str:
    # Locally only the portal (on this host) may reach the server: its proxy is the only way in. In a pod
    # the portal comes from outside, to the pod's IP.
    return "127.0.0.1" if cluster.kind == Cluster.Kind.LOCAL else "0.0.0.0"


def notebook_command(notebook: Notebook, cluster: Cluster) -> str:
    """The server's command line; the job id is known only when the job is recorded, so it comes from the env."""
    personal, _public = _workspaces(cluster, notebook.owner.username)
    base = f'/endpoints/"$EASYAI_JOB_ID"/{NOTEBOOK_TASK}/{notebook.endpoint_name}/'
    if notebook.kind == Notebook.Kind.VSCODE:
        return (
            f'exec code-server --bind-addr {_bind(cluster)}:"$EASYAI_PORT_VSCODE" --auth none '
            f"--disable-telemetry --disable-update-check {shlex.quote(personal)}"
        )
    root_dir = personal if cluster.kind == Cluster.Kind.LOCAL else "/workspace"
    # No password: the portal's proxy authenticates every request and only the owner gets through. The server
    # demands a token all the same, one only the portal can make: the backend gives it as JUPYTER_TOKEN (in
    # the pod on a cluster, in the task's environment locally) and the proxy sends it. Others reach the server
    # too (a pod's IP or an ingress; locally every task shares the host's loopback), and must not use it.
    # Jupyter's XSRF check stays on (its cookie passes the proxy). allow_remote_access: requests arrive with
    # the portal's Host header, not localhost.
    return (
        f'exec jupyter lab --no-browser --allow-root --ip={_bind(cluster)} --port="$EASYAI_PORT_JUPYTER" '
        f"--ServerApp.base_url={base} --PasswordIdentityProvider.hashed_password= "
        f"--ServerApp.allow_remote_access=True --LabApp.extension_manager=readonly "
        f"--ServerApp.root_dir={shlex.quote(root_dir)}"
    )


def notebook_spec(notebook: Notebook, cluster: Cluster) -> dict[str, Any]:
    personal, public = _workspaces(cluster, notebook.owner.username)
    vscode = notebook.kind == Notebook.Kind.VSCODE
    image = notebook.image or (
        _setting("EASYAI_VSCODE_IMAGE", "codercom/code-server:latest")
        if vscode
        else _setting("EASYAI_NOTEBOOK_IMAGE", "quay.io/jupyter/scipy-notebook:latest")
    )
    return {
        "name": notebook.name,
        "team": notebook.team.slug,
        "cluster": cluster.name,
        "framework": "notebook",
        "image": image,
        "command": notebook_command(notebook, cluster),
        "env": {"EASYAI_WORKSPACE_PERSONAL": personal, "EASYAI_WORKSPACE_PUBLIC": public},
        "roles": {"notebook": {"replicas": 1, "cpu": notebook.cpu, "memory": notebook.memory, "gpu": notebook.gpu}},
        # A notebook mostly waits for its user: it asks for a share of its limits (GPUs are never oversold).
        "scheduling": {"oversell": float(_setting("EASYAI_NOTEBOOK_OVERSELL", 4))},
        "ports": {notebook.endpoint_name: VSCODE_PORT if vscode else JUPYTER_PORT},
    }


# Spec paths of a notebook's job -> the notebook's own fields, so errors name what the user typed.
_SPEC_FIELDS = {
    "name": "name",
    "team": "team",
    "cluster": "cluster",
    "image": "image",
    "roles.notebook.cpu": "cpu",
    "roles.notebook.memory": "memory",
    "roles.notebook.gpu": "gpu",
    "roles": "resources",
}


def _as_fields(exc: ValidationError) -> ValidationError:
    errors: dict[str, list[str]] = {}
    for path, messages in exc.message_dict.items():
        errors.setdefault(_SPEC_FIELDS.get(path, path), []).extend(messages)
    return ValidationError(errors)


def _lease_hours(value: Any, team: Team, errors: dict[str, list[str]]) -> int | None:
    maximum = team.notebook_max_lease_hours
    if isinstance(value, str) and whole_number(value, 9) is not None:
        value = whole_number(value, 9)
    if isinstance(value, bool) or not isinstance(value, int):
        errors["lease_hours"] = [_("A whole number of hours.")]
    elif value < 1:
        errors["lease_hours"] = [_("At least 1 hour.")]
    elif value > maximum:
        errors["lease_hours"] = [
            _("At most %(max)s hours: the team's maximum lease (team admins set it).") % {"max": maximum}
        ]
    else:
        return value
    return None


def _check_kind(kind: Any, cluster: Cluster | None, errors: dict[str, list[str]]) -> None:
    if kind not in Notebook.Kind.values:
        errors["kind"] = [_("One of %(kinds)s.") % {"kinds": ", ".join(Notebook.Kind.values)}]
        return
    if cluster is None or cluster.kind != Cluster.Kind.LOCAL:
        return  # on Kubernetes the image brings the server
    program, advice = (
        ("code-server", _("install code-server on this host"))
        if kind == Notebook.Kind.VSCODE
        else ("jupyter", _("install the notebook extras: pip install -r requirements-notebooks.txt"))
    )
    if _local_program(program) is None:
        errors["kind"] = [
            _("%(kind)s needs %(program)s on the local cluster's host, and it is not there: %(advice)s.")
            % {"kind": Notebook.Kind(kind).label, "program": program, "advice": advice}
        ]


# --- notebooks -------------------------------------------------------------------------------


@transaction.atomic
def notebook_create(
    *,
    user,
    team: Team | None,
    name: Any,
    kind: Any = Notebook.Kind.JUPYTERLAB,
    cluster: str | None = None,
    image: Any = "",
    cpu: Any = "2",
    memory: Any = "4Gi",
    gpu: Any = 0,
    lease_hours: Any = DEFAULT_LEASE_HOURS,
) -> Notebook:
    """Create a notebook in a team the user belongs to and start its first run."""
    errors: dict[str, list[str]] = {}
    if team is None or not permissions.can_use_team(user, team):
        raise ValidationError({"team": [_("No team that you belong to: name one, or ask a team admin to add you.")]})
    name = name.strip() if isinstance(name, str) else name
    if not isinstance(name, str) or not name:
        errors["name"] = [_("This field is required.")]
    elif len(name) > 40 or not _NAME.fullmatch(name):
        errors["name"] = [
            _("Lowercase letters, digits and '-', starting and ending with a letter or digit, at most 40.")
        ]
    elif Notebook.objects.filter(team=team, owner=user, name=name).exists():
        errors["name"] = [_("You already have a notebook named %(name)r in this team.") % {"name": name}]
    hours = _lease_hours(lease_hours, team, errors)
    if not isinstance(image, str) or len(image) > 1024 or (image and not re.fullmatch(r"\S+", image)):
        errors["image"] = [_("An image name without spaces.")]
    if isinstance(gpu, str) and whole_number(gpu, 9) is not None:
        gpu = whole_number(gpu, 9)
    # The resources, the cluster (named, or the default) and the team's quota, checked as job_submit will.
    probe = {
        "name": name if "name" not in errors else "probe",
        "framework": "notebook",
        "team": team.slug,
        "cluster": cluster or None,
        "command": "true",
        "roles": {"notebook": {"cpu": cpu, "memory": memory, "gpu": gpu}},
    }
    resolved: Cluster | None = None
    try:
        _spec, _team, resolved, _volumes, _pre = job_services.job_prepare(user=user, data=probe, internal=True)
    except ValidationError as exc:
        for field, messages in _as_fields(exc).message_dict.items():
            errors.setdefault(field, messages)
    _check_kind(kind, resolved, errors)
    if errors:
        raise ValidationError(errors)
    notebook = Notebook.objects.create(
        name=name,
        team=team,
        owner=user,
        cluster=resolved,
        kind=kind,
        image=image,
        cpu=str(cpu),
        memory=str(memory),
        gpu=gpu,
        lease_hours=hours,
    )
    return notebook_start(notebook=notebook, user=user)


@transaction.atomic
def notebook_start(*, notebook: Notebook, user) -> Notebook:
    """A new run of the notebook: a notebook job, with a fresh lease."""
    notebook = (
        Notebook.objects.select_for_update().select_related("team", "owner", "cluster", "job").get(pk=notebook.pk)
    )
    if notebook.active:
        raise NotebookActionRefused(_("The notebook is already running (job %(job)s).") % {"job": notebook.job})
    errors: dict[str, list[str]] = {}
    _check_kind(notebook.kind, notebook.cluster, errors)
    if errors:
        raise ValidationError(errors)
    try:
        job = job_services.job_submit(
            user=notebook.owner, data=notebook_spec(notebook, notebook.cluster), internal=True
        )
    except ValidationError as exc:
        raise _as_fields(exc) from None
    now = timezone.now()
    notebook.job = job
    notebook.expires_at = now + timedelta(hours=notebook.lease_hours)
    notebook.last_activity_at = None
    notebook.save(update_fields=["job", "expires_at", "last_activity_at"])
    return notebook


def notebook_stop(*, notebook: Notebook, actor=None, reason: str = "stopped", message: str = "") -> Notebook:
    """Stop the notebook's run; its workspace files stay."""
    if not notebook.active:
        raise NotebookActionRefused(_("The notebook is not running."))
    try:
        job_services.job_stop(job=notebook.job, actor=actor, event=Input.STOP, reason=reason, message=message)
    except job_services.JobActionRefused as exc:
        raise NotebookActionRefused(str(exc)) from None
    notebook.job.refresh_from_db()
    return notebook


@transaction.atomic
def notebook_renew(*, notebook: Notebook, hours: Any = None) -> Notebook:
    """Extend the lease of a running notebook to ``hours`` from now (its own lease length by default)."""
    notebook = Notebook.objects.select_for_update().select_related("team", "job").get(pk=notebook.pk)
    errors: dict[str, list[str]] = {}
    lease = _lease_hours(notebook.lease_hours if hours in (None, "") else hours, notebook.team, errors)
    if errors:
        raise ValidationError(errors)
    if not notebook.active:
        raise NotebookActionRefused(_("The notebook is not running: start it instead."))
    notebook.lease_hours = lease
    notebook.expires_at = timezone.now() + timedelta(hours=lease)
    notebook.save(update_fields=["lease_hours", "expires_at"])
    return notebook


@transaction.atomic
def notebook_delete(*, notebook: Notebook, actor=None) -> None:
    """Stop the notebook if it runs and remove it; its jobs stay on record (hidden), its files stay."""
    if notebook.job is not None:
        job_services.job_delete(job=notebook.job, actor=actor)
    notebook.delete()


# --- TensorBoard -------------------------------------------------------------------------------


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
    from clusters.backends.kubernetes.manifests import TENSORBOARD_SOURCES, summary_mount_path

    local = cluster.kind == Cluster.Kind.LOCAL
    runs, sources = [], []
    for job in jobs:
        for task_name, path in summary_dirs(job):
            # On Kubernetes the pod mounts each summary_dir read-only where manifests.summary_mount_path says.
            where = str(path) if local else summary_mount_path(job.public_id, task_name)
            # logdir_spec is "name:path,name:path": neither may hold a comma, nor the name a colon.
            runs.append(f"{job.name}.{job.public_id}/{task_name}:{where}")
            sources.append(f"{job.public_id}/{task_name}")
    logdir_spec = ",".join(runs)
    prefix = f'/endpoints/"$EASYAI_JOB_ID"/{TENSORBOARD_TASK}/tensorboard'
    command = (
        f"exec tensorboard --logdir_spec {shlex.quote(logdir_spec)} --path_prefix {prefix} "
        f'--host {_bind(cluster)} --port "$EASYAI_PORT_TENSORBOARD" --load_fast false --reload_interval 15'
    )
    spec = {
        "name": "tensorboard",
        "team": team.slug,
        "cluster": cluster.name,
        "framework": "tensorboard",
        "image": _setting("EASYAI_TENSORBOARD_IMAGE", DEFAULT_TENSORBOARD_IMAGE),
        "command": command,
        "roles": {"tensorboard": {"replicas": 1, "cpu": "1", "memory": "2Gi"}},
        "scheduling": {"oversell": float(_setting("EASYAI_NOTEBOOK_OVERSELL", 4))},
        "ports": {"tensorboard": TENSORBOARD_PORT},
    }
    # Which summary_dirs the task sees: mounted read-only in its pod, or in its sandbox on the local backend.
    spec["env"] = {TENSORBOARD_SOURCES: ",".join(sources)}
    return spec


@transaction.atomic
def tensorboard_open(*, user, job_ids: Any) -> tuple[TensorBoard, bool]:
    """A running TensorBoard over these jobs' summaries: the one already running for them (created: False),
    or a new one (created: True)."""
    from jobs.selectors import jobs_visible

    if not isinstance(job_ids, list) or not job_ids or not all(isinstance(i, str) for i in job_ids):
        raise ValidationError({"jobs": [_("A list of job ids.")]})
    ids = sorted(set(job_ids))
    if len(ids) > MAX_TENSORBOARD_JOBS:
        raise ValidationError({"jobs": [_("At most %(n)s jobs at once.") % {"n": MAX_TENSORBOARD_JOBS}]})
    found = {job.public_id: job for job in jobs_visible(user).filter(public_id__in=ids).prefetch_related("tasks")}
    missing = [i for i in ids if i not in found]
    if missing:
        raise ValidationError({"jobs": [_("No job %(job)r that you can see.") % {"job": i} for i in missing]})
    jobs = [found[i] for i in ids]
    clusters = {job.cluster_id for job in jobs}
    if len(clusters) > 1:
        raise ValidationError({"jobs": [_("The jobs run on different clusters: compare jobs of one cluster.")]})
    cluster = jobs[0].cluster
    local = cluster.kind == Cluster.Kind.LOCAL
    if not local and not has_nfs_storage(cluster):
        raise ValidationError(
            {
                "jobs": [
                    _(
                        "Cluster %(cluster)s has no NFS storage configured: a TensorBoard there could not mount "
                        "the jobs' summary_dirs. A platform admin sets its NFS server and path."
                    )
                    % {"cluster": cluster.name}
                ]
            }
        )
    if not any(has_summaries(job) for job in jobs):
        raise ValidationError({"jobs": [_("None of these jobs has written summaries to its summary_dir yet.")]})
    if local and any("," in str(path) for job in jobs for _n, path in summary_dirs(job)):
        raise ValidationError({"jobs": [_("The storage root's path holds a comma, which TensorBoard cannot read.")]})
    key = ",".join(ids)
    running = (
        permissions.restrict(
            TensorBoard.objects.filter(sources_key=key, cluster=cluster, job__state__in=ACTIVE, job__deleted=False),
            user,
        )
        .select_related("job")
        .first()
    )
    if running is not None:
        record_access(running.job.public_id)
        return running, False
    # In the jobs' own team when the user may work there (a team-mate's jobs), else the user's team.
    team = jobs[0].team
    if len({job.team_id for job in jobs}) > 1 or not permissions.can_use_team(user, team):
        from teams.selectors import current_team_for

        team = current_team_for(user)
        if team is None:
            raise ValidationError({"team": [_("You are in no team: ask a team admin to add you.")]})
    if local and _local_program("tensorboard") is None:
        raise ValidationError(
            {"jobs": [_("TensorBoard is not installed on this host: pip install -r requirements-notebooks.txt")]}
        )
    job = job_services.job_submit(user=user, data=tensorboard_spec(jobs, cluster, team), internal=True)
    board = TensorBoard.objects.create(team=team, owner=user, cluster=cluster, job=job, sources_key=key)
    board.sources.set(jobs)
    # Idle time counts from now, not from a last visit that never happened.
    transaction.on_commit(lambda: record_access(job.public_id))
    return board, True
