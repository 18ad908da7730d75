"""The Kubernetes backend with the real `kubernetes` client, over real HTTP, against the fake API server."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from clusters.backends.base import BackendError, BackendRejected, BackendUnavailable, ObservedState
from clusters.backends.contract.storage import task_log_path
from clusters.backends.kubernetes import KubernetesBackend
from clusters.backends.kubernetes import manifests as m
from clusters.models import Cluster
from testing.fakekube import NS, PYTORCH, VCJOB, FakeKube, make_cluster, make_job, run_pods

pytestmark = pytest.mark.django_db


def backend_for(fake: FakeKube, **fields: Any) -> KubernetesBackend:
    return KubernetesBackend(make_cluster(fake, **fields))


def condition(kind: str, reason: str = "", message: str = "") -> dict[str, Any]:
    return {"type": kind, "status": "True", "reason": reason or kind, "message": message,
            "lastTransitionTime": "2026-01-01T00:00:00Z"}  # fmt: skip


# --- submit -----------------------------------------------------------------------------------------


def test_submit_creates_the_rendered_job_once(fake_kube):
    backend = backend_for(fake_kube)
    job = make_job("pytorch")
    backend.submit(job)
    backend.submit(job)  # a retried submit
    stored = fake_kube.of_kind(*PYTORCH)
    assert len(stored) == 1
    assert stored[0]["metadata"]["labels"][m.LABEL_JOB_ID] == "j-ab12cd34"
    assert stored[0]["metadata"]["uid"] and stored[0]["metadata"]["resourceVersion"]
    assert stored[0]["spec"] == backend.render(job)[0]["spec"]
    assert [r.status for r in fake_kube.requests("POST")] == [201, 409]
    assert fake_kube.requests("POST")[0].query.get("fieldValidation") == "Strict"


def test_conflict_with_someone_elses_object_is_rejected(fake_kube):
    fake_kube.put(*PYTORCH, NS, {"metadata": {"name": "j-ab12cd34", "labels": {m.LABEL_JOB_ID: "j-other"}}})
    with pytest.raises(BackendRejected, match="j-other"):
        backend_for(fake_kube).submit(make_job("pytorch"))


def test_injected_409_on_create_reads_back_our_object(fake_kube):
    backend = backend_for(fake_kube)
    job = make_job("tensorflow")
    backend.submit(job)
    fake_kube.fail("POST", r"/tfjobs$", 409)
    backend.submit(job)
    assert fake_kube.requests("GET", r"/tfjobs/j-ab12cd34$")[-1].status == 200


def test_submit_creates_a_missing_team_namespace(fake_kube):
    backend = backend_for(fake_kube)
    backend.submit(make_job("batch", team="speech"))
    assert fake_kube.get("", "v1", "namespaces", "", "easyai-speech") is not None
    assert fake_kube.get(*VCJOB, "easyai-speech", "j-ab12cd34") is not None


def test_422_rejects_the_job_with_the_servers_message(fake_kube):
    fake_kube.fail("POST", r"/pytorchjobs$", 422, message='PyTorchJob "j-ab12cd34" is invalid: spec: bad')
    with pytest.raises(BackendRejected, match="is invalid: spec: bad"):
        backend_for(fake_kube).submit(make_job("pytorch"))


def test_500_is_a_retryable_error(fake_kube):
    fake_kube.fail("POST", r"/pytorchjobs$", 500)
    backend = backend_for(fake_kube)
    with pytest.raises(BackendError) as caught:
        backend.submit(make_job("pytorch"))
    assert not isinstance(caught.value, BackendUnavailable)
    backend.submit(make_job("pytorch"))  # the worker's retry goes through
    assert len(fake_kube.of_kind(*PYTORCH)) == 1


def test_a_hung_server_times_out_as_a_retryable_error(fake_kube):
    fake_kube.hang("POST", r"/pytorchjobs$")
    backend = backend_for(fake_kube, settings={"request_timeout": 0.5})
    started = time.monotonic()
    with pytest.raises(BackendError) as caught:
        backend.submit(make_job("pytorch"))
    assert not isinstance(caught.value, BackendUnavailable)
    assert time.monotonic() - started < 2.5


@pytest.mark.parametrize("status", [401, 403])
def test_refusal_marks_the_cluster_unhealthy_until_it_answers(fake_kube, status):
    backend = backend_for(fake_kube)
    fake_kube.fail("GET", r"/api/v1/pods$", status, message="system:serviceaccount:easyai cannot list pods")
    with pytest.raises(BackendUnavailable, match="cannot list pods"):
        backend.observe(["j-ab12cd34"])
    cluster = Cluster.objects.get(pk=backend.cluster.pk)
    assert not cluster.healthy and "cannot list pods" in cluster.health_message and cluster.health_checked_at
    backend.observe(["j-ab12cd34"])
    assert Cluster.objects.get(pk=backend.cluster.pk).healthy


def test_wrong_token_is_unavailable(fake_kube):
    backend = backend_for(fake_kube)
    fake_kube.token = "rotated"
    with pytest.raises(BackendUnavailable):
        backend.submit(make_job("pytorch"))
    assert not Cluster.objects.get(pk=backend.cluster.pk).healthy


# --- observe ---------------------------------------------------------------------------------------------


def test_observe_follows_the_operators_conditions_and_pods(fake_kube):
    backend = backend_for(fake_kube)
    backend.submit(make_job("pytorch"))
    fake_kube.set_status(*PYTORCH, NS, "j-ab12cd34", {"conditions": [condition("Created")]})
    assert backend.observe(["j-ab12cd34"])["j-ab12cd34"].state == ObservedState.PENDING

    run_pods(fake_kube, PYTORCH, "j-ab12cd34")
    fake_kube.set_status(*PYTORCH, NS, "j-ab12cd34",
                         {"conditions": [condition("Created"), condition("Running")],
                          "startTime": "2026-01-01T00:00:00Z"})  # fmt: skip
    seen = backend.observe(["j-ab12cd34"])["j-ab12cd34"]
    assert seen.state == ObservedState.RUNNING and seen.started_at is not None
    tasks = {(t.role, t.index): t for t in seen.tasks}
    assert set(tasks) == {("master", 0), ("worker", 0), ("worker", 1)}
    assert tasks[("worker", 1)].state == ObservedState.RUNNING
    assert tasks[("worker", 1)].node == "node-1" and tasks[("worker", 1)].address.startswith("10.1.0.")
    assert tasks[("worker", 1)].pod_name == "j-ab12cd34-worker-1"

    restarting = [condition("Created"), condition("Running"), condition("Restarting", message="worker-1 died")]
    fake_kube.set_status(*PYTORCH, NS, "j-ab12cd34", {"conditions": restarting})
    seen = backend.observe(["j-ab12cd34"])["j-ab12cd34"]
    assert (seen.state, seen.reason, seen.message) == (ObservedState.RUNNING, "Restarting", "worker-1 died")


def test_success_copies_logs_then_deletes_in_the_foreground(fake_kube):
    backend = backend_for(fake_kube)
    backend.submit(make_job("pytorch"))
    run_pods(fake_kube, PYTORCH, "j-ab12cd34", phase="Succeeded",
             state={"terminated": {"exitCode": 0, "reason": "Completed", "finishedAt": "2026-01-01T01:00:00Z"}})  # fmt: skip
    fake_kube.set_status(*PYTORCH, NS, "j-ab12cd34",
                         {"conditions": [condition("Running"), condition("Succeeded", message="done")],
                          "completionTime": "2026-01-01T01:00:00Z"})  # fmt: skip
    seen = backend.observe(["j-ab12cd34"])["j-ab12cd34"]
    assert seen.state == ObservedState.SUCCEEDED and seen.finished_at is not None
    assert {t.exit_code for t in seen.tasks} == {0}
    root = Path(settings.EASYAI_STORAGE_ROOT)
    assert task_log_path(root, "j-ab12cd34", "worker-1").read_bytes() == b"hello from worker-1\n"
    assert task_log_path(root, "j-ab12cd34", "master-0").read_bytes() == b"hello from master-0\n"
    (deleted,) = fake_kube.requests("DELETE")
    assert deleted.path.endswith("/pytorchjobs/j-ab12cd34")
    assert deleted.query["propagationPolicy"] == "Foreground"
    # The logs stay readable from the portal's copy once the cluster forgot the pods.
    for pod in [p for p in list(fake_kube.objects) if p[2] == "pods"]:
        fake_kube.objects.pop(pod)
    assert backend.read_log("j-ab12cd34", "worker-1") == (b"hello from worker-1\n", 20)
    assert backend.observe(["j-ab12cd34"])["j-ab12cd34"].state == ObservedState.MISSING


def test_failure_reports_exit_code_and_keeps_objects_while_configured(fake_kube):
    backend = backend_for(fake_kube, settings={"request_timeout": 1, "keep_finished_minutes": 60})
    backend.submit(make_job("pytorch"))
    run_pods(fake_kube, PYTORCH, "j-ab12cd34", phase="Failed",
             state={"terminated": {"exitCode": 137, "reason": "OOMKilled", "message": "out of memory"}})  # fmt: skip
    fake_kube.set_status(*PYTORCH, NS, "j-ab12cd34",
                         {"conditions": [condition("Failed", "PyTorchJobFailed", "worker-1 failed")],
                          "completionTime": "2099-01-01T00:00:00Z"})  # fmt: skip
    seen = backend.observe(["j-ab12cd34"])["j-ab12cd34"]
    assert (seen.state, seen.reason, seen.message) == (ObservedState.FAILED, "PyTorchJobFailed", "worker-1 failed")
    task = next(t for t in seen.tasks if (t.role, t.index) == ("worker", 1))
    assert (task.state, task.exit_code, task.reason, task.message) == (ObservedState.FAILED, 137, "OOMKilled",
                                                                       "out of memory")  # fmt: skip
    assert fake_kube.requests("DELETE") == []
    assert task_log_path(Path(settings.EASYAI_STORAGE_ROOT), "j-ab12cd34", "master-0").exists()


def test_image_pull_trouble_is_reported_on_the_task(fake_kube):
    backend = backend_for(fake_kube)
    backend.submit(make_job("pytorch"))
    run_pods(fake_kube, PYTORCH, "j-ab12cd34", phase="Pending",
             state={"waiting": {"reason": "ImagePullBackOff", "message": "pull access denied"}})  # fmt: skip
    seen = backend.observe(["j-ab12cd34"])["j-ab12cd34"]
    assert {(t.state, t.reason) for t in seen.tasks} == {(ObservedState.PENDING, "ImagePullBackOff")}


@pytest.mark.parametrize(
    ("phase", "state"),
    [("Pending", ObservedState.PENDING), ("Running", ObservedState.RUNNING), ("Completed", ObservedState.SUCCEEDED),
     ("Terminated", ObservedState.FAILED), ("Failed", ObservedState.FAILED), ("Aborted", ObservedState.STOPPED)],
)  # fmt: skip
def test_volcano_job_phases(fake_kube, phase, state):
    backend = backend_for(fake_kube, scheduler=Cluster.Scheduler.VOLCANO, settings={"keep_finished_minutes": 5})
    backend.submit(make_job("batch"))
    run_pods(fake_kube, VCJOB, "j-ab12cd34")
    fake_kube.set_status(
        *VCJOB, NS, "j-ab12cd34", {"state": {"phase": phase, "lastTransitionTime": "2099-01-01T00:00:00Z"}}
    )
    seen = backend.observe(["j-ab12cd34"])["j-ab12cd34"]
    assert seen.state == state
    assert {(t.role, t.index) for t in seen.tasks} == {("driver", 0), ("executor", 0), ("executor", 1), ("executor", 2)}


def test_notebook_pod_is_observed_from_its_phase(fake_kube):
    backend = backend_for(fake_kube)
    backend.submit(make_job("notebook"))
    pod = fake_kube.get("", "v1", "pods", NS, "j-ab12cd34")
    assert pod["metadata"]["labels"][m.LABEL_JOB_ID] == "j-ab12cd34"
    assert backend.observe(["j-ab12cd34"])["j-ab12cd34"].state == ObservedState.PENDING
    fake_kube.set_status("", "v1", "pods", NS, "j-ab12cd34", {"phase": "Running", "podIP": "10.2.0.9"})
    seen = backend.observe(["j-ab12cd34"])["j-ab12cd34"]
    assert seen.state == ObservedState.RUNNING and seen.tasks[0].address == "10.2.0.9"
    assert (seen.tasks[0].role, seen.tasks[0].index) == ("notebook", 0)


def test_a_sync_pass_costs_the_same_for_10_jobs_as_for_1000(fake_kube):
    backend = backend_for(fake_kube)
    template = backend.render(make_job("pytorch"))[0]

    def fill(count: int) -> list[str]:
        ids = [f"j-{i:08d}" for i in range(count)]
        for job_id in ids:
            obj = {
                **template,
                "metadata": {
                    **template["metadata"],
                    "name": job_id,
                    "labels": {**template["metadata"]["labels"], m.LABEL_JOB_ID: job_id},
                },
            }
            fake_kube.put(*PYTORCH, NS, obj)  # fmt: skip
            fake_kube.add_pod(NS, f"{job_id}-master-0", {**obj["metadata"]["labels"], m.LABEL_ROLE: "master"})
        return ids

    backend.observe(["warm-up"])  # the CRD list is fetched once, then cached
    ten = fill(10)
    fake_kube.clear_journal()
    assert len(backend.observe(ten)) == 10
    calls_for_ten = [(r.method, r.path) for r in fake_kube.journal]
    thousand = fill(1000)
    fake_kube.clear_journal()
    seen = backend.observe(thousand)
    calls_for_thousand = [(r.method, r.path) for r in fake_kube.journal]
    assert len(seen) == 1000 and seen["j-00000999"].tasks[0].state == ObservedState.RUNNING
    assert calls_for_thousand == calls_for_ten
    # 5 training-operator kinds + Volcano jobs + one pod list + the Events of the one namespace the jobs are in
    assert len(calls_for_ten) == 8
    assert all(method == "GET" for method, _path in calls_for_ten)
    assert [path for _method, path in calls_for_ten if "/namespaces/" in path] == [f"/api/v1/namespaces/{NS}/events"]


def test_observe_500_is_retryable_and_a_vanished_job_is_missing(fake_kube):
    backend = backend_for(fake_kube)
    backend.submit(make_job("pytorch"))
    fake_kube.fail("GET", r"/apis/kubeflow.org/v1/pytorchjobs$", 500)
    with pytest.raises(BackendError):
        backend.observe(["j-ab12cd34"])
    fake_kube.objects.pop((*PYTORCH, NS, "j-ab12cd34"))
    assert backend.observe(["j-ab12cd34"])["j-ab12cd34"].state == ObservedState.MISSING


def test_observe_times_out_as_retryable(fake_kube):
    backend = backend_for(fake_kube, settings={"request_timeout": 0.5})
    backend.observe(["j-ab12cd34"])
    fake_kube.hang("GET", r"/api/v1/pods$")
    with pytest.raises(BackendError) as caught:
        backend.observe(["j-ab12cd34"])
    assert not isinstance(caught.value, BackendUnavailable)


# --- stop, delete --------------------------------------------------------------------------------------------


def test_stop_deletes_in_the_foreground_and_is_idempotent(fake_kube):
    backend = backend_for(fake_kube)
    backend.submit(make_job("xgboost"))
    backend.stop("j-ab12cd34")
    assert fake_kube.get("kubeflow.org", "v1", "xgboostjobs", NS, "j-ab12cd34") is None
    assert fake_kube.requests("DELETE")[0].query["propagationPolicy"] == "Foreground"
    backend.stop("j-ab12cd34")  # gone already: fine
    fresh = backend_for(fake_kube, name="gpu-b")  # a worker that never saw the job
    fresh.stop("j-ab12cd34")
    fresh.delete("j-ab12cd34")


def test_stop_copies_logs_before_deleting(fake_kube):
    backend = backend_for(fake_kube)
    backend.submit(make_job("pytorch"))
    run_pods(fake_kube, PYTORCH, "j-ab12cd34")
    KubernetesBackend(backend.cluster).stop("j-ab12cd34")
    assert task_log_path(Path(settings.EASYAI_STORAGE_ROOT), "j-ab12cd34", "worker-0").read_bytes() == (
        b"hello from worker-0\n"
    )
    assert fake_kube.get(*PYTORCH, NS, "j-ab12cd34") is None


def test_404_on_delete_is_fine(fake_kube):
    backend = backend_for(fake_kube)
    backend.submit(make_job("pytorch"))
    run_pods(fake_kube, PYTORCH, "j-ab12cd34")
    backend.observe(["j-ab12cd34"])
    # Someone else deleted the job between our look and our delete: the server answers 404.
    fake_kube.fail("DELETE", r"/pytorchjobs/j-ab12cd34$", 404)
    backend.delete("j-ab12cd34")  # no error: gone is what we wanted
    assert [r.status for r in fake_kube.requests("DELETE", r"/pytorchjobs/j-ab12cd34$")] == [404]
    # The portal kept the task's log all the same, and the next delete (a retry) asks again and succeeds.
    assert task_log_path(Path(settings.EASYAI_STORAGE_ROOT), "j-ab12cd34", "worker-0").read_bytes() == (
        b"hello from worker-0\n"
    )
    backend.delete("j-ab12cd34")
    assert fake_kube.get(*PYTORCH, NS, "j-ab12cd34") is None


# --- logs and shell ---------------------------------------------------------------------------------------


def test_read_log_from_the_live_pod_with_offsets(fake_kube):
    backend = backend_for(fake_kube)
    backend.submit(make_job("pytorch"))
    run_pods(fake_kube, PYTORCH, "j-ab12cd34")
    fake_kube.logs[(NS, "j-ab12cd34-master-0")] = b"line 1\nline 2\n"
    assert backend.read_log("j-ab12cd34", "master-0") == (b"line 1\nline 2\n", 14)
    assert backend.read_log("j-ab12cd34", "master-0", offset=7) == (b"line 2\n", 14)
    assert backend.read_log("j-ab12cd34", "master-0", offset=0, limit=4) == (b"line", 4)
    assert fake_kube.requests("GET", r"/log$")[-1].query["container"] == "pytorch"


def test_follow_log_streams_chunks_until_the_pod_ends(fake_kube):
    backend = backend_for(fake_kube)
    backend.submit(make_job("pytorch"))
    run_pods(fake_kube, PYTORCH, "j-ab12cd34")
    fake_kube.logs[(NS, "j-ab12cd34-worker-0")] = b"epoch 1\n"
    fake_kube.follow_chunks[(NS, "j-ab12cd34-worker-0")] = [b"epoch 2\n", b"epoch 3\n"]
    assert b"".join(backend.follow_log("j-ab12cd34", "worker-0")) == b"epoch 1\nepoch 2\nepoch 3\n"
    assert b"".join(backend.follow_log("j-ab12cd34", "worker-0", offset=8)) == b"epoch 2\nepoch 3\n"
    assert fake_kube.requests("GET", r"/log$")[-1].query["follow"] == "true"


def test_follow_log_of_a_finished_job_reads_the_copy(fake_kube):
    backend = backend_for(fake_kube)
    path = task_log_path(Path(settings.EASYAI_STORAGE_ROOT), "j-gone0000", "master-0")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"all done\n")
    assert b"".join(backend.follow_log("j-gone0000", "master-0", offset=4)) == b"done\n"


def test_shell_in_a_task_over_the_exec_api(fake_kube):
    backend = backend_for(fake_kube)
    backend.submit(make_job("pytorch"))
    run_pods(fake_kube, PYTORCH, "j-ab12cd34")
    shell = backend.open_shell("j-ab12cd34", "worker-1")
    output = b""
    deadline = time.monotonic() + 3
    while b"$ " not in output and time.monotonic() < deadline:
        output += shell.read(0.2) or b""
    shell.resize(40, 120)
    shell.write(b"ls\n")
    while b"ls\n" not in output and time.monotonic() < deadline:
        output += shell.read(0.2) or b""
    assert output == b"$ ls\n"
    shell.write(b"exit\n")
    while (chunk := shell.read(0.2)) is not None and time.monotonic() < deadline:
        pass
    assert chunk is None
    shell.close()
    (session,) = fake_kube.execs
    assert session.pod == "j-ab12cd34-worker-1" and session.resizes == [{"Width": 120, "Height": 40}]
    assert fake_kube.requests("GET", r"/exec$")[0].query["container"] == "pytorch"


def test_shell_needs_a_pod(fake_kube):
    with pytest.raises(BackendError, match="has no pod"):
        backend_for(fake_kube).open_shell("j-ab12cd34", "master-0")


# --- capacity and check ----------------------------------------------------------------------------------------


def test_capacity_is_allocatable_less_requests(fake_kube):
    fake_kube.add_node("n1", {"cpu": "16", "memory": "64Gi", "nvidia.com/gpu": "4"})
    fake_kube.add_node("n2", {"cpu": "8000m", "memory": "32Gi", "nvidia.com/gpu": "0"})
    fake_kube.add_node("cordoned", {"cpu": "64", "memory": "1Ti"}, unschedulable=True)
    fake_kube.add_pod("other", "busy", {}, node="n1", requests={"cpu": "2500m", "memory": "4Gi", "nvidia.com/gpu": "1"})
    fake_kube.add_pod("other", "done", {}, node="n1", phase="Succeeded", requests={"cpu": "8"})
    capacity = backend_for(fake_kube).capacity()
    assert (capacity.cpu_milli, capacity.memory_bytes, capacity.gpu) == (24000, 96 * 2**30, 4)
    assert (capacity.free_cpu_milli, capacity.free_memory_bytes, capacity.free_gpu) == (21500, 92 * 2**30, 3)
    assert len(fake_kube.journal) == 2


def test_check_reports_what_this_cluster_lacks(fake_kube):
    backend = backend_for(fake_kube, nfs_server="", nfs_path="")
    assert backend.check(make_job("pytorch")) == [
        "this cluster has no NFS configured: jobs here cannot see their data and outputs"
    ]
    fake_kube.uninstall("jobs.batch.volcano.sh")
    backend.installed_crds(refresh=True)
    assert any("install Volcano" in p for p in backend.check(make_job("batch")))
    job = make_job("pytorch")
    job.framework = "jax"
    assert backend.check(job) == ["unknown framework 'jax'"]


def test_check_knows_the_v2beta1_mpi_operator(fake_kube):
    fake_kube.uninstall("mpijobs.kubeflow.org")
    fake_kube.put("apiextensions.k8s.io", "v1", "customresourcedefinitions", "",
                  {"metadata": {"name": "mpijobs.kubeflow.org"},
                   "spec": {"group": "kubeflow.org", "names": {"plural": "mpijobs", "kind": "MPIJob"},
                            "versions": [{"name": "v2beta1", "served": True}]}})  # fmt: skip
    problems = backend_for(fake_kube).check(make_job("mpi"))
    assert any("v2beta1" in p for p in problems)
    with pytest.raises(BackendRejected):
        backend_for(fake_kube, name="gpu-c").submit(make_job("mpi"))
