"""Functions that change experiments and jobs. Pages, API, admin, CLI and workers all call these.

The one writer of a job's state is ``job_transition``: a compare-and-set on the
row, a JobEvent in the same transaction, and side effects after commit.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, timedelta
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from clusters.backends.base import JobDescription
from clusters.models import Cluster
from jobs import datasets as job_datasets
from jobs import images as job_images
from jobs import quota as quotas
from jobs import spec as job_spec
from jobs.describe import describe
from jobs.models import Experiment, Job, JobEvent, ShellSession, Task, Volume, new_job_id
from jobs.spec import toolbox as job_spec_toolbox
from jobs.state import ACTIVE, ENDED_OBSERVATIONS, FINAL, HOLD_RELEASED, Input, JobState
from jobs.state import path as transition_path
from teams import permissions
from teams.exceptions import ActionRefused
from teams.models import Team
from teams.prepared import PreparedRead, first_of
from teams.selectors import current_team_for

log = logging.getLogger(__name__)

# How long a stop just handed to a worker is left to it before the scheduler asks the backend again.
STOP_LEASE_SECONDS = 30


class JobActionRefused(ActionRefused):
    """An action the job's state does not allow (stopping a finished job). Faces answer 409."""


def _enqueue(func: str, *args: Any) -> None:
    """Hand work to a django-q2 worker once the current transaction has committed.

    On the ORM broker (the embedded default) the queue is a table of the same database: the entry is written
    in the transaction itself, so it commits (or not) with the rows it is about (one commit, not two). On
    Redis, and when tasks run inline, it is sent after the commit, so no worker looks before the rows exist."""
    from django_q.conf import Conf
    from django_q.tasks import async_task

    if Conf.ORM == "default" and not Conf.SYNC and transaction.get_connection().in_atomic_block:
        async_task(func, *args)
    else:
        transaction.on_commit(lambda: async_task(func, *args))


# --- experiments ------------------------------------------------------------------


@transaction.atomic
def experiment_create(*, user, team: Team, name: str, description: str = "") -> Experiment:
    """Create an experiment in a team the user belongs to."""
    errors: dict[str, list[str]] = {}
    name = (name or "").strip()
    if not name:
        errors["name"] = [_("This field is required.")]
    elif len(name) > 100:
        errors["name"] = [_("At most 100 characters.")]
    if not permissions.can_use_team(user, team):
        errors["team"] = [_("No such team.")]
    if not errors and Experiment.objects.filter(team=team, name=name).exists():
        errors["name"] = [_("The team already has an experiment named %(name)r.") % {"name": name}]
    if errors:
        raise ValidationError(errors)
    return Experiment.objects.create(team=team, name=name, description=description or "", owner=user)


# --- submit -----------------------------------------------------------------------


@dataclass
class DryRun:
    """What a submit would record and hand to the backend, without recording anything."""

    spec: dict
    description: JobDescription
    rendered: list[dict]


