"""A backend that reports what a test tells it to. For tests and benchmarks only."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from clusters.backends.base import (
    MODEL_FORMATS,
    BackendError,
    BackendRejected,
    Capacity,
    JobDescription,
    JobObservation,
    ObservedState,
    ServiceDescription,
    ServiceObservation,
    TaskObservation,
    TaskUsage,
    TeamDescription,
    TrafficObservation,
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
        # Served models, as KServe would keep them: (team, name) -> what was applied, and what the cluster says.
        self.services: dict[tuple[str, str], ServiceDescription] = {}
        self.service_states: dict[tuple[str, str], ServiceObservation] = {}
        self.fail_apply: Exception | None = None  # raised by apply_service while set
        self.fail_observe_services: Exception | None = None  # raised by observe_services while set
        # What tasks use, as a test sets it: (job id, task name) -> the reading usage() answers with.
        self.task_usage: dict[tuple[str, str], TaskUsage] = {}
        self.fail_usage: Exception | None = None  # raised by usage while set
        self.fail_release: Exception | None = None  # raised by release_hold while set; the hold stays

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

    def set_service(
        self,
        team: str,
        name: str,
        *,
        ready: bool = True,
        message: str = "",
        reason: str = "",
        traffic: list[tuple[str, int]] | None = None,
        url: str | None = None,
        address: str | None = None,
    ) -> ServiceObservation:
        """Play KServe: the newest revision of an applied service is ready (or failed, with a message).

        Ready, it becomes the latest ready revision; its traffic is the canary's share beside the previous
        rolled-out revision when the description has a canary, else all of it, unless ``traffic`` says
        otherwise ((revision, percent) pairs).
        """
        state = self.service_states[(team, name)]
        service = self.services.get((team, name))
        state.ready, state.message, state.reason = ready, message, reason or ("" if ready else "RevisionFailed")
        if url is not None:
            state.url = url
        if address is not None:
            state.address = address
        newest = state.latest_created_revision
        if ready:
            state.latest_ready_revision = newest
            if traffic is None:
                canary = service.canary_percent if service is not None else None
                previous = state.previous_rolledout_revision
                if canary is not None and previous and previous != newest:
                    traffic = [(newest, canary), (previous, 100 - canary)]
                else:
                    traffic = [(newest, 100)]
        if traffic is not None:
            state.traffic = [TrafficObservation(rev, percent, latest=rev == newest) for rev, percent in traffic]
        return state

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

    # --- holds (the DebugBackend protocol's release_hold) ---------------------------------------

    def release_hold(self, job_id: str) -> None:
        """As a released task does: its hold ends (``held`` cleared), it ends with its command's status, and the
        job with it."""
        self.calls.append(("release_hold", job_id))
        if self.fail_release is not None:
            raise self.fail_release
        state = self.states.get(job_id)
        for task in state.tasks if state is not None else []:
            if task.held:
                task.held, task.held_until, task.state = "", None, ObservedState.FAILED
                state.state = ObservedState.FAILED

    # --- serving (the ServingBackend protocol) ----------------------------------------

    def render_service(self, service: ServiceDescription) -> dict[str, Any]:
        if service.model_format not in MODEL_FORMATS:
            raise BackendRejected(f"model format {service.model_format!r} is not one of {', '.join(MODEL_FORMATS)}")
        if service.canary_percent is not None and service.deployment_mode != "Serverless":
            raise BackendRejected(f"a canary cannot be served in {service.deployment_mode} mode")
        return {"kind": "FakeInferenceService", "team": service.team, "name": service.name,
                "storage_uri": service.storage_uri, "canary_percent": service.canary_percent}  # fmt: skip

    def apply_service(self, service: ServiceDescription) -> None:
        """As KServe: a changed spec is a new revision, not ready until a test says so; a changed canary share only
        moves the traffic; the same description again changes nothing."""
        key = (service.team, service.name)
        self.calls.append(("apply_service", key))
        if self.fail_apply is not None:
            raise self.fail_apply
        self.render_service(service)
        before = self.services.get(key)
        self.services[key] = service
        state = self.service_states.get(key)
        if (
            state is not None
            and before is not None
            and replace(before, canary_percent=None) == replace(service, canary_percent=None)
        ):
            if state.ready and before.canary_percent != service.canary_percent:
                self.set_service(*key, url=state.url)
            return
        if state is None:
            state = ServiceObservation(
                team=service.team, name=service.name, ready=False, url=f"http://{service.name}.{service.team}.example"
            )
        number = int(state.latest_created_revision.rsplit("-", 1)[-1]) + 1 if state.latest_created_revision else 1
        if state.latest_ready_revision:
            state.previous_rolledout_revision = state.latest_ready_revision  # what serves while the new one starts
        state.latest_created_revision = f"{service.name}-predictor-{number:05d}"
        state.message, state.reason = "", ""
        self.service_states[key] = state

    def delete_service(self, team: str, name: str) -> None:
        self.calls.append(("delete_service", (team, name)))
        self.services.pop((team, name), None)
        self.service_states.pop((team, name), None)

    def observe_services(self) -> dict[tuple[str, str], ServiceObservation]:
        self.calls.append(("observe_services", len(self.service_states)))
        if self.fail_observe_services is not None:
            raise self.fail_observe_services
        return {key: copy.deepcopy(state) for key, state in self.service_states.items()}

    # --- usage (the UsageBackend protocol) ----------------------------------------------

    def set_usage(self, job_id: str, task: str, *, memory_bytes: int = 0, at=None, **figures) -> TaskUsage:
        """What a task uses from now on: cpu_seconds_total (a counter) or cpu_cores, gpu_util, gpu_memory_bytes;
        ``at`` fixed, or the time of each usage() call when None."""
        reading = TaskUsage(job_id=job_id, task=task, at=at, memory_bytes=memory_bytes, **figures)
        self.task_usage[(job_id, task)] = reading
        return reading

    def usage(self, job_ids: list[str]) -> list[TaskUsage]:
        self.calls.append(("usage", len(job_ids)))
        if self.fail_usage is not None:
            raise self.fail_usage
        wanted, now = set(job_ids), datetime.now(UTC)
        return [
            replace(reading, at=reading.at or now, labels=dict(reading.labels))
            for (job_id, _task), reading in self.task_usage.items()
            if job_id in wanted
        ]


__all__ = ["FakeBackend", "BackendError", "BackendRejected"]
