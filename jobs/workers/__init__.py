"""The workers' steps: submit to a backend, sync a cluster, enforce timeouts, stop, retry, clean up, end holds.

Each is called by a thin django-q2 task in ``jobs/tasks.py`` and is idempotent: a second delivery does
no harm. One module per kind of step; the scheduler's scans (``*_due``) are in ``due``.
"""

from jobs.workers.cleanup import job_cleanup
from jobs.workers.common import backoff
from jobs.workers.due import cleanups_due, holds_run_out, jobs_timed_out, stops_due, submits_due
from jobs.workers.holds import hold_end
from jobs.workers.stop import job_stop_on_backend, job_timeout
from jobs.workers.submit import job_retry, job_submit_to_backend
from jobs.workers.sync import cluster_sync

__all__ = [
    "backoff",
    "cleanups_due",
    "cluster_sync",
    "hold_end",
    "holds_run_out",
    "job_cleanup",
    "job_retry",
    "job_stop_on_backend",
    "job_submit_to_backend",
    "job_timeout",
    "jobs_timed_out",
    "stops_due",
    "submits_due",
]
