"""The workers' steps: submit (idempotent, retried with back-off), sync, reaper, timeout, retry, notify."""

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from clusters.backends.base import BackendError, BackendRejected, BackendUnavailable, ObservedState
from jobs import tasks, workers
from jobs.models import Job, JobEvent, Task
from jobs.state import JobState

pytestmark = pytest.mark.django_db


def test_a_redelivered_submit_does_not_submit_twice(owner, fake_backend, submit):
    job = submit(owner)
    assert fake_backend.submits() == 1
    tasks.submit_job(job.pk)  # django-q2 delivers the same task again
    tasks.submit_job(job.pk)
    assert fake_backend.submits() == 1
    job.refresh_from_db()
    assert job.state == JobState.PENDING and job.events.count() == 1


@pytest.mark.parametrize("error", [BackendError("connection refused"), BackendUnavailable("401 Unauthorized")])
def test_a_backend_failure_leaves_the_job_queued_with_the_retry_recorded(owner, fake_backend, submit, error):
    fake_backend.fail_submit = error
    job = submit(owner)
    job.refresh_from_db()
    assert job.state == JobState.QUEUED
    assert job.submit_attempts == 1 and job.reason == "submit_retry" and str(error) in job.submit_error
    assert job.submit_retry_at > timezone.now()
    # Not due yet: the scheduler leaves it alone.
    assert job.pk not in workers.submits_due()
    # Still failing at the next attempt: the back-off doubles.
    first_delay = job.submit_retry_at
    tasks.submit_job(job.pk)
    job.refresh_from_db()
    assert job.submit_attempts == 2 and job.submit_retry_at > first_delay
    # The backend answers again: submitted once, and on its way.
    fake_backend.fail_submit = None
    Job.objects.filter(pk=job.pk).update(submit_retry_at=timezone.now() - timedelta(seconds=1))
    assert workers.submits_due() == [job.pk]
    assert workers.submits_due() == []  # leased: not enqueued twice
    tasks.submit_job(job.pk)
    job.refresh_from_db()
    assert job.state == JobState.PENDING and job.submit_error == ""
    assert fake_backend.submits() == 3
    assert len(fake_backend.jobs) == 1


def test_a_rejected_job_fails_with_the_backends_message(owner, fake_backend, submit):
    fake_backend.fail_submit = BackendRejected('admission webhook denied: "spec.image" is required')
    job = submit(owner)
    job.refresh_from_db()
    assert job.state == JobState.FAILED and job.reason == "rejected"
    assert "admission webhook denied" in job.message


def test_sync_follows_the_backend_through_every_state(owner, fake_backend, submit):
    job = submit(owner)
    fake_backend.set_state(job.public_id, ObservedState.RUNNING, node="node-1")
    assert tasks.sync_cluster(fake_backend.cluster.pk) == {"jobs": 1, "moved": 1}
    job.refresh_from_db()
    assert job.state == JobState.RUNNING and job.started_at is not None
    assert set(job.tasks.values_list("state", "node")) == {("running", "node-1")}
    # A pass with nothing new changes nothing.
    assert tasks.sync_cluster(fake_backend.cluster.pk) == {"jobs": 1, "moved": 0}
    fake_backend.set_state(job.public_id, ObservedState.SUCCEEDED, exit_code=0)
    tasks.sync_cluster(fake_backend.cluster.pk)
    job.refresh_from_db()
    assert job.state == JobState.SUCCESS and job.finished_at is not None and job.duration is not None
    assert set(job.tasks.values_list("state", "exit_code")) == {("succeeded", 0)}
    assert [e.to_state for e in job.events.all()] == ["pending", "running", "success"]
    # Final states never change again.
    fake_backend.set_state(job.public_id, ObservedState.FAILED)
    assert tasks.sync_cluster(fake_backend.cluster.pk) == {"jobs": 0, "moved": 0}
    job.refresh_from_db()
    assert job.state == JobState.SUCCESS


