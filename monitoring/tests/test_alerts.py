"""Alerts: an idle GPU job (told, or stopped), a job waiting too long, a cluster whose sync keeps failing; each
sent once, by e-mail (django's outbox) and to the team's webhook (a real HTTP server on loopback)."""

import json
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.apps import apps
from django.core import mail
from django.core.exceptions import ValidationError
from django.utils import timezone

from clusters.backends.base import BackendUnavailable, ObservedState
from clusters.services import cluster_save
from jobs import services, tasks
from jobs.models import Job
from jobs.state import JobState
from monitoring import alert_tasks, alerts
from monitoring.models import Alert, UsageSample

pytestmark = pytest.mark.django_db

UNSCHEDULABLE = "0/3 nodes are available: 3 Insufficient nvidia.com/gpu."


class _Hook(BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Hook.received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def webhook(team, settings):
    """The team's webhook, received by a real HTTP server on loopback: the list of bodies it got."""
    _Hook.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    settings.EASYAI_WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    team.webhook_url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    team.save()
    yield _Hook.received
    server.shutdown()


@pytest.fixture(autouse=True)
def channels(settings):
    settings.EASYAI_NOTIFY_EMAIL = True
    settings.EASYAI_NOTIFY_WEBHOOKS = True
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.EASYAI_IDLE_GPU_THRESHOLD = 5.0
    settings.EASYAI_IDLE_GPU_MINUTES = 30.0
    settings.EASYAI_PENDING_ALERT_MINUTES = 30.0
    settings.EASYAI_SYNC_ALERT_FAILURES = 3


@pytest.fixture
def gpu_job(owner, fake_backend, django_capture_on_commit_callbacks):
    """gpu_job(gpu=1) -> a job running on the fake cluster for an hour, as the sync pass saw it."""

    def make(gpu: int = 1, name: str = "train") -> Job:
        doc = {
            "name": name,
            "framework": "pytorch",
            "image": "pytorch/pytorch:2.3",
            "command": "python train.py",
            "roles": {"master": {"replicas": 1, "cpu": "1", "memory": "1Gi", "gpu": gpu}},
        }
        with django_capture_on_commit_callbacks(execute=True):
            job = services.job_submit(user=owner, data=doc)
        fake_backend.set_state(job.public_id, ObservedState.RUNNING)
        tasks.sync_cluster(fake_backend.cluster.pk)
        Job.objects.filter(pk=job.pk).update(started_at=timezone.now() - timedelta(hours=1))
        job.refresh_from_db()
        assert job.state == JobState.RUNNING
        return job

    return make


def samples(job: Job, now, minutes: float, util, every: float = 10.0) -> None:
    """Samples of the job's tasks every `every` seconds over the last `minutes` (util: a number or a function of
    the seconds before now)."""
    rows = []
    for task in job.tasks.all():
        back = minutes * 60
        while back >= 0:
            value = util(back) if callable(util) else util
            rows.append(
                UsageSample(task=task, job=job, at=now - timedelta(seconds=back), seconds=every, cpu_cores=1.0,
                            memory_bytes=2**30, gpu_util=value, gpu_memory_bytes=2**30)
            )  # fmt: skip
            back -= every
    UsageSample.objects.bulk_create(rows)


def test_an_idle_gpu_job_tells_its_owner_once_by_mail_and_webhook(owner, gpu_job, webhook):
    now = timezone.now()
    idle, busy, new = gpu_job(name="idle"), gpu_job(name="busy"), gpu_job(name="new")
    samples(idle, now, 40, 1.5)
    samples(busy, now, 40, lambda back: 80.0 if back == 600 else 0.0)  # one busy moment ten minutes ago
    samples(new, now, 10, 0.0)  # sampled for ten minutes only: not yet known to be idle for thirty

    assert alerts.scan(now=now)["idle_gpu"] == 1
    assert [m.to for m in mail.outbox] == [[owner.email]]
    assert idle.public_id in mail.outbox[0].subject and "under 5% for 30 minutes" in mail.outbox[0].body
    assert [(body["event"], body["job"]["id"]) for body in webhook] == [("job.idle_gpu", idle.public_id)]
    idle.refresh_from_db()
    assert idle.state == JobState.RUNNING  # told, not stopped: the default action

    # Later passes, still idle: nothing sent twice.
    assert alerts.scan(now=now + timedelta(minutes=1))["idle_gpu"] == 0
    assert alerts.scan(now=now + timedelta(minutes=2))["idle_gpu"] == 0
    assert len(mail.outbox) == 1 and len(webhook) == 1
    assert Alert.objects.get(kind=Alert.Kind.IDLE_GPU).job == idle


def test_a_cpu_job_is_never_idle_on_gpus(gpu_job):
    now = timezone.now()
    job = gpu_job(gpu=0)
    samples(job, now, 40, None)
    assert alerts.scan(now=now)["idle_gpu"] == 0 and mail.outbox == []


def test_idle_gpu_action_stop_stops_the_job_with_reason_idle(owner, gpu_job, fake_backend, webhook):
    cluster = fake_backend.cluster
    cluster.settings = {"idle_gpu_action": "stop", "idle_gpu_minutes": 10, "idle_gpu_threshold": 20}
    cluster_save(cluster=cluster)
    now = timezone.now()
    job = gpu_job()
    samples(job, now, 12, 15.0)  # under 20% for ten minutes

    counts = alerts.scan(now=now)
    assert counts["idle_gpu"] == 1 and counts["stopped"] == 1
    job.refresh_from_db()
    assert job.state == JobState.STOPPED and job.reason == "idle"
    assert "under 20% for 10 minutes" in job.message
    event = job.events.last()
    assert (event.to_state, event.reason) == (JobState.STOPPED, "idle")
    assert Alert.objects.get(job=job).action == "stopped"
    assert "was stopped" in mail.outbox[-1].subject and webhook[-1]["event"] == "job.idle_gpu"
    assert alerts.scan(now=now + timedelta(minutes=1))["idle_gpu"] == 0


def test_a_job_waiting_too_long_tells_its_owner_why_once(owner, fake_backend, django_capture_on_commit_callbacks):
    doc = {"name": "big", "framework": "pytorch", "image": "pytorch/pytorch:2.3", "command": "python train.py",
           "roles": {"master": {"replicas": 1, "cpu": "1", "memory": "1Gi", "gpu": 4}}}  # fmt: skip
    with django_capture_on_commit_callbacks(execute=True):
        job = services.job_submit(user=owner, data=doc)
    fake_backend.set_state(
        job.public_id, ObservedState.PENDING, reason="Unschedulable", message=f"master-0: {UNSCHEDULABLE}"
    )
    tasks.sync_cluster(fake_backend.cluster.pk)
    job.refresh_from_db()
    assert job.state == JobState.PENDING
    now = timezone.now()

    assert alerts.scan(now=now + timedelta(minutes=29))["pending"] == 0  # not yet: it waited 29 minutes
    assert alerts.scan(now=now + timedelta(minutes=31))["pending"] == 1
    [message] = mail.outbox
    assert message.to == [owner.email] and "has waited 31 minutes" in message.subject
    assert UNSCHEDULABLE in message.body
    assert alerts.scan(now=now + timedelta(minutes=40))["pending"] == 0
    assert len(mail.outbox) == 1


def test_a_cluster_whose_sync_keeps_failing_tells_admins_once_and_again_when_it_recovers(
    owner, staff, make_user, fake_backend, gpu_job
):
    quiet = make_user("quiet-admin", is_staff=True)
    quiet.email = ""  # no address: nothing to send to
    quiet.save()
    gpu_job()  # a job keeps the cluster synced
    cluster = fake_backend.cluster
    fake_backend.fail_observe = BackendUnavailable("connection refused")
    for _ in range(2):
        tasks.sync_cluster(cluster.pk)
    assert alerts.scan()["sync_failing"] == 0  # two failures are a hiccup
    tasks.sync_cluster(cluster.pk)
    assert alerts.scan()["sync_failing"] == 1
    [message] = mail.outbox
    assert message.to == [staff.email] and cluster.name in message.subject and "3 times in a row" in message.body
    tasks.sync_cluster(cluster.pk)
    assert alerts.scan()["sync_failing"] == 0  # the same outage: told once

    fake_backend.fail_observe = None
    tasks.sync_cluster(cluster.pk)
    assert alerts.scan()["sync_recovered"] == 1
    assert [m.to for m in mail.outbox] == [[staff.email], [staff.email]] and "recovered" in mail.outbox[1].subject
    assert alerts.scan() == {"idle_gpu": 0, "stopped": 0, "pending": 0, "sync_failing": 0, "sync_recovered": 0}

    # A later outage is a new one.
    fake_backend.fail_observe = BackendUnavailable("connection refused")
    for _ in range(3):
        tasks.sync_cluster(cluster.pk)
    assert alerts.scan()["sync_failing"] == 1 and len(mail.outbox) == 3


@pytest.mark.parametrize(
    ("values", "key"),
    [
        ({"idle_gpu_threshold": 150}, "idle_gpu_threshold"),
        ({"idle_gpu_threshold": "5"}, "idle_gpu_threshold"),
        ({"idle_gpu_minutes": -1}, "idle_gpu_minutes"),
        ({"idle_gpu_action": "kill"}, "idle_gpu_action"),
        ({"pending_alert_minutes": True}, "pending_alert_minutes"),
    ],
)
def test_a_clusters_alert_settings_are_checked_when_saved_with_the_key_named(fake_backend, values, key):
    cluster = fake_backend.cluster
    cluster.settings = values
    with pytest.raises(ValidationError) as error:
        cluster_save(cluster=cluster)
    assert key in " ".join(error.value.message_dict["settings"])
    cluster.refresh_from_db()
    assert cluster.settings == {}


def test_the_alerts_pass_is_the_clocks_periodic_work(settings):
    assert alert_tasks.enqueue_due in apps.get_app_config("monitoring").periodic_work
    last: dict = {}
    alert_tasks.enqueue_due(last)  # django-q2 runs it inline in tests
    assert "alerts" in last
