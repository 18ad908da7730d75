"""A one-task step of a pipeline run on Argo: its pod is named by Argo and carries the job's labels; the sync
pass reads the job from it, the step's own "main" container beside Argo's "wait"."""

from __future__ import annotations

from clusters.backends.base import ObservedState
from clusters.backends.kubernetes.observe import ARGO_WORKFLOW_LABEL, job_observation


def _pod(exit_code: int, phase: str) -> dict:
    return {
        "metadata": {
            "name": "r-abcdefgh-report-1234567",
            "labels": {"easyai.io/job": "j-abcdefgh", ARGO_WORKFLOW_LABEL: "r-abcdefgh"},
        },
        "spec": {"containers": [{"name": "wait"}, {"name": "main"}]},
        "status": {
            "phase": phase,
            "containerStatuses": [
                {"name": "wait", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
                {
                    "name": "main",
                    "state": {"terminated": {"exitCode": exit_code, "reason": "Error" if exit_code else "Completed"}},
                },
            ],
        },
    }


def test_an_argo_step_pod_stands_for_its_job():
    done = job_observation("j-abcdefgh", None, [_pod(0, "Succeeded")])
    assert done.state == ObservedState.SUCCEEDED
    failed = job_observation("j-abcdefgh", None, [_pod(3, "Failed")])
    assert failed.state == ObservedState.FAILED and failed.tasks[0].exit_code == 3


def test_without_a_pod_the_job_is_missing():
    assert job_observation("j-abcdefgh", None, []).state == ObservedState.MISSING