def test_tasks_still_shown_running_when_the_job_ends_are_recorded_stopped(owner, fake_backend, submit):
    from dataclasses import replace

    job = submit(owner)  # a master and two workers
    fake_backend.set_state(job.public_id, ObservedState.RUNNING, node="node-1")
    tasks.sync_cluster(fake_backend.cluster.pk)
    # The master succeeded, so the job did; one worker's pod still runs, the other's is already gone.
    running = fake_backend.states[job.public_id]
    master, worker, _gone = running.tasks
    fake_backend.states[job.public_id] = replace(
        running,
        state=ObservedState.SUCCEEDED,
        tasks=[replace(master, state=ObservedState.SUCCEEDED, exit_code=0), worker],
    )
    tasks.sync_cluster(fake_backend.cluster.pk)

    job.refresh_from_db()
    assert job.state == JobState.SUCCESS
    assert sorted(job.tasks.values_list("role", "index", "state")) == [
        ("master", 0, "succeeded"),
        ("worker", 0, "stopped"),
        ("worker", 1, "stopped"),
    ]
    assert not job.tasks.filter(finished_at__isnull=True).exists()
    assert not job.tasks.exclude(endpoints={}).exists()


def test_a_job_that_finished_between_two_passes_is_recorded_through_pending(owner, fake_backend, submit):
    job = submit(owner)
    Job.objects.filter(pk=job.pk).update(state=JobState.UNKNOWN)
    fake_backend.set_state(
        job.public_id, ObservedState.FAILED, reason="exit_code", message="worker-1 exited with code 3"
    )
    tasks.sync_cluster(fake_backend.cluster.pk)
    job.refresh_from_db()
    assert job.state == JobState.FAILED and job.message == "worker-1 exited with code 3"
    assert [(e.from_state, e.to_state) for e in job.events.all()][-2:] == [
        ("unknown", "pending"),
        ("pending", "failed"),
    ]


def test_sync_is_one_backend_call_per_cluster_pass(owner, fake_backend, submit):
    for i in range(5):
        submit(owner, name=f"job-{i}")
    fake_backend.calls.clear()
    tasks.sync_cluster(fake_backend.cluster.pk)
    assert fake_backend.calls == [("observe", 5)]


def test_the_reaper_fails_a_job_whose_backend_objects_vanished(owner, fake_backend, submit, settings):
    settings.EASYAI_MISSING_GRACE = 0
    job = submit(owner)
    fake_backend.vanish(job.public_id)
    tasks.sync_cluster(fake_backend.cluster.pk)
    job.refresh_from_db()
    assert job.state == JobState.PENDING and job.missing_since is not None  # seen missing once: grace starts
    tasks.sync_cluster(fake_backend.cluster.pk)
    job.refresh_from_db()
    assert job.state == JobState.FAILED and job.reason == "missing" and "vanished" in job.message
    assert set(job.tasks.values_list("state", flat=True)) == {Task.State.MISSING}


def test_a_job_seen_again_within_the_grace_is_not_reaped(owner, fake_backend, submit, settings):
    settings.EASYAI_MISSING_GRACE = 3600
    job = submit(owner)
    description = fake_backend.jobs[job.public_id]
    fake_backend.vanish(job.public_id)
    tasks.sync_cluster(fake_backend.cluster.pk)
    tasks.sync_cluster(fake_backend.cluster.pk)
    fake_backend.jobs[job.public_id] = description
    fake_backend.set_state(job.public_id, ObservedState.RUNNING)
    tasks.sync_cluster(fake_backend.cluster.pk)
    job.refresh_from_db()
    assert job.state == JobState.RUNNING and job.missing_since is None


def test_timeout_stops_the_job_with_the_reason(owner, fake_backend, submit, django_capture_on_commit_callbacks):
    job = submit(owner, timeout="1h")
    fake_backend.set_state(job.public_id, ObservedState.RUNNING)
    tasks.sync_cluster(fake_backend.cluster.pk)
    assert workers.jobs_timed_out() == []
    Job.objects.filter(pk=job.pk).update(started_at=timezone.now() - timedelta(hours=1, seconds=1))
    assert workers.jobs_timed_out() == [job.pk]
    with django_capture_on_commit_callbacks(execute=True):
        tasks.timeout_job(job.pk)
    job.refresh_from_db()
    assert job.state == JobState.STOPPED and job.reason == "timeout"
    assert ("stop", job.public_id) in fake_backend.calls
    tasks.timeout_job(job.pk)  # redelivered: harmless
    assert job.events.filter(to_state="stopped").count() == 1


