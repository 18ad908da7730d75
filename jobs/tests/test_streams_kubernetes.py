"""The log socket on a Kubernetes cluster: the same frames, and the same end, as on the local backend.

A real ASGI server and websocket client in front of the real ``kubernetes`` client talking to the fake API
server: the log is followed from the pod while it runs, and after the job ends the socket closes with the
job's state, read from the copy the sync pass made before deleting the pods.
"""

from __future__ import annotations

import json

import pytest

from jobs import services, tasks
from jobs.models import Job
from jobs.state import JobState
from testing.fakekube import NS, PYTORCH, make_cluster, run_pods
from testing.sockets import log_text, open_socket, read_until_closed

pytestmark = pytest.mark.slow


def test_log_socket_follows_the_pod_then_ends_with_the_jobs_state(asgi_server, transactional_db, kube, owner, spec_doc):
    cluster = make_cluster(kube, name="gpu-a", is_default=True)
    job = services.job_submit(user=owner, data=spec_doc(roles={"master": {"replicas": 1, "cpu": "1", "memory": "1Gi"}}))
    tasks.submit_job(job.pk)
    run_pods(kube, PYTORCH, job.public_id)
    kube.set_status(*PYTORCH, NS, job.public_id, {"conditions": [{"type": "Running", "status": "True"}]})
    tasks.sync_cluster(cluster.pk)
    assert Job.objects.get(pk=job.pk).state == JobState.RUNNING
    pod = f"{job.public_id}-master-0"
    kube.logs[(NS, pod)] = b"epoch 1\n"
    kube.follow_chunks[(NS, pod)] = [b"epoch 2\n", b"epoch 3\n"]

    with open_socket(asgi_server, f"/ws/jobs/{job.public_id}/tasks/master-0/log/?offset=0", user=owner) as ws:
        frames = []
        while "epoch 3" not in log_text(frames):
            frames.append(json.loads(ws.recv(timeout=15)))
        assert frames[0]["type"] == "start"
        # The job ends on the cluster: the sync pass copies the pod's log, then deletes the job's objects.
        done = {"terminated": {"exitCode": 0, "reason": "Completed", "finishedAt": "2026-01-01T00:00:00Z"}}
        run_pods(kube, PYTORCH, job.public_id, phase="Succeeded", state=done)
        kube.set_status(
            *PYTORCH, NS, job.public_id,
            {"conditions": [{"type": "Running", "status": "False"}, {"type": "Succeeded", "status": "True"}]},
        )  # fmt: skip
        tasks.sync_cluster(cluster.pk)
        assert Job.objects.get(pk=job.pk).state == JobState.SUCCESS
        rest, code, _ = read_until_closed(ws)

    frames += rest
    assert log_text(frames) == "epoch 1\nepoch 2\nepoch 3\n"  # once each: the copy is not sent again
    assert frames[-1]["type"] == "end"
    assert frames[-1]["state"] == "succeeded"
    assert code == 1000