def _resolve(user, spec: dict) -> tuple[Team, Cluster, list[Volume], Job | None]:
    """Turn the spec's names into rows the user may use; every problem is named by its field."""
    errors: dict[str, list[str]] = {}
    team: Team | None
    if spec.get("team"):
        team = permissions.visible_teams(user).filter(slug=spec["team"]).first()
        if team is None:
            errors["team"] = [_("No team %(team)r that you belong to.") % {"team": spec["team"]}]
    else:
        team = current_team_for(user)
        if team is None:
            errors["team"] = [_("You are in no team: name one, or ask a team admin to add you.")]

    # The named cluster, else the default (else the first enabled), with the team's quota on it in the same query
    # (_check_quota reads it). Without a team (refused above) its errors are still found: no team has id 0.
    cluster = quotas.cluster_with_team_quota(team.pk if team is not None else 0, spec.get("cluster") or "")
    if spec.get("cluster"):
        if cluster is None:
            errors["cluster"] = [_("No cluster %(cluster)r.") % {"cluster": spec["cluster"]}]
        elif not cluster.enabled:
            errors["cluster"] = [_("The cluster %(cluster)r is disabled.") % {"cluster": cluster.name}]
    elif cluster is None:
        errors["cluster"] = [_("No cluster is enabled: ask a platform admin to add one.")]
    if cluster is not None and spec.get("debug"):
        errors.update(job_spec_toolbox.hold_problem(spec, cluster.name, cluster.settings))

    volumes: list[Volume] = []
    if spec.get("volumes"):
        found = {v.name: v for v in Volume.objects.filter(name__in=spec["volumes"]).prefetch_related("teams")}
        for i, name in enumerate(spec["volumes"]):
            volume = found.get(name)
            if volume is None or (team is not None and volume.teams.all() and team not in volume.teams.all()):
                errors[f"volumes.{i}"] = [_("No volume %(volume)r for this team.") % {"volume": name}]
            else:
                volumes.append(volume)

    pre_job = None
    if spec.get("pre_job"):
        pre_job = permissions.restrict(Job.objects.all(), user).filter(public_id=spec["pre_job"]).first()
        if pre_job is None:
            errors["pre_job"] = [_("No job %(job)r that you can see.") % {"job": spec["pre_job"]}]

    if spec.get("inputs"):
        # Another job's output is read only by someone who may see that job (as pre_job's model_dir).
        wanted = {name: source.split("/", 1)[0] for name, source in spec["inputs"].items()}
        seen = set(
            permissions.restrict(Job.objects.all(), user)
            .filter(public_id__in=set(wanted.values()))
            .values_list("public_id", flat=True)
        )
        for name, job_id in wanted.items():
            if job_id not in seen:
                errors[f"inputs.{name}"] = [_("No job %(job)r that you can see.") % {"job": job_id}]

    if spec.get("datasets") and team is not None:
        errors.update(job_datasets.problems(team, spec["datasets"]))

    # The framework's default image filled in where the spec names none; a restricted cluster's refusals.
    errors.update(job_images.resolve(team, cluster, spec))

    if errors:
        raise ValidationError(errors)
    return team, cluster, volumes, pre_job


def _check_quota(team: Team, cluster: Cluster, cpu_milli: int, memory_bytes: int, gpu: int) -> None:
    """Refuse a job that could never fit the team's quota on the cluster, with the numbers."""
    quota = quotas.quota_of(cluster, team.pk)
    problems = quotas.never_fits(quota, cluster.name, cpu_milli, memory_bytes, gpu) if quota else []
    if problems:
        raise ValidationError({"roles": problems})


def job_prepare(*, user, data: Any, internal: bool = False) -> tuple[dict, Team, Cluster, list[Volume], Job | None]:
    """Validate a raw spec and resolve its names; raises ValidationError naming every field.

    ``internal``: the notebooks app starting a notebook or TensorBoard job; nobody else may submit those.
    """
    try:
        spec = job_spec.validate(data)
    except job_spec.SpecError as exc:
        raise ValidationError(exc.errors) from None
    if spec["framework"] in job_spec.INTERNAL_FRAMEWORK_ROLES and not internal:
        raise ValidationError(
            {"framework": [_("%(framework)s jobs are started from their own pages, not submitted.") % spec]}
        )
    team, cluster, volumes, pre_job = _resolve(user, spec)
    # The stored spec names what it resolved to, so a rerun lands in the same place.
    spec = {**spec, "team": team.slug, "cluster": cluster.name}
    cpu_milli, memory_bytes, gpu = job_spec.totals(spec)
    _check_quota(team, cluster, cpu_milli, memory_bytes, gpu)
    return spec, team, cluster, volumes, pre_job


def _new_job(user, spec, team, cluster, pre_job, *, rerun_of: Job | None, attempt: int) -> Job:
    cpu_milli, memory_bytes, gpu = job_spec.totals(spec)
    timeout = job_spec_timeout(spec)
    return Job(
        name=spec["name"],
        team=team,
        owner=user,
        cluster=cluster,
        framework=spec["framework"],
        spec=spec,
        priority=spec.get("priority", "normal"),
        cpu_milli=cpu_milli,
        memory_bytes=memory_bytes,
        gpu=gpu,
        timeout_seconds=timeout,
        max_retries=spec.get("max_retries", 0),
        pre_job=pre_job,
        rerun_of=rerun_of,
        attempt=attempt,
    )


def job_spec_timeout(spec: dict) -> int | None:
    from clusters.backends.contract.quantity import parse_duration

    return parse_duration(spec["timeout"]) if spec.get("timeout") else None


