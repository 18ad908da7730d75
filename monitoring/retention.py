"""Keeping usage samples bounded: raw samples older than EASYAI_USAGE_RAW_HOURS (a day) become one-minute points,
one-minute points older than EASYAI_USAGE_MINUTE_DAYS (a week) become hourly points, and hourly points older
than EASYAI_USAGE_HOURLY_DAYS are dropped (0 keeps them). Run by the clock's periodic work
(``monitoring/schedule.py``, every EASYAI_USAGE_RETENTION_SECONDS).

A point is the average of what it replaces, weighted by the seconds each covered: CPU cores, GPU utilisation
(over the samples that have one) and memory too, the mean rather than the peak, so that Σ value × seconds
(core-hours, GiB-hours: what accounting counts) is the same at every resolution. Its ``seconds`` are the sum
of theirs, its ``at`` the end of its minute or hour. A task running at 10 s samples keeps 8,640 raw rows for its
last day, 1,440 a day for the week before, 24 a day after that: the table grows with task-hours, not with time
sampled, and stops growing past EASYAI_USAGE_HOURLY_DAYS.

Each group of tasks is folded in one transaction (the points written, what they replace deleted), only for
whole minutes or hours older than the cut-off: a pass that dies half-way, or runs twice, never counts a sample
twice or leaves half a minute.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from monitoring.models import Resolution, UsageSample

TASKS_PER_BATCH = 200
_FIELDS = ("task_id", "job_id", "at", "seconds", "cpu_cores", "memory_bytes", "gpu_util", "gpu_memory_bytes")


def _floor(moment: datetime, step: int) -> datetime:
    ts = moment.timestamp()
    return datetime.fromtimestamp(ts - ts % step, tz=UTC)


def _bucket_end(moment: datetime, step: int) -> datetime:
    """The end of the minute or hour a sample's interval ends in (one ending exactly on the boundary: that one)."""
    ts = moment.timestamp()
    rest = ts % step
    return datetime.fromtimestamp(ts if rest == 0 else ts - rest + step, tz=UTC)


def fold(rows: Iterable[tuple[Any, ...]], step: int) -> list[UsageSample]:
    """Points of ``step`` seconds from samples (tuples of _FIELDS), per task and bucket (see the module docstring)."""
    groups: dict[tuple[int, datetime], list[tuple[Any, ...]]] = {}
    for row in rows:
        groups.setdefault((row[0], _bucket_end(row[2], step)), []).append(row)
    points = []
    for (task_id, end), members in groups.items():
        weights = [max(m[3], 1e-9) for m in members]
        total = sum(weights)
        with_gpu = [(m, w) for m, w in zip(members, weights, strict=True) if m[6] is not None]
        with_gpu_memory = [(m, w) for m, w in zip(members, weights, strict=True) if m[7] is not None]
        gpu_weight = sum(w for _m, w in with_gpu)
        gpu_memory_weight = sum(w for _m, w in with_gpu_memory)
        points.append(
            UsageSample(
                task_id=task_id,
                job_id=members[0][1],
                at=end,
                seconds=sum(m[3] for m in members),
                resolution=step,
                cpu_cores=sum(m[4] * w for m, w in zip(members, weights, strict=True)) / total,
                memory_bytes=round(sum(m[5] * w for m, w in zip(members, weights, strict=True)) / total),
                gpu_util=sum(m[6] * w for m, w in with_gpu) / gpu_weight if with_gpu else None,
                gpu_memory_bytes=(
                    round(sum(m[7] * w for m, w in with_gpu_memory) / gpu_memory_weight) if with_gpu_memory else None
                ),
            )
        )
    return points


def _downsample(source: int, step: int, older_than: datetime) -> int:
    """Fold ``source``-resolution samples ending before ``older_than`` (a bucket boundary) into ``step`` points."""
    old = UsageSample.objects.filter(resolution=source, at__lte=older_than)
    task_ids = sorted(set(old.order_by().values_list("task_id", flat=True).distinct()))
    made = 0
    for i in range(0, len(task_ids), TASKS_PER_BATCH):
        batch = task_ids[i : i + TASKS_PER_BATCH]
        with transaction.atomic():
            mine = old.filter(task_id__in=batch)
            points = fold(mine.order_by().values_list(*_FIELDS), step)
            mine.delete()
            UsageSample.objects.bulk_create(points, batch_size=1000)
        made += len(points)
    return made


def downsample(now: datetime | None = None) -> dict[str, int]:
    """One retention pass (see the module docstring); how many points it made and rows it dropped."""
    now = now or timezone.now()
    raw_cut = _floor(now - timedelta(hours=settings.EASYAI_USAGE_RAW_HOURS), Resolution.MINUTE)
    minute_cut = _floor(now - timedelta(days=settings.EASYAI_USAGE_MINUTE_DAYS), Resolution.HOUR)
    result = {
        "minute_points": _downsample(Resolution.RAW, Resolution.MINUTE, raw_cut),
        "hour_points": _downsample(Resolution.MINUTE, Resolution.HOUR, minute_cut),
        "dropped": 0,
    }
    if settings.EASYAI_USAGE_HOURLY_DAYS > 0:
        cut = now - timedelta(days=settings.EASYAI_USAGE_HOURLY_DAYS)
        result["dropped"], _ = UsageSample.objects.filter(resolution=Resolution.HOUR, at__lt=cut).delete()
    return result
