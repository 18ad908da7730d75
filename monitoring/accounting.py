"""Each job's accounting (``monitoring.models.JobUsage``), kept up to date by a periodic pass.

- **Requested**: each task's request (its role's cpu, memory and gpu in the spec) × its running time
  (``Task.started_at`` to ``finished_at``, or to now while it runs), worked out afresh on every pass.
- **Used**: Σ sample × its interval over the job's ``UsageSample`` rows, counted once: only the samples after the
  row's ``last_sample_at``, and only those older than ``SETTLE_S`` (a sampler's writes of one moment may land out of
  order). GPU used is the GPU-hours × the utilisation of each interval.
- **Cost**: Σ interval × max(requested, used) × price (OpenCost's allocation rule; GPUs by request, at the price of
  the task's GPU model). max(r, u) = r + max(0, u − r), so the row keeps what was used above the request
  (``core_hours_over``, ``gib_hours_over``, summed sample by sample) and cost = (requested + over) × price; time
  with no samples (the fake backend, a sampler that has not reached the task yet) costs its request.
- **Closed**: a job that ended is closed once ``CLOSE_AFTER_S`` have passed since it ended (its last samples are
  in) and they are counted; closed rows are never read again.

The pass reads the active jobs, the open rows and the jobs that ended since the last pass (by their ``JobEvent``
rows, which are indexed by time): it grows with what runs, not with the finished jobs. Writes are bulk. Offered to
the clock by ``MonitoringConfig.ready()`` (``enqueue_due``); ``manage.py account_usage`` runs a pass by hand or
accounts the jobs of a past period.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.core.cache import cache
from django.db import connection, transaction
from django.utils import timezone

from clusters.models import Cluster
from jobs import spec as job_spec
from jobs.models import Job, JobEvent, Task
from jobs.state import ACTIVE, FINAL
from monitoring.models import JobUsage, Price, UsageSample

log = logging.getLogger(__name__)

PASS_EVERY_S = 60  # how often the clock enqueues a pass
SETTLE_S = 30  # samples younger than this wait for the next pass
CLOSE_AFTER_S = 300  # a job that ended is closed this long after its end
LOOKBACK = timedelta(days=1)  # jobs that ended since when, when the last pass left no mark
CHUNK = 500  # jobs per read-and-write round
GIB = float(1 << 30)
SINCE_KEY = "easyai:accounting-since"
LOCK_KEY = "easyai:accounting-running"
LOCK_S = 600

# Where a task's GPU model is read, first found wins: the GPU-feature-discovery label a job's node selector asks
# for; the cluster's ``settings.gpu_models`` (node -> model); the cluster's ``settings.gpu_model``.
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"

UPDATED_FIELDS = [
    "team", "owner", "cluster", "day", "running_seconds", "core_hours_requested", "core_hours_used",
    "gib_hours_requested", "gib_hours_used", "gpu_hours_requested", "gpu_hours_used", "core_hours_over",
    "gib_hours_over", "cost", "currency", "cpu_efficiency", "memory_efficiency", "gpu_efficiency", "last_sample_at",
    "closed", "updated_at",
]  # fmt: skip


JOB_FIELDS = (
    "pk", "team_id", "owner_id", "cluster", "state", "spec", "cpu_milli", "memory_bytes", "gpu", "created_at",
    "started_at", "finished_at",
)  # fmt: skip


@dataclass(frozen=True)
class TaskRequest:
    """One task's request: cores, GiB, GPUs."""

    cores: float
    gib: float
    gpus: int


# --- the clock ---------------------------------------------------------------------------------------------


def enqueue_due(last: dict) -> None:
    """The clock's periodic work: a pass at most every PASS_EVERY_S (a cache mark, so several clocks enqueue one)."""
    if not cache.add("easyai:accounting-pass", 1, timeout=PASS_EVERY_S):
        return
    from django_q.tasks import async_task

    async_task("monitoring.accounting.account_pass")


def account_pass(now: datetime | None = None) -> int:
    """One pass over the jobs whose accounting may have changed; returns how many rows it wrote."""
    # One pass at a time: two would count the same new samples twice.
    if not cache.add(LOCK_KEY, 1, timeout=LOCK_S):
        return 0
    try:
        now = now or timezone.now()
        since = cache.get(SINCE_KEY) or now - LOOKBACK
        written = account_jobs(jobs_to_account(since), now=now)
        # The next pass looks at the jobs that ended from a little before this one began (a transition written
        # while this pass ran is seen again, which does no harm).
        cache.set(SINCE_KEY, now - timedelta(seconds=PASS_EVERY_S), timeout=None)
        return written
    finally:
        cache.delete(LOCK_KEY)