def test_a_failed_job_with_retries_left_is_resubmitted(owner, fake_backend, submit, django_capture_on_commit_callbacks):
    job = submit(owner, max_retries=1)
    fake_backend.set_state(job.public_id, ObservedState.FAILED, reason="exit_code")
    with django_capture_on_commit_callbacks(execute=True):
        tasks.sync_cluster(fake_backend.cluster.pk)
    retry = Job.objects.get(rerun_of=job)
    assert retry.attempt == 2 and retry.state == JobState.PENDING
    tasks.retry_job(job.pk)  # redelivered
    assert Job.objects.filter(rerun_of=job).count() == 1
    fake_backend.set_state(retry.public_id, ObservedState.FAILED)
    with django_capture_on_commit_callbacks(execute=True):
        tasks.sync_cluster(fake_backend.cluster.pk)
    assert Job.objects.count() == 2  # no retries left


def test_stop_while_queued_never_reaches_the_backend_as_running(
    api, owner, fake_backend, submit, django_capture_on_commit_callbacks
):
    fake_backend.fail_submit = BackendError("down")
    job = submit(owner)
    with django_capture_on_commit_callbacks(execute=True):
        assert api(owner).post(f"/api/v1/jobs/{job.public_id}/stop/").status_code == 200
    fake_backend.fail_submit = None
    Job.objects.filter(pk=job.pk).update(submit_retry_at=None)
    assert job.pk not in workers.submits_due()
    tasks.submit_job(job.pk)
    job.refresh_from_db()
    assert job.state == JobState.STOPPED and job.public_id not in fake_backend.jobs


def test_notifications_go_out_on_running_and_final_states_only(
    owner, team, fake_backend, submit, settings, webhook_server, django_capture_on_commit_callbacks
):
    url, received = webhook_server
    settings.EASYAI_NOTIFY_WEBHOOKS = True
    settings.EASYAI_WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.1/32"]  # the test's receiver is on loopback
    settings.EASYAI_NOTIFY_EMAIL = True
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    team.webhook_url = url
    team.save()
    job = submit(owner)  # queued -> pending: no notification
    assert received == [] and mail.outbox == []
    fake_backend.set_state(job.public_id, ObservedState.RUNNING)
    with django_capture_on_commit_callbacks(execute=True):
        tasks.sync_cluster(fake_backend.cluster.pk)
    fake_backend.set_state(job.public_id, ObservedState.SUCCEEDED)
    with django_capture_on_commit_callbacks(execute=True):
        tasks.sync_cluster(fake_backend.cluster.pk)
    assert [body["to"] for _, body in received] == ["running", "success"]
    assert received[0][0] == "application/json" and received[0][1]["job"]["id"] == job.public_id
    assert [m.subject for m in mail.outbox] == [
        f"[EasyAI] resnet ({job.public_id}) is running",
        f"[EasyAI] resnet ({job.public_id}) is success",
    ]


def test_a_failing_webhook_never_blocks_the_state_change(
    owner, team, fake_backend, submit, settings, django_capture_on_commit_callbacks
):
    settings.EASYAI_NOTIFY_WEBHOOKS = True
    team.webhook_url = "http://127.0.0.1:9/nothing-listens-here"
    team.save()
    job = submit(owner)
    fake_backend.set_state(job.public_id, ObservedState.RUNNING)
    with django_capture_on_commit_callbacks(execute=True):
        tasks.sync_cluster(fake_backend.cluster.pk)
    job.refresh_from_db()
    assert job.state == JobState.RUNNING
    assert JobEvent.objects.filter(job=job, to_state="running").exists()


def test_notifications_are_off_by_default(owner, fake_backend, submit, django_capture_on_commit_callbacks):
    job = submit(owner)
    fake_backend.set_state(job.public_id, ObservedState.RUNNING)
    with django_capture_on_commit_callbacks(execute=True):
        tasks.sync_cluster(fake_backend.cluster.pk)
    event = JobEvent.objects.get(job=job, to_state="running")
    from jobs.notify import send_for_event

    assert send_for_event(event.pk) == {"email": False, "webhook": False}


