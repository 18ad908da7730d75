"""The faces of SSH into a task besides the socket: ssh_info and the job page's partial (who sees which tasks'
connect lines), and SSH sessions among the shell sessions in the admin."""

from __future__ import annotations

import subprocess
from datetime import timedelta

import pytest
from django.template.loader import render_to_string
from django.test import Client, RequestFactory
from django.utils import timezone

from accounts import services as account_services
from jobs.debug_views import ssh_connect_context, ssh_info
from jobs.models import Job, ShellSession, Task


@pytest.fixture
def public_key(tmp_path) -> str:
    path = tmp_path / "key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return path.with_suffix(".pub").read_text()


@pytest.fixture
def job(fake_backend, submit, owner) -> Job:
    """A PyTorch job with a running master and a pending worker."""
    job = submit(
        owner,
        roles={
            "master": {"replicas": 1, "cpu": "1", "memory": "1Gi"},
            "worker": {"replicas": 1, "cpu": "1", "memory": "1Gi"},
        },
    )
    Job.objects.filter(pk=job.pk).update(state="running")
    Task.objects.filter(job=job, role="master").update(state=Task.State.RUNNING)
    Task.objects.filter(job=job, role="worker").update(state=Task.State.PENDING)
    return Job.objects.get(pk=job.pk)


def test_ssh_info_lists_running_tasks_to_the_owner_and_team_admins_only(job, people, public_key):
    expected = [
        {
            "task": "master-0",
            "host": f"{job.public_id}.master-0",
            "command": f"easyai ssh {job.public_id}/master-0",
            "ssh_command": f"ssh {job.public_id}.master-0",
            "socket": f"/ws/jobs/{job.public_id}/tasks/master-0/ssh/",
        }
    ]
    for who in ("owner", "team_admin", "staff"):
        info = ssh_info(job, people[who])
        assert (info["allowed"], info["tasks"], info["has_keys"]) == (True, expected, False), who
        assert (
            info["keys_url"] == "/accounts/profile/ssh-keys/" and info["config_command"] == "easyai ssh-config --write"
        )
    for who in ("mate", "outsider"):
        assert (ssh_info(job, people[who])["allowed"], ssh_info(job, people[who])["tasks"]) == (False, []), who

    account_services.ssh_key_add(user=people["owner"], public_key=public_key)
    assert ssh_info(job, people["owner"])["has_keys"] is True
    assert ssh_info(job, people["team_admin"])["has_keys"] is False  # only one's own keys count


def test_a_held_jobs_failed_tasks_are_listed_until_the_hold_runs_out(job, owner):
    Job.objects.filter(pk=job.pk).update(state="failed", held_until=timezone.now() + timedelta(minutes=5))
    Task.objects.filter(job=job).update(state=Task.State.FAILED)
    job.refresh_from_db()
    info = ssh_info(job, owner)
    assert info["held"] is True and [t["task"] for t in info["tasks"]] == ["master-0", "worker-0"]

    Job.objects.filter(pk=job.pk).update(held_until=timezone.now() - timedelta(seconds=1))
    job.refresh_from_db()
    assert ssh_info(job, owner)["tasks"] == [] and ssh_info(job, owner)["held"] is False


def test_the_partial_shows_the_connect_lines_to_whom_may_connect_and_nothing_to_others(job, people, public_key):
    request = RequestFactory().get("/")
    request.user = people["owner"]
    context = ssh_connect_context(request, job)
    html = render_to_string("jobs/_ssh_connect.html", context)
    assert f"easyai ssh {job.public_id}/master-0" in html and f"{job.public_id}.master-0" in html
    assert "worker-0" not in html  # not running yet
    assert "easyai ssh-config --write" in html and 'href="/accounts/profile/ssh-keys/"' in html
    assert "Add your SSH public key first" in html

    account_services.ssh_key_add(user=people["owner"], public_key=public_key)
    assert "Add your SSH public key first" not in render_to_string(
        "jobs/_ssh_connect.html", ssh_connect_context(request, job)
    )

    request.user = people["mate"]
    assert ssh_connect_context(request, job) is None
    assert "easyai ssh" not in render_to_string("jobs/_ssh_connect.html", {"ssh": None})


def test_the_admin_lists_ssh_sessions_with_shell_sessions_and_filters_by_kind(job, owner, make_user):
    ShellSession.objects.create(user=owner, username="owner", job=job, task="master-0", kind="shell", client="10.0.0.1")
    ShellSession.objects.create(user=owner, username="owner", job=job, task="master-0", kind="ssh", client="10.0.0.2")
    browser = Client()
    browser.force_login(make_user("root", is_staff=True, is_superuser=True))

    everything = browser.get("/admin/jobs/shellsession/").content.decode()
    assert "10.0.0.1" in everything and "10.0.0.2" in everything and "web shell" in everything and "SSH" in everything
    only_ssh = browser.get("/admin/jobs/shellsession/?kind__exact=ssh")
    assert only_ssh.status_code == 200
    assert "10.0.0.2" in only_ssh.content.decode() and "10.0.0.1" not in only_ssh.content.decode()