def job_dry_run(*, user, data: Any) -> DryRun:
    """Validate and show what would be submitted, recording nothing."""
    spec, team, cluster, volumes, pre_job = job_prepare(user=user, data=data)
    job = _new_job(user, spec, team, cluster, pre_job, rerun_of=None, attempt=1)
    job.created_at = timezone.now()
    description = describe(job, volumes=volumes)
    backend = cluster.backend()
    problems = backend.check(description)
    if problems:
        raise ValidationError({"cluster": problems})
    return DryRun(spec=spec, description=description, rendered=backend.render(description))


def job_submit(*, user, data: Any, rerun_of: Job | None = None, attempt: int = 1, internal: bool = False) -> Job:
    """Validate a spec, record the job and its tasks, and queue it for its backend.

    The reads and the checks come first, outside any transaction; the writes (the experiment if it is new, the
    job, its tasks in one insert) are one transaction, enqueued at its commit. ``job.submitted_tasks`` are the
    tasks made (by role and index), so a caller can answer without reading them back."""
    spec, team, cluster, volumes, pre_job = job_prepare(user=user, data=data, internal=internal)
    job = _new_job(user, spec, team, cluster, pre_job, rerun_of=rerun_of, attempt=attempt)
    job.created_at = timezone.now()
    # The submit is enqueued on commit; the lease keeps the scheduler from enqueuing it a second time.
    job.submit_retry_at = job.created_at + timedelta(seconds=30)
    description = describe(job, volumes=volumes)
    problems = cluster.backend().check(description)
    if problems:
        raise ValidationError({"cluster": problems})
    for _attempt in range(5):
        try:
            with transaction.atomic():
                if spec.get("experiment"):
                    job.experiment = _experiment_for(team, spec["experiment"], user)
                job.save()
                tasks = Task.objects.bulk_create([Task(job=job, role=t.role, index=t.index) for t in description.tasks])
                _enqueue("jobs.tasks.submit_job", job.pk)
            break
        except IntegrityError:  # a public id collision (the whole write rolled back): draw another
            job.pk, job.public_id = None, new_job_id()
    else:
        raise IntegrityError("no free job id after 5 draws")
    job.submitted_tasks = sorted(tasks, key=lambda t: (t.role, t.index))
    return job


@PreparedRead
def _experiment_named(team_id: int, name: str):
    return first_of(Experiment.objects.filter(team_id=team_id, name=name))


def _experiment_for(team: Team, name: str, user) -> Experiment:
    """The team's experiment of that name, made on first use (read compiled once per connection)."""
    experiment = _experiment_named.first(team_id=team.pk, name=name)
    if experiment is None:
        return Experiment.objects.create(team=team, name=name, owner=user)
    experiment.team = team  # as filter(team=team) would have it: the team known, not read again
    return experiment


def can_rerun(user, job: Job) -> bool:
    """A rerun is a new job of the user's own in the job's team: it needs a seat there, not just a view grant."""
    return permissions.can_use_team(user, job.team)


def job_rerun(*, job: Job, user) -> Job:
    """A new job from the same spec; PermissionDenied for someone who may see the job but not use its team."""
    if not can_rerun(user, job):
        raise PermissionDenied(_("Only members of the job's team may re-run it."))
    return job_submit(user=user, data=job.spec, rerun_of=job)


# --- transitions ------------------------------------------------------------------