def test_a_cluster_whose_sync_fails_is_left_alone_until_its_back_off_passes(owner, fake_backend, submit, settings):
    from django.core.cache import cache
    from django_q.models import OrmQ

    from easyai_site.management.commands.scheduler import tick

    settings.EASYAI_SYNC_INTERVAL = 0.1
    job = submit(owner)
    fake_backend.fail_observe = BackendError("503 Service Unavailable")
    assert tasks.sync_cluster(fake_backend.cluster.pk)["error"] == 1
    job.refresh_from_db()
    assert job.state == JobState.PENDING  # nothing decided from a failed pass
    fake_backend.calls.clear()
    tick({})  # the scheduler skips the cluster while it backs off (tasks run inline here)
    assert ("observe", 1) not in fake_backend.calls
    cache.delete(f"easyai:sync-backoff:{fake_backend.cluster.pk}")
    fake_backend.fail_observe = None
    tick({})
    assert ("observe", 1) in fake_backend.calls
    assert not OrmQ.objects.exists()


def test_a_finished_jobs_backend_records_are_cleaned_up_after_the_delay(owner, fake_backend, submit, settings):
    settings.EASYAI_CLEANUP_AFTER = 3600
    job = submit(owner)
    fake_backend.set_state(job.public_id, ObservedState.SUCCEEDED)
    tasks.sync_cluster(fake_backend.cluster.pk)
    assert workers.cleanups_due() == []  # kept for debugging a while
    Job.objects.filter(pk=job.pk).update(finished_at=timezone.now() - timedelta(hours=2))
    assert workers.cleanups_due() == [job.pk]
    tasks.cleanup_job(job.pk)
    tasks.cleanup_job(job.pk)  # redelivered: harmless
    assert fake_backend.calls.count(("delete", job.public_id)) == 1
    job.refresh_from_db()
    assert job.cleaned_up and job.state == JobState.SUCCESS
    assert workers.cleanups_due() == []


def test_the_scheduler_syncs_only_busy_clusters_at_their_own_cadence(owner, fake_backend, submit, settings):
    from clusters.models import Cluster
    from easyai_site.management.commands.scheduler import tick

    # Long enough that the second tick below is always within it, however slow the machine (every app's periodic
    # work runs in a tick, inline here).
    settings.EASYAI_LOCAL_SYNC_INTERVAL = 60
    settings.EASYAI_SYNC_INTERVAL = 2.0
    assert fake_backend.cluster.sync_interval == 60  # a local cluster
    assert Cluster(kind="kubernetes").sync_interval == 2.0
    assert Cluster(kind="kubernetes", settings={"sync_interval": 5}).sync_interval == 5.0
    tick({})
    assert not any(name == "observe" for name, _ in fake_backend.calls)  # no active job: no pass
    job = submit(owner)
    last: dict = {}
    tick(last)
    assert ("observe", 1) in fake_backend.calls
    fake_backend.calls.clear()
    tick(last)  # within the interval: not again
    assert ("observe", 1) not in fake_backend.calls
    fake_backend.set_state(job.public_id, ObservedState.SUCCEEDED)
    last[("sync", fake_backend.cluster.pk)] = 0
    tick(last)
    job.refresh_from_db()
    assert job.state == JobState.SUCCESS


# --- stops the backend failed are retried ------------------------------------------------------


