"""django-q2 task functions: thin and idempotent; each takes ids, reloads rows and calls a service."""

from __future__ import annotations

import time

from django.core.cache import cache

from clusters.models import Cluster
from jobs import notify as notifications
from jobs import workers
from jobs.signals import sync_pass_finished


def submit_job(job_pk: int) -> None:
    workers.job_submit_to_backend(job_pk)


def sync_cluster(cluster_pk: int) -> dict | None:
    cache.delete(f"easyai:sync-queued:{cluster_pk}")
    cluster = Cluster.objects.filter(pk=cluster_pk, enabled=True).first()
    if cluster is None:
        return None
    began, result = time.perf_counter(), {"error": 1}
    try:
        result = workers.cluster_sync(cluster)
    finally:  # a pass that raised failed too
        seconds, failed = time.perf_counter() - began, bool(result.get("error"))
        sync_pass_finished.send(
            Cluster, cluster=cluster, seconds=seconds, failed=failed, jobs=result.get("jobs", 0),
            moved=result.get("moved", 0),
        )  # fmt: skip
    failures_key = f"easyai:sync-failures:{cluster_pk}"
    if result.get("error"):
        # The scheduler leaves this cluster alone until its back-off has passed.
        failures = (cache.get(failures_key) or 0) + 1
        cache.set(failures_key, failures, timeout=None)
        cache.set(f"easyai:sync-backoff:{cluster_pk}", 1, timeout=workers.backoff(failures).total_seconds())
    else:
        cache.delete(failures_key)
    return result


def stop_on_backend(job_pk: int) -> None:
    workers.job_stop_on_backend(job_pk)


def timeout_job(job_pk: int) -> None:
    workers.job_timeout(job_pk)


def retry_job(job_pk: int) -> None:
    workers.job_retry(job_pk)


def cleanup_job(job_pk: int) -> None:
    workers.job_cleanup(job_pk)


def end_hold(job_pk: int) -> None:
    workers.hold_end(job_pk)


def notify(event_pk: int) -> None:
    notifications.send_for_event(event_pk)