def jobs_to_account(since: datetime) -> list[int]:
    """Ids of the jobs a pass looks at: active ones, open rows, and jobs that ended since ``since``."""
    ids = set(Job.objects.filter(state__in=ACTIVE).order_by().values_list("pk", flat=True))
    ids.update(JobUsage.objects.filter(closed=False).order_by().values_list("job_id", flat=True))
    ids.update(
        JobEvent.objects.filter(created_at__gte=since, to_state__in=FINAL).order_by().values_list("job_id", flat=True)
    )
    return sorted(ids)


# --- the figures ---------------------------------------------------------------------------------------------


def task_requests(job: Job, tasks: list[Task]) -> dict[int, TaskRequest]:
    """Each task's request, by task id: its role's resources in the spec, else the job's totals shared evenly."""
    try:
        roles = job_spec.role_resources(job.spec)
    except (KeyError, TypeError, ValueError, AttributeError):
        roles = {}
    requests: dict[int, TaskRequest] = {}
    share = max(len(tasks), 1)
    for task in tasks:
        role = roles.get(task.role)
        if role is not None:
            requests[task.pk] = TaskRequest(role["cpu_milli"] / 1000, role["memory_bytes"] / GIB, int(role["gpu"]))
        else:
            requests[task.pk] = TaskRequest(job.cpu_milli / 1000 / share, job.memory_bytes / GIB / share, 0)
    if not roles and tasks and job.gpu:
        # No role to read: the job's GPUs go to its first tasks, one each, as far as they go.
        for index, task in enumerate(tasks):
            per_task = job.gpu // share + (1 if index < job.gpu % share else 0)
            requests[task.pk] = TaskRequest(requests[task.pk].cores, requests[task.pk].gib, per_task)
    return requests


def gpu_model(job: Job, task: Task, cluster: Cluster) -> str:
    """The GPU model a task runs on, as far as the portal knows it ("" when it does not)."""
    scheduling = job.spec.get("scheduling") if isinstance(job.spec, dict) else None
    selector = scheduling.get("node_selector") if isinstance(scheduling, dict) else None
    if isinstance(selector, dict) and isinstance(selector.get(GPU_PRODUCT_LABEL), str):
        return selector[GPU_PRODUCT_LABEL]
    settings = cluster.settings if isinstance(cluster.settings, dict) else {}
    by_node = settings.get("gpu_models")
    if isinstance(by_node, dict) and isinstance(by_node.get(task.node), str):
        return by_node[task.node]
    model = settings.get("gpu_model")
    return model if isinstance(model, str) else ""


def gpu_price(price: Price | None, model: str) -> float:
    """Per GPU-hour for a model: its own price when the cluster's prices name it, else the cluster's gpu_hour."""
    if price is None:
        return 0.0
    by_model = price.gpu_hour_by_model if isinstance(price.gpu_hour_by_model, dict) else {}
    if model and model in by_model:
        return float(by_model[model])
    return float(price.gpu_hour)


def _running_span(job: Job, task: Task, now: datetime) -> tuple[datetime, datetime] | None:
    if task.started_at is None:
        return None
    end = task.finished_at
    if end is None:
        end = (job.finished_at or now) if job.state in FINAL else now
    return task.started_at, max(end, task.started_at)


def _hours(span: tuple[datetime, datetime] | None, until: datetime | None = None) -> float:
    if span is None:
        return 0.0
    start, end = span
    if until is not None:
        end = min(end, until)
    return max((end - start).total_seconds(), 0.0) / 3600


def _ratio(used: float, requested: float) -> float | None:
    return used / requested if requested > 0 else None


def account_jobs(job_ids: Iterable[int], *, now: datetime | None = None) -> int:
    """Bring these jobs' accounting up to date (closed rows are left as they are); returns rows written."""
    now = now or timezone.now()
    ids = list(job_ids)
    written = 0
    for start in range(0, len(ids), CHUNK):
        written += _account_chunk(ids[start : start + CHUNK], now)
    return written


