"""Why a job waits on Kubernetes: the scheduler's message, image-pull errors and the job's Events, kept by the
sync pass and shown on the job page; against the fake API server with the real kubernetes client."""

import json

import pytest

from jobs import tasks
from jobs.models import Job, JobClusterEvent
from jobs.state import JobState
from teams.models import Membership, Team
from testing.fakekube import NS, PYTORCH, make_cluster, run_pods

pytestmark = pytest.mark.django_db

UNSCHEDULABLE = "0/12 nodes are available: 4 Insufficient nvidia.com/gpu, 8 node(s) didn't match Pod's node affinity."
NOT_PLACED = [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": UNSCHEDULABLE}]


@pytest.fixture
def cluster(kube):
    return make_cluster(kube, name="gpu-a", is_default=True)


@pytest.fixture
def submitted(api, owner, cluster, spec_doc, django_capture_on_commit_callbacks):
    """submitted(user=owner) -> a PyTorch job created on the fake cluster (pending, no pods yet)."""

    def submit(user=owner) -> Job:
        with django_capture_on_commit_callbacks(execute=True):
            response = api(user).post("/api/v1/jobs/", json.dumps(spec_doc()), content_type="application/json")
        assert response.status_code == 201, response.content
        return Job.objects.get(public_id=response.json()["id"])

    return submit


def job_page(client, user, job) -> str:
    client.force_login(user)
    response = client.get(f"/jobs/{job.public_id}/")
    assert response.status_code == 200
    return response.content.decode()


def test_an_unschedulable_pods_message_reaches_the_job_page(client, owner, kube, cluster, submitted):
    job = submitted()
    run_pods(kube, PYTORCH, job.public_id, phase="Pending", node="", conditions=NOT_PLACED)
    tasks.sync_cluster(cluster.pk)

    job.refresh_from_db()
    assert job.state == JobState.PENDING
    assert job.reason == "Unschedulable" and UNSCHEDULABLE in job.message
    master = job.tasks.get(role="master")
    assert (master.reason, master.message) == ("Unschedulable", UNSCHEDULABLE)
    html = job_page(client, owner, job)
    waiting = html.split('id="why-waiting"', 1)[1].split("</div>", 1)[0]
    assert "4 Insufficient nvidia.com/gpu" in waiting


def test_an_image_pull_error_reaches_the_job_page(client, owner, kube, cluster, submitted):
    job = submitted()
    pull = 'Back-off pulling image "pytorch/pytorch:2.3-typo": not found'
    run_pods(kube, PYTORCH, job.public_id, phase="Pending",
             state={"waiting": {"reason": "ImagePullBackOff", "message": pull}})  # fmt: skip
    tasks.sync_cluster(cluster.pk)

    job.refresh_from_db()
    assert job.reason == "ImagePullBackOff"
    html = job_page(client, owner, job)
    waiting = html.split('id="why-waiting"', 1)[1].split("</div>", 1)[0]
    assert "pytorch/pytorch:2.3-typo" in waiting.replace("&quot;", '"')
    assert "ImagePullBackOff" in html.split('id="task-table"', 1)[1]


def test_events_are_kept_after_the_pods_are_deleted_and_a_repeat_is_counted_once(
    client, owner, kube, cluster, submitted
):
    job = submitted()
    pods = run_pods(kube, PYTORCH, job.public_id, phase="Pending", node="", conditions=NOT_PLACED)
    master = pods[0]["metadata"]["name"]
    kube.add_event(NS, {"kind": "Pod", "name": master}, "FailedScheduling", UNSCHEDULABLE, name="sched-1")
    kube.add_event(NS, {"kind": "PyTorchJob", "name": job.public_id}, "PyTorchJobCreated", "created", type="Normal")
    kube.add_event(NS, {"kind": "Pod", "name": "someone-elses-pod"}, "Pulled", "not ours", type="Normal")
    tasks.sync_cluster(cluster.pk)
    tasks.sync_cluster(cluster.pk)  # nothing new: nothing kept twice
    assert sorted(JobClusterEvent.objects.filter(job=job).values_list("reason", "count")) == [
        ("FailedScheduling", 1),
        ("PyTorchJobCreated", 1),
    ]
    kept = JobClusterEvent.objects.get(job=job, reason="FailedScheduling")
    assert kept.type == "Warning" and kept.task.name == "master-0" and kept.message == UNSCHEDULABLE

    kube.add_event(NS, {"kind": "Pod", "name": master}, "FailedScheduling", UNSCHEDULABLE, count=4, name="sched-1")
    tasks.sync_cluster(cluster.pk)
    assert JobClusterEvent.objects.filter(job=job, reason="FailedScheduling").get().count == 4

    # The cluster forgets: the pods, the job and its events are deleted.
    for group, version, plural, namespace, name in list(kube.objects):
        if plural in ("pods", "events", "pytorchjobs"):
            kube.objects.pop((group, version, plural, namespace, name))
    tasks.sync_cluster(cluster.pk)
    assert JobClusterEvent.objects.filter(job=job).count() == 2
    html = job_page(client, owner, job)
    events = html.split('id="job-cluster-events"', 1)[1].split("</ul>", 1)[0]
    assert "FailedScheduling" in events and "4 Insufficient nvidia.com/gpu" in events and "4 times" in events
    assert "not ours" not in html


def test_a_pass_lists_events_once_per_namespace_whatever_the_number_of_jobs(
    kube, cluster, submitted, make_user, django_capture_on_commit_callbacks
):
    first, second = submitted(), submitted()
    speech = Team.objects.create(name="Speech", slug="speech")
    kube.put("", "v1", "namespaces", "", {"metadata": {"name": "easyai-speech"}})
    other = make_user("speaker")
    Membership.objects.create(team=speech, user=other, role=Membership.Role.MEMBER)
    third = submitted(other)
    for job in (first, second):
        run_pods(kube, PYTORCH, job.public_id, phase="Pending", node="", conditions=NOT_PLACED)
    kube.clear_journal()
    tasks.sync_cluster(cluster.pk)

    lists = [r.path for r in kube.requests("GET", r"/events$")]
    assert sorted(lists) == ["/api/v1/namespaces/easyai-speech/events", f"/api/v1/namespaces/{NS}/events"]
    assert third.team == speech


def test_operators_read_the_kept_events_in_the_admin(client, make_user, kube, cluster, submitted):
    job = submitted()
    kube.add_event(NS, {"kind": "PyTorchJob", "name": job.public_id}, "FailedCreatePod", "quota exceeded")
    tasks.sync_cluster(cluster.pk)
    client.force_login(make_user("root", is_staff=True, is_superuser=True))
    listing = client.get("/admin/jobs/jobclusterevent/")
    assert listing.status_code == 200 and "FailedCreatePod" in listing.content.decode()
    event = JobClusterEvent.objects.get(job=job)
    assert client.get(f"/admin/jobs/jobclusterevent/{event.pk}/change/").status_code == 200
