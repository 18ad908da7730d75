"""A backend that reports what a test tells it to. For tests and benchmarks only."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from clusters.backends.base import (
    BackendError,
    BackendRejected,
    Capacity,
    JobDescription,
    JobObservation,
    ObservedState,
    TaskObservation,
    TeamDescription,
)


class FakeBackend:
    def __init__(self, capacity: Capacity | None = None) -> None:
        self.jobs: dict[str, JobDescription] = {}
        self.states: dict[str, JobObservation] = {}
        self.calls: list[tuple[str, Any]] = []
        self.fail_submit: Exception | None = None  # raised by the next submits while set
        self.fail_observe: Exception | None = None  # raised by observe while set
        self.fail_stop: Exception | None = None  # raised by stop while set; the job keeps running
        self.problems: list[str] = []
        self.logs: dict[tuple[str, str], bytes] = {}
        self._capacity = capacity or Capacity(64000, 256 * 2**30, 8, 64000, 256 * 2**30, 8)

    # --- what tests call -------------------------------------------------------

    def set_state(self, job_id: str, state: str, reason: str = "", message: str = "", **task_fields) -> None:
        job = self.jobs.get(job_id)
        tasks = [
            TaskObservation(role=t.role, index=t.index, state=state, **task_fields) for t in (job.tasks if job else [])
        ]
        self.states[job_id] = JobObservation(job_id=job_id, state=state, reason=reason, message=message, tasks=tasks)

    def vanish(self, job_id: str) -> None:
        self.jobs.pop(job_id, None)
        self.states.pop(job_id, None)

    def submits(self) -> int:
        return sum(1 for name, _ in self.calls if name == "submit")

    # --- the protocol -----------------------------------------------------------

    def check(self, job: JobDescription) -> list[str]:
        return list(self.problems)

    def render(self, job: JobDescription) -> list[dict[str, Any]]:
        return [{"kind": "FakeJob", "name": job.job_id, "tasks": [t.name for t in job.tasks]}]

    def submit(self, job: JobDescription) -> None:
        self.calls.append(("submit", job.job_id))
        if self.fail_submit is not None:
            raise self.fail_submit
        if job.job_id not in self.jobs:
            self.jobs[job.job_id] = job
            self.set_state(job.job_id, ObservedState.PENDING)

    def observe(self, job_ids: list[str]) -> dict[str, JobObservation]:
        self.calls.append(("observe", len(job_ids)))
        if self.fail_observe is not None:
            raise self.fail_observe
        return {
            job_id: self.states.get(job_id, JobObservation(job_id=job_id, state=ObservedState.MISSING))
            for job_id in job_ids
        }

    def stop(self, job_id: str) -> None:
        self.calls.append(("stop", job_id))
        if self.fail_stop is not None:
            raise self.fail_stop
        if job_id in self.states:
            self.set_state(job_id, ObservedState.STOPPED)

    def delete(self, job_id: str) -> None:
        self.calls.append(("delete", job_id))
        self.vanish(job_id)

    def capacity(self) -> Capacity:
        return self._capacity

    def read_log(self, job_id: str, task_name: str, offset: int = 0, limit: int | None = None) -> tuple[bytes, int]:
        data = self.logs.get((job_id, task_name), b"")[offset:]
        if limit is not None:
            data = data[:limit]
        return data, offset + len(data)

    def follow_log(self, job_id: str, task_name: str, offset: int = 0) -> Iterator[bytes]:
        data, _ = self.read_log(job_id, task_name, offset)
        if data:
            yield data

    def summary_place(self, job_id: str, task_name: str, stored: str) -> str:
        return stored

    def provision_team(self, team: TeamDescription) -> None:
        self.calls.append(("provision_team", team))


__all__ = ["FakeBackend", "BackendError", "BackendRejected"]