def job_transition(
    job: Job,
    event: str,
    *,
    reason: str = "",
    message: str = "",
    actor=None,
    when=None,
) -> bool:
    """Apply one input to a job: compare-and-set, record the event, notify after commit.

    Returns True when this call moved the job; False when the table refused the
    input or another writer got there first (the row is then left as it was).
    """
    from jobs import state

    target = state.next_state(job.state, event)
    if target is None:
        return False
    now = when or timezone.now()
    reason = reason or state.DEFAULT_REASON[event]
    fields: dict[str, Any] = {"state": target, "reason": reason[:100], "message": message}
    if target == JobState.PENDING and job.scheduled_at is None:
        fields["scheduled_at"] = now
    if target == JobState.RUNNING and job.started_at is None:
        fields["started_at"] = now
    if target in FINAL:
        fields["finished_at"] = now
    if target == JobState.STOPPED:
        fields.update(held_until=None, held_mode="")  # a stopped job's tasks are ended: nothing stays held
    with transaction.atomic():
        changed = Job.objects.filter(pk=job.pk, state=job.state).update(**fields)
        if not changed:
            return False
        event_row = JobEvent.objects.create(
            job=job, from_state=job.state, to_state=target, reason=fields["reason"], message=message, actor=actor
        )
        for name, value in fields.items():
            setattr(job, name, value)
        if target in FINAL:
            # Tasks the backend will not report on again end with the job; a sync pass then
            # overwrites them with what it observed.
            task_state = {
                Input.OBSERVED_MISSING: Task.State.MISSING,
                Input.REJECTED: Task.State.FAILED,
            }.get(event, Task.State.STOPPED)
            Task.objects.filter(job=job, state__in=[Task.State.PENDING, Task.State.RUNNING]).update(
                state=task_state, finished_at=now
            )
        if target == JobState.RUNNING or target in FINAL:
            _enqueue("jobs.tasks.notify", event_row.pk)
        if target == JobState.FAILED and job.attempt <= job.max_retries:
            _enqueue("jobs.tasks.retry_job", job.pk)
    return True


def job_apply_path(job: Job, event: str, *, started_at=None, finished_at=None, **kwargs) -> bool:
    """Apply an observation, passing through the states a fast job skipped between two passes.

    ``started_at``: when its tasks started, as the backend reports it (the earliest); it becomes the job's
    start, and a job seen ended that has one but was never seen running passes through running.
    ``finished_at``: when it ended, as the backend reports it. Both default to the time of this call.
    """
    moved = False
    steps = transition_path(job.state, event, ran=started_at is not None)
    for step in steps:
        if step == event:
            when = {Input.OBSERVED_RUNNING: started_at, **dict.fromkeys(ENDED_OBSERVATIONS, finished_at)}.get(step)
            moved = job_transition(job, step, when=when, **kwargs) or moved
        elif step == Input.OBSERVED_RUNNING:
            at = started_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
            message = _("It ended before a sync pass saw it run; its tasks started at %(at)s.") % {"at": at}
            moved = job_transition(job, step, when=started_at, message=message) or moved
        else:
            moved = job_transition(job, step, when=started_at) or moved
    return moved


# --- actions ----------------------------------------------------------------------


def job_stop(*, job: Job, actor=None, event: str = Input.STOP, reason: str = "", message: str = "") -> Job:
    """Stop an active job now; its backend objects are stopped by a worker right after."""
    job.refresh_from_db()
    if job.state in FINAL:
        raise JobActionRefused(_("The job already ended (%(state)s).") % {"state": job.get_state_display()})
    with transaction.atomic():
        Job.objects.filter(pk=job.pk).update(stop_requested=True)
        if not job_transition(job, event, reason=reason, message=message, actor=actor):
            job.refresh_from_db()
            if job.state not in FINAL:
                raise JobActionRefused(
                    _("The job is %(state)s and cannot be stopped now; try again.") % {"state": job.get_state_display()}
                )
            return job
        # A queued job may be in a submit worker's hands: stopping on the backend is idempotent and
        # harmless when nothing was created, so it is always asked for. It is leased before it is
        # enqueued: if that delivery is lost or the backend fails, the scheduler finds the job by
        # ``stop_retry_at`` and asks again until the backend confirms the stop.
        Job.objects.filter(pk=job.pk).update(stop_retry_at=timezone.now() + timedelta(seconds=STOP_LEASE_SECONDS))
        _enqueue("jobs.tasks.stop_on_backend", job.pk)
    return job


@transaction.atomic
def job_delete(*, job: Job, actor=None) -> Job:
    """Stop the job if it is active, then hide it; the record stays for audit and billing."""
    if job.state in ACTIVE:
        try:
            job_stop(job=job, actor=actor, reason="deleted")
        except JobActionRefused:
            job.refresh_from_db()
            if job.state not in FINAL:
                raise
            # It ended on its own between our read and the stop: nothing left to stop.
    Job.objects.filter(pk=job.pk).update(deleted=True, deleted_at=timezone.now())
    job.refresh_from_db()
    return job