def test_a_failed_stop_on_the_backend_is_retried_with_back_off_until_it_succeeds(
    owner, fake_backend, submit, django_capture_on_commit_callbacks
):
    from easyai_site.management.commands.scheduler import tick
    from jobs import services

    job = submit(owner)
    fake_backend.set_state(job.public_id, ObservedState.RUNNING)
    tasks.sync_cluster(fake_backend.cluster.pk)
    fake_backend.fail_stop = BackendError("503 Service Unavailable")
    before = timezone.now()
    with django_capture_on_commit_callbacks(execute=True):
        services.job_stop(job=job, actor=owner)
    job.refresh_from_db()
    # Recorded stopped at once; the backend's failure is recorded and a retry is due after the back-off.
    assert job.state == JobState.STOPPED
    assert job.stop_attempts == 1 and "503" in job.stop_error
    assert before + workers.backoff(1) <= job.stop_retry_at <= timezone.now() + workers.backoff(1)
    assert fake_backend.states[job.public_id].state == ObservedState.RUNNING  # its tasks still run
    assert workers.stops_due() == []  # not due yet

    Job.objects.filter(pk=job.pk).update(stop_retry_at=timezone.now() - timedelta(seconds=1))
    assert workers.stops_due() == [job.pk]
    assert workers.stops_due() == []  # leased: not enqueued twice
    before = timezone.now()
    tasks.stop_on_backend(job.pk)  # fails a second time: the back-off doubles
    job.refresh_from_db()
    assert job.stop_attempts == 2 and workers.backoff(2) == 2 * workers.backoff(1)
    assert before + workers.backoff(2) <= job.stop_retry_at <= timezone.now() + workers.backoff(2)

    # The backend answers again: the scheduler's next scan hands the stop to a worker, which succeeds.
    fake_backend.fail_stop = None
    Job.objects.filter(pk=job.pk).update(stop_retry_at=timezone.now() - timedelta(seconds=1))
    tick({})
    assert fake_backend.calls.count(("stop", job.public_id)) == 3
    assert fake_backend.states[job.public_id].state == ObservedState.STOPPED  # the backend really stopped it
    job.refresh_from_db()
    assert job.stop_retry_at is None and job.stop_error == "" and job.stop_attempts == 2
    assert set(job.tasks.values_list("state", flat=True)) == {Task.State.STOPPED}

    # Nothing retries after success, however late it gets.
    assert workers.stops_due(now=timezone.now() + timedelta(days=1)) == []
    tick({})
    assert fake_backend.calls.count(("stop", job.public_id)) == 3
    assert job.events.filter(to_state=JobState.STOPPED).count() == 1


def test_a_stop_whose_delivery_was_lost_is_asked_again_by_the_scheduler(owner, fake_backend, submit):
    from jobs import services

    job = submit(owner)
    services.job_stop(job=job, actor=owner)  # committed, but the enqueued stop never ran (a worker died)
    assert ("stop", job.public_id) not in fake_backend.calls
    assert workers.stops_due() == []  # the first delivery's lease still holds
    Job.objects.filter(pk=job.pk).update(stop_retry_at=timezone.now() - timedelta(seconds=1))
    (due,) = workers.stops_due()
    tasks.stop_on_backend(due)
    assert fake_backend.states[job.public_id].state == ObservedState.STOPPED
    job.refresh_from_db()
    assert job.stop_retry_at is None and job.stop_attempts == 0


def test_a_stop_on_the_kubernetes_api_that_answers_5xx_is_retried(owner, submit, django_capture_on_commit_callbacks):
    from jobs import services
    from testing.fakekube import make_cluster, running_fake

    for kube in running_fake():
        make_cluster(kube, name="gpu-a", is_default=True)
        job = submit(owner)
        assert kube.get("kubeflow.org", "v1", "pytorchjobs", "easyai-vision", job.public_id) is not None
        kube.fail("DELETE", f"/pytorchjobs/{job.public_id}$", 503, times=2)
        with django_capture_on_commit_callbacks(execute=True):
            services.job_stop(job=job, actor=owner)
        job.refresh_from_db()
        assert job.state == JobState.STOPPED and job.stop_attempts == 1 and job.stop_retry_at is not None
        for attempt in (2, 3):
            Job.objects.filter(pk=job.pk).update(stop_retry_at=timezone.now() - timedelta(seconds=1))
            for due in workers.stops_due():
                tasks.stop_on_backend(due)
            job.refresh_from_db()
            assert job.stop_attempts == min(attempt, 2)
        assert job.stop_retry_at is None
        assert kube.get("kubeflow.org", "v1", "pytorchjobs", "easyai-vision", job.public_id) is None
        assert [r.status for r in kube.requests("DELETE", f"/pytorchjobs/{job.public_id}$")] == [503, 503, 200]


# --- a submit redelivered after the backend took the job ----------------------------------------


