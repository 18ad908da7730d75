"""Killing the portal's worker and scheduler in the middle of a running job loses nothing.

The real django-q2 worker (``manage.py qcluster``) and scheduler (``manage.py scheduler``) run as
subprocesses against this test's database, as ``manage.py serve`` runs them. The job's tasks run on the
local backend, detached from them; after a SIGKILL of both and a restart, the job is still running, and
then succeeds with its log whole.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone
from django_q.conf import Conf

from clusters.backends.contract import storage
from clusters.backends.local.resources import ISOLATION_DEFAULTS
from clusters.models import Cluster
from jobs import services
from jobs.models import Job
from jobs.state import JobState
from testing.wait import stays, wait_until

pytestmark = pytest.mark.slow

REPO = Path(settings.BASE_DIR)
# Each task says it started, waits for the test's gate file (in the job's share_dir), then says it is done.
GATED = 'echo "$EASYAI_TASK_NAME started"; while [ ! -e "$share_dir/go" ]; do sleep 0.05; done; echo "$EASYAI_TASK_NAME done"'


def database_url() -> str:
    """This test's database (the test database, not the configured one), as DATABASE_URL says it."""
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    if connection.vendor == "mysql":
        user = quote(db["USER"] or "", safe="")
        password = quote(db["PASSWORD"] or "", safe="")
        return f"mysql://{user}:{password}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 3306}/{db['NAME']}"
    pytest.fail(f"no DATABASE_URL for a {connection.vendor} test database")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


class Background:
    """The worker and the scheduler, each in a process group of its own, as the portal runs them."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env = env
        self.logs = logs
        self.processes: list[subprocess.Popen] = []

    def start(self) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        for name in ("qcluster", "scheduler"):
            with open(self.logs / f"{name}.log", "ab") as log:
                self.processes.append(
                    subprocess.Popen(
                        [sys.executable, str(REPO / "manage.py"), name],
                        cwd=REPO,
                        env=self.env,
                        stdin=subprocess.DEVNULL,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                )

    def kill(self) -> None:
        """SIGKILL every process of the worker and the scheduler at once: no clean shutdown of anything."""
        for process in self.processes:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for process in self.processes:
            process.wait(timeout=30)
        self.processes = []

    def output(self) -> str:
        return "\n".join(
            f"--- {path.name}\n{path.read_text(errors='replace')[-3000:]}" for path in sorted(self.logs.glob("*.log"))
        )


@pytest.fixture
def background(transactional_db, tmp_path, monkeypatch) -> Iterator[Background]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EASYAI_", "DATABASE_URL", "REDIS_URL"))}
    env.update(
        DJANGO_SETTINGS_MODULE="easyai_site.settings",
        DATABASE_URL=database_url(),
        SECRET_KEY=settings.SECRET_KEY,
        # Their own var dir: the worker and the scheduler share a file cache there, apart from any other portal.
        EASYAI_VAR_DIR=str(tmp_path / "var"),
        EASYAI_STORAGE_ROOT=str(settings.EASYAI_STORAGE_ROOT),
        EASYAI_LOCAL_STATE_DIR=str(settings.EASYAI_LOCAL_STATE_DIR),
        EASYAI_WORKERS="1",
        PYTHONUNBUFFERED="1",
    )
    # This process enqueues through the same ORM broker the worker reads, instead of running tasks inline.
    monkeypatch.setattr(Conf, "SYNC", False)
    processes = Background(env, tmp_path / "background-logs")
    try:
        yield processes
    finally:
        processes.kill()


def test_killing_the_worker_mid_job_loses_nothing_and_the_job_then_succeeds(background, owner):
    # The worker runs in processes of its own: what the tests' clusters allow on a host without a sandbox is
    # written out for them (see testing/plugin.py).
    allow = ISOLATION_DEFAULTS["allow_unisolated"]
    cluster = Cluster.objects.create(
        name="local", kind="local", is_default=True,
        settings={"cpu": 2, "memory": "4Gi", "stop_grace": 1, "allow_unisolated": allow},
    )  # fmt: skip
    root = Path(settings.EASYAI_STORAGE_ROOT)
    background.start()
    job = services.job_submit(
        user=owner,
        data={
            "name": "survivor",
            "framework": "batch",
            "command": ["/bin/sh", "-c", GATED],
            "roles": {"train": {"replicas": 2, "cpu": "500m", "memory": "256Mi"}},
        },
    )
    logs = {name: storage.task_log_path(root, job.public_id, name) for name in ("train-0", "train-1")}
    try:

        def running() -> Job | None:
            fresh = Job.objects.get(pk=job.pk)
            assert not fresh.is_final, (fresh.state, fresh.message, background.output())
            started = all(p.exists() and "started" in p.read_text() for p in logs.values())
            pids = [t.pod_name for t in fresh.tasks.all()]
            return fresh if fresh.state == JobState.RUNNING and started and all(pids) else None

        wait_until(running, 60, "the job to run", every=0.1)
        pids = {t.role + f"-{t.index}": int(t.pod_name.split()[1]) for t in Job.objects.get(pk=job.pk).tasks.all()}
        assert all(alive(pid) for pid in pids.values()), pids

        background.kill()  # returns once every process of the worker and the scheduler is reaped

        job.refresh_from_db()
        assert job.state == JobState.RUNNING
        # A task tied to the worker (its process group, a parent-death signal) is killed as the worker dies:
        # the tasks must stay up for a while after it, not merely at the instant the worker is gone.
        stays(lambda: all(alive(pid) for pid in pids.values()), 1.0, "every task running without the worker")

        restarted_at = timezone.now()
        background.start()

        def synced_again() -> Job | None:
            return Job.objects.filter(pk=job.pk, last_synced_at__gt=restarted_at).first()

        # The restarted worker's first pass sees the tasks that ran on without it: the job is still running.
        resynced = wait_until(synced_again, 60, "a sync pass of the restarted worker", explain=background.output)
        assert resynced.state == JobState.RUNNING, (resynced.state, resynced.message)
        share = storage.output_dir(root, job.public_id, "share_dir")
        (share / "go").touch()

        def ended() -> Job | None:
            fresh = Job.objects.get(pk=job.pk)
            return fresh if fresh.is_final else None

        # A sync pass the dead worker had taken keeps the scheduler's per-cluster "queued" mark until it
        # expires (20 sync intervals, at least 10 s): the first pass after the restart may wait that long.
        finished = wait_until(ended, 60, "the job to end after the restart", explain=background.output)
        assert finished.state == JobState.SUCCESS, (finished.state, finished.message, background.output())
        # The pass that ends a job writes its tasks before the job: they are recorded already.
        assert set(finished.tasks.values_list("state", flat=True)) == {"succeeded"}
    finally:
        background.kill()
        cluster.backend().delete(job.public_id)

    for name, path in logs.items():
        assert path.read_text() == f"{name} started\n{name} done\n"
    assert sorted((t.role, t.index, t.state, t.exit_code) for t in finished.tasks.all()) == [
        ("train", 0, "succeeded", 0),
        ("train", 1, "succeeded", 0),
    ]
    assert not any(alive(pid) for pid in pids.values())
    # Every transition once: the restart neither lost one nor made one twice.
    assert list(finished.events.order_by("pk").values_list("from_state", "to_state")) == [
        (JobState.QUEUED, JobState.PENDING),
        (JobState.PENDING, JobState.RUNNING),
        (JobState.RUNNING, JobState.SUCCESS),
    ]