@transaction.atomic
def _account_chunk(job_ids: list[int], now: datetime) -> int:
    # Locked where the database can (PostgreSQL, MySQL): a second pass waits, then sees these rows' new marks.
    rows = {
        row.job_id: row for row in JobUsage.objects.select_for_update().filter(job_id__in=job_ids).order_by("job_id")
    }
    open_ids = [pk for pk in job_ids if pk not in rows or not rows[pk].closed]
    if not open_ids:
        return 0
    jobs = list(Job.objects.filter(pk__in=open_ids).select_related("cluster").only(*JOB_FIELDS).order_by())
    tasks_of: dict[int, list[Task]] = {job.pk: [] for job in jobs}
    for task in Task.objects.filter(job_id__in=open_ids).only(
        "pk", "job_id", "role", "index", "node", "started_at", "finished_at"
    ):
        tasks_of[task.job_id].append(task)
    prices = {price.cluster_id: price for price in Price.objects.filter(cluster_id__in={j.cluster_id for j in jobs})}

    horizon = now - timedelta(seconds=SETTLE_S)
    marks = [rows[pk].last_sample_at for pk in open_ids if pk in rows]
    samples = UsageSample.objects.filter(job_id__in=open_ids, at__lte=horizon).order_by()
    if marks and len(marks) == len(open_ids) and all(marks):
        samples = samples.filter(at__gt=min(marks))  # the index (job, at) skips what every job has counted
    new_samples: dict[int, list[tuple]] = {}
    for sample in samples.values_list("job_id", "task_id", "at", "seconds", "cpu_cores", "memory_bytes", "gpu_util"):
        new_samples.setdefault(sample[0], []).append(sample)

    written: list[JobUsage] = []
    for job in jobs:
        row = rows.get(job.pk) or JobUsage(job_id=job.pk)
        _account_one(row, job, tasks_of[job.pk], new_samples.get(job.pk, []), prices.get(job.cluster_id), now)
        written.append(row)
    _upsert(written)
    return len(written)


def _upsert(rows: list[JobUsage]) -> None:
    """New and changed rows in one INSERT … ON CONFLICT/ON DUPLICATE KEY UPDATE: Django's bulk_update
    builds a CASE per field and row in Python, most of a pass's time at a hundred jobs."""
    if not rows:
        return
    for row in rows:
        row.pk = None  # each row is found by its job (unique), the one conflict the statement names
    target = {"unique_fields": ["job"]} if connection.features.supports_update_conflicts_with_target else {}
    JobUsage.objects.bulk_create(rows, update_conflicts=True, update_fields=UPDATED_FIELDS, **target)


def _account_one(
    row: JobUsage, job: Job, tasks: list[Task], samples: list[tuple], price: Price | None, now: datetime
) -> None:
    requests = task_requests(job, tasks)
    spans = {task.pk: _running_span(job, task, now) for task in tasks}

    # Used, and used above the request, from the samples not counted yet.
    mark = row.last_sample_at
    for _job_id, task_id, at, seconds, cpu_cores, memory_bytes, gpu_util in samples:
        if mark is not None and at <= mark:
            continue
        request = requests.get(task_id, TaskRequest(0.0, 0.0, 0))
        hours = max(seconds, 0.0) / 3600
        gib = memory_bytes / GIB
        row.core_hours_used += cpu_cores * hours
        row.gib_hours_used += gib * hours
        row.core_hours_over += max(cpu_cores - request.cores, 0.0) * hours
        row.gib_hours_over += max(gib - request.gib, 0.0) * hours
        if gpu_util is not None and request.gpus:
            row.gpu_hours_used += request.gpus * hours * gpu_util / 100
        if row.last_sample_at is None or at > row.last_sample_at:
            row.last_sample_at = at

    # Requested, afresh: each task's request × its running time.
    core = gib = gpu = 0.0
    gpu_cost = 0.0
    sampled_core = sampled_gib = sampled_gpu = 0.0  # requested over the time the samples cover
    for task in tasks:
        request, span = requests[task.pk], spans[task.pk]
        hours = _hours(span)
        core += request.cores * hours
        gib += request.gib * hours
        gpu += request.gpus * hours
        if request.gpus:
            gpu_cost += request.gpus * hours * gpu_price(price, gpu_model(job, task, job.cluster))
        if row.last_sample_at is not None:
            covered = _hours(span, row.last_sample_at)
            sampled_core += request.cores * covered
            sampled_gib += request.gib * covered
            sampled_gpu += request.gpus * covered
    row.core_hours_requested, row.gib_hours_requested, row.gpu_hours_requested = core, gib, gpu

    cost = 0.0
    if price is not None:
        cost = (
            (core + row.core_hours_over) * float(price.core_hour)
            + (gib + row.gib_hours_over) * float(price.gib_hour)
            + gpu_cost
        )
        row.currency = price.currency
    row.cost = Decimal(f"{cost:.6f}")
    sampled = row.last_sample_at is not None
    row.cpu_efficiency = _ratio(row.core_hours_used, sampled_core) if sampled else None
    row.memory_efficiency = _ratio(row.gib_hours_used, sampled_gib) if sampled else None
    row.gpu_efficiency = _ratio(row.gpu_hours_used, sampled_gpu) if sampled else None

    row.team_id, row.owner_id, row.cluster_id = job.team_id, job.owner_id, job.cluster_id
    row.day = timezone.localdate(job.started_at or job.created_at)
    row.running_seconds = (
        max(((job.finished_at or now) - job.started_at).total_seconds(), 0.0) if job.started_at else 0.0
    )
    ended_at = job.finished_at or job.started_at or job.created_at
    row.closed = job.state in FINAL and ended_at + timedelta(seconds=CLOSE_AFTER_S) <= now
    row.updated_at = now