def job_release_hold(*, job: Job, actor) -> Job:
    """End the hold of a job's failed task now: the owner or a team admin (as for a shell in it).

    The backend ends the held tasks first (a backend without holds has none to end); then the hold is cleared
    (a compare-and-set on ``held_until``) with a trail entry. A refusal changes nothing."""
    from clusters.backends.base import BackendError
    from jobs.workers.cleanup import cleanup_if_due

    if not permissions.can(actor, job, permissions.Action.CHANGE):
        raise PermissionDenied(_("Only the owner or a team admin may release a held job."))
    job.refresh_from_db()
    if job.held_until is None:
        raise JobActionRefused(_("Nothing of this job is held for debugging."))
    held_until, mode = job.held_until, job.held_mode
    backend = job.cluster.backend()
    if hasattr(backend, "release_hold"):  # a backend without holds (no DebugBackend) has none to end
        try:
            backend.release_hold(job.public_id)
        except BackendError as exc:
            raise JobActionRefused(_("The cluster did not release the hold: %(error)s") % {"error": exc}) from None
    with transaction.atomic():
        if not Job.objects.filter(pk=job.pk, held_until=held_until).update(held_until=None, held_mode=""):
            job.refresh_from_db()
            raise JobActionRefused(_("The hold already ended."))
        JobEvent.objects.create(
            job=job, from_state=job.state, to_state=job.state, reason=HOLD_RELEASED, actor=actor,
            message=_("Released the hold (%(mode)s) before %(until)s.")
            % {"mode": mode, "until": held_until.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")},
        )  # fmt: skip
        job.held_until, job.held_mode = None, ""
        if job.state in FINAL:
            transaction.on_commit(lambda: cleanup_if_due(job.pk))
    return job


def shell_session_open(*, user: Any, job: Job, task: str, client: str, kind: str = "shell") -> ShellSession:
    """Record who opened a shell (or an SSH connection: ``kind`` "ssh") in which task, before any byte reaches it."""
    return ShellSession.objects.create(
        user_id=user.pk, username=user.get_username(), job=job, task=task, client=client, kind=kind
    )


def shell_session_close(*, session: ShellSession, exit_code: int | None) -> None:
    """Record when a shell ended and how; a session already closed keeps its first record."""
    if session.closed_at is not None:
        return
    session.closed_at = timezone.now()
    session.exit_code = exit_code
    session.save(update_fields=["closed_at", "exit_code"])


def job_record_submitted(*, user, data: Any, public_id: str) -> Job:
    """Record a job that something else already created on its cluster (an Argo Workflow's step), as unknown.

    Validated like ``job_submit`` (the spec, its names, the quota, the backend's check); the job and its tasks are
    written in state unknown with a queued→unknown event (reason ``SubmittedByWorkflow``), so the cluster's sync pass
    observes it by its id from then on. Nothing is enqueued: no submit, and no retry of the job's own (its
    ``max_retries`` is 0; whoever submitted it retries). A second call for the same id returns the job recorded."""
    existing = Job.objects.filter(public_id=public_id).first()
    if existing is not None:
        return existing
    spec, team, cluster, volumes, pre_job = job_prepare(user=user, data=data)
    job = _new_job(user, spec, team, cluster, pre_job, rerun_of=None, attempt=1)
    job.public_id = public_id
    job.max_retries = 0
    job.created_at = timezone.now()
    job.state, job.reason = JobState.UNKNOWN, "SubmittedByWorkflow"
    description = describe(job, volumes=volumes)
    problems = cluster.backend().check(description)
    if problems:
        raise ValidationError({"cluster": problems})
    try:
        with transaction.atomic():
            if spec.get("experiment"):
                job.experiment = _experiment_for(team, spec["experiment"], user)
            job.save()
            Task.objects.bulk_create([Task(job=job, role=t.role, index=t.index) for t in description.tasks])
            JobEvent.objects.create(
                job=job, from_state=JobState.QUEUED, to_state=JobState.UNKNOWN, reason="SubmittedByWorkflow",
                message=_("Created on the cluster by its workflow."),
            )  # fmt: skip
    except IntegrityError:
        # Recorded meanwhile by another pass (the same id): that record stands.
        found = Job.objects.filter(public_id=public_id).first()
        if found is None:
            raise
        return found
    return job