@pytest.mark.slow
def test_a_submit_redelivered_after_the_backend_took_the_job_starts_no_second_copy(owner, settings):
    """The risky redelivery: the backend created the job, the worker died before recording it (still queued)."""
    import time
    from pathlib import Path

    from clusters.backends.contract import storage
    from clusters.models import Cluster
    from jobs import services
    from jobs.describe import describe

    cluster = Cluster.objects.create(
        name="local", kind="local", is_default=True, settings={"cpu": 4, "memory": "4Gi", "stop_grace": 1}
    )
    # Each task notes that it started, then waits until the test lets it go.
    command = 'echo "$RANK" >> "$share_dir/starts"; while [ ! -e "$share_dir/go" ]; do sleep 0.02; done'
    job = services.job_submit(
        user=owner,
        data={
            "name": "once",
            "framework": "batch",
            "command": command,
            "roles": {"main": {"replicas": 2, "cpu": "250m", "memory": "128Mi"}},
        },
    )  # recorded; its enqueued submit is lost with the worker
    share = storage.output_dir(Path(settings.EASYAI_STORAGE_ROOT), job.public_id, "share_dir")
    starts = share / "starts"
    backend = cluster.backend()
    backend.submit(describe(job))  # what the dead worker's call did on the backend
    deadline = time.monotonic() + 15
    while len(starts.read_text().splitlines() if starts.exists() else []) < 2:
        assert time.monotonic() < deadline, "the tasks never started"
        time.sleep(0.02)
    job.refresh_from_db()
    assert job.state == JobState.QUEUED

    # The lease runs out; the scheduler hands the submit to a worker again.
    Job.objects.filter(pk=job.pk).update(submit_retry_at=timezone.now() - timedelta(seconds=1))
    assert workers.submits_due() == [job.pk]
    tasks.submit_job(job.pk)
    job.refresh_from_db()
    assert job.state == JobState.PENDING
    tasks.sync_cluster(cluster.pk)
    job.refresh_from_db()
    assert job.state == JobState.RUNNING
    (share / "go").touch()
    while not job.is_final:
        assert time.monotonic() < deadline + 15, f"still {job.state}"
        tasks.sync_cluster(cluster.pk)
        job.refresh_from_db()
        time.sleep(0.05)
    assert job.state == JobState.SUCCESS
    # One copy ran: each task started once, and the backend keeps one record of the job.
    assert len(starts.read_text().splitlines()) == 2
    records = list(Path(settings.EASYAI_LOCAL_STATE_DIR, cluster.name).glob(f"*/{job.public_id}.json"))
    assert len(records) == 1
    assert [e.to_state for e in job.events.all()] == ["pending", "running", "success"]


# --- cleanups honour each cluster's keep time -----------------------------------------------------


@pytest.fixture
def kube_fake_backend(db):
    """A Kubernetes cluster (keeps finished jobs' objects 30 minutes) whose backend is a FakeBackend."""
    from clusters.backends import use_backend
    from clusters.backends.fake import FakeBackend
    from clusters.models import Cluster

    cluster = Cluster.objects.create(name="kube", kind="kubernetes", settings={"keep_finished_minutes": 30})
    backend = FakeBackend()
    use_backend(cluster.name, backend)
    backend.cluster = cluster
    yield backend
    use_backend(cluster.name, None)


def test_cleanup_waits_for_each_clusters_keep_finished_minutes(
    owner, fake_backend, kube_fake_backend, submit, settings
):
    from clusters.models import Cluster

    settings.EASYAI_CLEANUP_AFTER = 3600
    local_job = submit(owner, name="local")
    kube_job = submit(owner, name="kube", cluster="kube")
    assert kube_job.public_id in kube_fake_backend.jobs
    now = timezone.now()
    Job.objects.filter(pk__in=[local_job.pk, kube_job.pk]).update(
        state=JobState.SUCCESS, finished_at=now - timedelta(minutes=29)
    )
    assert workers.cleanups_due(now=now) == []  # both still kept for debugging
    # Past the Kubernetes cluster's 30 minutes, long before the local default of an hour.
    assert workers.cleanups_due(now=now + timedelta(minutes=2)) == [kube_job.pk]
    # A longer keep time than the default is honoured too: not deleted after the hour.
    Cluster.objects.filter(pk=kube_fake_backend.cluster.pk).update(settings={"keep_finished_minutes": 120})
    assert workers.cleanups_due(now=now + timedelta(minutes=32)) == [local_job.pk]
    assert set(workers.cleanups_due(now=now + timedelta(minutes=92))) == {local_job.pk, kube_job.pk}
    tasks.cleanup_job(kube_job.pk)
    assert ("delete", kube_job.public_id) in kube_fake_backend.calls
    assert ("delete", kube_job.public_id) not in fake_backend.calls
    # No setting: Kubernetes objects go at once (as the backend's own default), local records after the default.
    Cluster.objects.filter(pk=kube_fake_backend.cluster.pk).update(settings={})
    again = submit(owner, name="kube2", cluster="kube")
    Job.objects.filter(pk=again.pk).update(state=JobState.FAILED, finished_at=now)
    assert workers.cleanups_due(now=now) == [again.pk]


