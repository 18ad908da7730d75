"""Functions that change notebooks and TensorBoards. Pages, API, admin and workers all call these.

A notebook server or a TensorBoard runs as a single-task job that the jobs app
submits, follows and stops (``job_submit(internal=True)``: users cannot submit
those frameworks themselves). The job's spec is built, without side effects, by
``notebooks/specs.py`` (a notebook's) and ``notebooks/tensorboard.py`` (a TensorBoard's).
"""

from __future__ import annotations

import logging
import re
from datetime import timedelta
from typing import Any

from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from clusters.backends.contract.quantity import whole_number
from clusters.models import Cluster
from jobs import services as job_services
from jobs.state import ACTIVE, Input
from notebooks import specs, tensorboard
from notebooks.models import Notebook, TensorBoard
from teams import permissions
from teams.exceptions import ActionRefused
from teams.models import Team

log = logging.getLogger(__name__)

DEFAULT_LEASE_HOURS = 8
MAX_TENSORBOARD_JOBS = 20
_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", re.ASCII)


class NotebookActionRefused(ActionRefused):
    """An action the notebook's state does not allow (renewing a stopped one). Faces answer 409."""


def access_key(job_id: str) -> str:
    """Cache key of the last time the endpoint proxy served a request of this job (a UNIX time)."""
    return f"easyai:endpoint-access:{job_id}"


def record_access(job_id: str, when: float | None = None) -> None:
    cache.set(access_key(job_id), when if when is not None else timezone.now().timestamp(), timeout=7 * 86400)


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
    if kind == Notebook.Kind.VSCODE:
        program, found = "code-server", specs.code_server()
        advice = _("install it with sh notebooks/vscode/install.sh (make setup does where npm is installed)")
    else:
        program, found = "jupyter", specs.local_program("jupyter")
        advice = _("install the notebook extras: pip install -r requirements-notebooks.txt")
    if found is None:
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
            user=notebook.owner, data=specs.notebook_spec(notebook, notebook.cluster), internal=True
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
    if not local and not tensorboard.has_nfs_storage(cluster):
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
    if not any(tensorboard.has_summaries(job) for job in jobs):
        raise ValidationError({"jobs": [_("None of these jobs has written summaries to its summary_dir yet.")]})
    if local and any("," in str(path) for job in jobs for _n, path in tensorboard.summary_dirs(job)):
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
    if local and specs.local_program("tensorboard") is None:
        raise ValidationError(
            {"jobs": [_("TensorBoard is not installed on this host: pip install -r requirements-notebooks.txt")]}
        )
    job = job_services.job_submit(user=user, data=tensorboard.tensorboard_spec(jobs, cluster, team), internal=True)
    board = TensorBoard.objects.create(team=team, owner=user, cluster=cluster, job=job, sources_key=key)
    board.sources.set(jobs)
    # Idle time counts from now, not from a last visit that never happened.
    transaction.on_commit(lambda: record_access(job.public_id))
    return board, True