@pytest.mark.parametrize("value", ["30", -1, True, None])
def test_a_keep_time_that_is_not_minutes_falls_back_to_the_default(value, settings):
    from clusters.models import Cluster

    settings.EASYAI_CLEANUP_AFTER = 600
    assert Cluster(kind="kubernetes", settings={"keep_finished_minutes": value}).keep_finished == timedelta(0)
    assert Cluster(kind="local", settings={"keep_finished_minutes": value}).keep_finished == timedelta(seconds=600)
    assert Cluster(kind="local", settings={"keep_finished_minutes": 1.5}).keep_finished == timedelta(seconds=90)


def test_kubernetes_objects_of_a_finished_job_stay_their_minutes_then_go(owner, submit):
    """Real client, fake API server: the sync pass keeps the objects; the cleanup deletes them when due."""
    from testing.fakekube import make_cluster, running_fake

    pytorch = ("kubeflow.org", "v1", "pytorchjobs")
    for kube in running_fake():
        make_cluster(kube, name="gpu-a", is_default=True, settings={"request_timeout": 1, "keep_finished_minutes": 10})
        job = submit(owner)
        kube.set_status(*pytorch, "easyai-vision", job.public_id,
                        {"conditions": [{"type": "Succeeded", "status": "True"}]})  # fmt: skip
        tasks.sync_cluster(job.cluster_id)
        job.refresh_from_db()
        assert job.state == JobState.SUCCESS
        assert kube.requests("DELETE") == [] and kube.get(*pytorch, "easyai-vision", job.public_id)
        assert workers.cleanups_due() == []
        assert workers.cleanups_due(now=job.finished_at + timedelta(minutes=10)) == [job.pk]
        tasks.cleanup_job(job.pk)
        assert kube.get(*pytorch, "easyai-vision", job.public_id) is None
        job.refresh_from_db()
        assert job.cleaned_up


def test_a_redelivered_notify_task_sends_nothing_twice(
    owner, team, fake_backend, submit, settings, webhook_server, django_capture_on_commit_callbacks
):
    url, received = webhook_server
    settings.EASYAI_NOTIFY_WEBHOOKS = True
    settings.EASYAI_WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    settings.EASYAI_NOTIFY_EMAIL = True
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    team.webhook_url = url
    team.save()
    job = submit(owner)
    fake_backend.set_state(job.public_id, ObservedState.RUNNING)
    with django_capture_on_commit_callbacks(execute=True):
        tasks.sync_cluster(fake_backend.cluster.pk)
    event = JobEvent.objects.get(job=job, to_state="running")
    assert event.notified_at is not None and len(received) == 1 and len(mail.outbox) == 1
    # django-q2 delivers the same task again (its retry came before the first ack): nothing goes out.
    tasks.notify(event.pk)
    assert tasks.notify(event.pk) is None
    assert len(received) == 1 and len(mail.outbox) == 1
    event.refresh_from_db()
    assert event.notified_at is not None


def test_only_one_of_two_workers_claims_an_events_notification(owner, fake_backend, submit):
    from jobs.notify import claim

    job = submit(owner)
    event = JobEvent.objects.filter(job=job).first()
    first, second = JobEvent.objects.get(pk=event.pk), JobEvent.objects.get(pk=event.pk)
    assert [claim(first), claim(second)] == [True, False]
