"""Task isolation on the local backend, tried as the attack: a member's job and a shell in it go after the portal's
secrets, other users' files, other jobs and other processes, with real processes in real sandboxes."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings

from clusters.backends.base import BackendRejected, ObservedState
from clusters.backends.contract import storage
from clusters.backends.local import LocalBackend, launch, sandbox, tools
from clusters.models import Cluster
from clusters.tests.conftest import GATED, cluster, log_of, make_job, release, running_pid, wait_for
from testing.isolation import (
    ATTACK,
    CANARY,
    SANDBOX_REFUSED,
    assert_nothing_leaked,
    attack_targets,
    needs_sandbox,
    other_users_files,
    report_of,
    with_the_toolbox,
)

PY = sys.executable

refused = SANDBOX_REFUSED


@pytest.fixture
def backends(local):
    return lambda **overrides: local(**{"cpu": 4, **overrides})


def root() -> Path:
    return Path(settings.EASYAI_STORAGE_ROOT)


# --- from inside a task ----------------------------------------------------------------------------------------------


@needs_sandbox
def test_a_task_reads_nothing_of_the_portal_nor_of_other_users_or_jobs_and_kills_nothing(backends, portal_layout):
    backend = backends()
    # A team-mate's (bob's) job runs; its folders hold its model and its log.
    victim = make_job([("main", 1, f'echo {CANARY}-victim-log; echo weights > "$model_dir/model.bin"; {GATED}')],
                      owner="bob")  # fmt: skip
    backend.submit(victim)
    victim_pid = running_pid(backend, victim.job_id)
    model = storage.output_dir(root(), victim.job_id, "model_dir") / "model.bin"
    deadline = time.monotonic() + 10
    while not model.exists():
        assert time.monotonic() < deadline
        time.sleep(0.02)
    # The victim's processes as the host sees them: its sandbox's pid 1 and its command.
    pid1 = sandbox.member(victim_pid)
    victim_inside = [pid1, *sandbox._children(pid1)]
    others = [
        *other_users_files(),
        str(model),
        str(storage.task_log_path(root(), victim.job_id, "main-0")),
        f"/proc/{victim_pid}/environ",
    ]
    write = [str(model), str(portal_layout / "secret_key"), str(storage.output_dir(root(), victim.job_id, "share_dir"))
             + "/go"]  # fmt: skip
    attacker = make_job([("main", 1, "true")], owner="alice")
    targets = attack_targets(
        portal_layout, attacker.job_id, others=others, kill=[os.getpid(), victim_pid, *victim_inside], write=write
    )
    with_the_toolbox(targets, backend, attacker.job_id, victim.job_id)
    attacker.tasks[0].command = [PY, "-c", ATTACK, json.dumps(targets)]
    backend.submit(attacker)
    obs = wait_for(backend, attacker.job_id, timeout=30)

    # The attack's last blow (kill -1) reaches what its own user runs in its sandbox: the task wrapper too, where
    # there is one, and the task ends killed; never anything outside.
    wrapped = tools.can_wrap()
    assert (obs.state, obs.tasks[0].exit_code) == (
        (ObservedState.FAILED, 137) if wrapped else (ObservedState.SUCCEEDED, 0)
    ), obs.message
    report = report_of(log_of(attacker, "main-0"))
    assert_nothing_leaked(report, targets)
    # The victim lives on, untouched, and ends as it would have.
    assert backend.observe([victim.job_id])[victim.job_id].state == ObservedState.RUNNING
    assert model.read_text() == "weights\n"
    assert (portal_layout / "secret_key").read_text() == f"{CANARY}-secret-key"
    release(victim)
    assert wait_for(backend, victim.job_id).state == ObservedState.SUCCEEDED


@needs_sandbox
def test_a_task_sees_its_own_folders_the_owners_workspaces_and_data_read_only_and_a_private_tmp(
    backends, portal_layout
):
    backend = backends()
    data = root() / "data" / "alice"
    data.mkdir(parents=True)
    (data / "train.csv").write_text("x,y\n")
    public = storage.public_workspace(root())
    public.mkdir(parents=True)
    (public / "shared.txt").write_text("for everyone\n")
    script = (
        'set -u; echo "uid $(id -u)"; cat "$data_dir/train.csv"; '
        '(echo no > "$data_dir/x") 2>/dev/null && echo "data_dir writable" || echo "data_dir read-only"; '
        'echo model > "$model_dir/m"; echo summary > "$summary_dir/s"; echo log > "$log_dir/l"; '
        'echo share > "$share_dir/s"; echo mine > "$HOME/mine.txt"; cat "$EASYAI_ROOT_PUBLIC/shared.txt"; '
        'echo tmp > /tmp/t && ls -A /tmp | tr "\\n" " "; echo; ls /proc | grep -c "^[0-9]"; pwd'
    )
    job = make_job([("main", 1, script)])
    for task in job.tasks:
        task.env["EASYAI_ROOT_PUBLIC"] = str(public)
    backend.submit(job)

    obs = wait_for(backend, job.job_id)

    assert obs.state == ObservedState.SUCCEEDED, obs.message
    lines = log_of(job, "main-0").splitlines()
    workspace = storage.personal_workspace(root(), "alice")
    assert lines[:4] == ["uid 65534", "x,y", "data_dir read-only", "for everyone"]
    # Its /tmp holds what it wrote there, and the way to what it is shown that lies under /tmp: the storage, and
    # the portal's Python (a checkout under /tmp has its virtual environment there).
    shown = [root(), *map(Path, sandbox.python_paths())]
    on_the_way = {p.parts[2] for p in shown if len(p.parts) > 2 and p.parts[1] == "tmp"}
    assert set(lines[4].split()) == {"t"} | on_the_way, lines[4]
    assert int(lines[5]) < 10  # its own few processes
    assert lines[6] == str(workspace)
    assert (storage.output_dir(root(), job.job_id, "model_dir") / "m").read_text() == "model\n"
    assert (workspace / "mine.txt").read_text() == "mine\n"
    assert not Path("/tmp/t").exists() or Path("/tmp/t").read_text() != "tmp\n"


@needs_sandbox
def test_working_dir_outside_what_the_task_sees_is_refused_naming_the_field(backends, portal_layout):
    backend = backends()
    for outside in (str(portal_layout), str(Path(settings.BASE_DIR)), "/etc/cron.d",
                    str(storage.personal_workspace(root(), "alice")) + "/../bob"):  # fmt: skip
        job = make_job([("main", 1, "true")])
        job.tasks[0].working_dir = outside
        problems = backend.check(job)
        assert any(p.startswith("working_dir: ") and "outside what a task may see" in p for p in problems), problems
        with pytest.raises(BackendRejected, match="working_dir"):
            backend.submit(job)
        assert not Path(outside, "should-not-exist").exists()
    inside = make_job([("main", 1, "pwd")])
    inside.tasks[0].working_dir = str(storage.personal_workspace(root(), "alice") / "project" / "run 1")
    assert backend.check(inside) == []
    backend.submit(inside)
    assert wait_for(backend, inside.job_id).state == ObservedState.SUCCEEDED
    assert log_of(inside, "main-0") == inside.tasks[0].working_dir + "\n"


@needs_sandbox
def test_a_symlink_in_the_workspace_leads_nowhere_outside(backends, portal_layout):
    backend = backends()
    workspace = storage.personal_workspace(root(), "alice")
    workspace.mkdir(parents=True)
    (workspace / "var").symlink_to(portal_layout)
    (workspace / "etc").symlink_to("/etc")
    job = make_job([("main", 1, "cat var/secret_key; mkdir -p etc/owned && echo made; ls var/ 2>&1 | head -1")])
    job.tasks[0].working_dir = str(workspace)
    backend.submit(job)

    obs = wait_for(backend, job.job_id)

    assert CANARY not in log_of(job, "main-0")
    assert "made" not in log_of(job, "main-0")
    assert not Path("/etc/owned").exists()
    assert obs.state in (ObservedState.SUCCEEDED, ObservedState.FAILED)


# --- from a web shell ----------------------------------------------------------------------------------------------------


@needs_sandbox
def test_a_shell_in_a_task_is_in_the_same_sandbox_as_the_same_user(backends, portal_layout, monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    backend = backends()
    victim = make_job([("main", 1, GATED)], owner="bob")
    backend.submit(victim)
    victim_pid = running_pid(backend, victim.job_id)
    job = make_job([("main", 1, GATED)])
    backend.submit(job)
    task_pid = running_pid(backend, job.job_id)
    targets = attack_targets(
        portal_layout,
        job.job_id,
        others=[*other_users_files(), str(storage.task_log_path(root(), victim.job_id, "main-0"))],
        kill=[os.getpid(), victim_pid, task_pid],
        write=[str(portal_layout / "admin-password.txt")],
    )
    with_the_toolbox(targets, backend, job.job_id, victim.job_id)

    shell = backend.open_shell(job.job_id, "main-0", [PY, "-c", ATTACK, json.dumps(targets)])
    output = b""
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:  # until the command, and with it the shell, has ended
            chunk = shell.read(0.1)
            if chunk is None:
                break
            output += chunk
    finally:
        shell.close()

    report = report_of(output.decode("latin-1").replace("\r", ""))
    assert_nothing_leaked(report, targets)
    # The shell sees its task's processes (the same PID namespace), and nothing else.
    assert 1 in report["pids"] and 2 in report["pids"]
    assert backend.observe([victim.job_id])[victim.job_id].state == ObservedState.RUNNING
    # kill -1 from the shell ends what the task's user runs in that sandbox (the shell's own task), never more.
    release(victim)
    assert wait_for(backend, victim.job_id).state == ObservedState.SUCCEEDED


@needs_sandbox
def test_an_interactive_shell_runs_as_the_sandbox_user_in_the_working_dir(backends, portal_layout):
    backend = backends()
    job = make_job([("main", 1, GATED)])
    backend.submit(job)
    wait_for(backend, job.job_id, states=(ObservedState.RUNNING,))

    shell = backend.open_shell(job.job_id, "main-0")
    output = b""
    try:
        shell.write(b"echo who=$(id -u) procs=$(ls /proc | grep -c '^[0-9]'); cat " + str(portal_layout).encode()
                    + b"/secret_key; pwd\n")  # fmt: skip
        deadline = time.monotonic() + 15
        workspace = str(storage.personal_workspace(root(), "alice")).encode()
        while time.monotonic() < deadline and workspace + b"\r\n" not in output:
            output += shell.read(0.1) or b""
    finally:
        shell.close()
    assert b"who=65534 procs=" in output, output
    assert CANARY.encode() not in output
    assert workspace + b"\r\n" in output
    release(job)
    assert wait_for(backend, job.job_id).state == ObservedState.SUCCEEDED


@needs_sandbox
def test_a_task_cannot_make_namespaces_of_its_own_and_a_shell_joins_the_sandbox_it_was_given(backends, portal_layout):
    backend = backends()
    # A user namespace would let the task mount what it likes in a mount namespace of its own; an orphan left
    # there (adopted by the sandbox's pid 1) is where a careless shell could be led, to run the task's programs.
    job = make_job([("main", 1, "(unshare -Urm sh -c 'mount -t tmpfs none /tmp; touch /tmp/HIJACKED; sleep 1000' "
                                "&) ; sleep 0.3; unshare -Ur true && echo userns-made || echo userns-refused; "
                                + GATED)])  # fmt: skip
    backend.submit(job)
    running_pid(backend, job.job_id)
    deadline = time.monotonic() + 10
    while "userns-" not in log_of(job, "main-0"):
        assert time.monotonic() < deadline
        time.sleep(0.05)

    shell = backend.open_shell(job.job_id, "main-0", ["/bin/sh", "-c", "echo uid=$(id -u); ls -A /tmp; echo end"])
    output = b""
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and b"end" not in output:
            output += shell.read(0.1) or b""
    finally:
        shell.close()

    assert "userns-refused" in log_of(job, "main-0")
    assert b"uid=65534" in output and b"HIJACKED" not in output, output
    release(job)
    assert wait_for(backend, job.job_id).state == ObservedState.SUCCEEDED


# --- GPUs, shared memory, the gang -----------------------------------------------------------------------------------


@needs_sandbox
def test_the_tasks_of_a_job_share_loopback_and_shm_but_not_with_other_jobs(backends, portal_layout):
    backend = backends()
    server = (
        "import os, socket; s = socket.socket(); s.bind(('127.0.0.1', int(os.environ['MASTER_PORT']))); s.listen();"
        "open('/dev/shm/from-master', 'w').write('hi'); c, _ = s.accept(); c.sendall(b'hello over loopback'); c.close()"
    )
    client = (
        "import os, socket, time\n"
        "for _ in range(200):\n"
        "    try:\n"
        "        c = socket.create_connection(('127.0.0.1', int(os.environ['MASTER_PORT']))); break\n"
        "    except OSError: time.sleep(0.05)\n"
        "print(c.recv(100).decode()); time.sleep(0.2); print(open('/dev/shm/from-master').read())"
    )
    job = make_job([("master", 1, [PY, "-c", server]), ("worker", 1, [PY, "-c", client])], framework="pytorch")
    backend.submit(job)
    assert wait_for(backend, job.job_id, timeout=30).state == ObservedState.SUCCEEDED
    assert log_of(job, "worker-0") == "hello over loopback\nhi\n"

    other = make_job([("main", 1, "ls /dev/shm | wc -l")])
    backend.submit(other)
    assert wait_for(backend, other.job_id).state == ObservedState.SUCCEEDED
    assert log_of(other, "main-0") == "0\n"


@needs_sandbox
def test_nvidia_devices_pass_into_the_sandbox_when_the_host_has_them(backends, portal_layout):
    devices = sorted(str(p) for p in Path("/dev").glob("nvidia*"))
    if not devices:
        pytest.skip("no /dev/nvidia* on this host")
    backend = backends()
    job = make_job([("main", 1, "ls -d /dev/nvidia* ; echo CUDA_VISIBLE_DEVICES=$CUDA_VISIBLE_DEVICES")])
    backend.submit(job)
    assert wait_for(backend, job.job_id).state == ObservedState.SUCCEEDED
    seen = log_of(job, "main-0").splitlines()
    # ls sorts by the task's locale, which may not be sorted()'s order: the same devices, in any order.
    assert sorted(seen[:-1]) == devices and seen[-1] == "CUDA_VISIBLE_DEVICES="


@needs_sandbox
def test_stop_gives_a_sandboxed_task_its_grace_period(backends, portal_layout):
    backend = backends(stop_grace=5)
    job = make_job([("main", 1, 'trap \'echo got TERM; sleep 0.3; echo "clean exit"; exit 0\' TERM; '
                               'while :; do sleep 0.05; done')])  # fmt: skip
    backend.submit(job)
    running_pid(backend, job.job_id)
    time.sleep(0.3)
    backend.stop(job.job_id)
    assert wait_for(backend, job.job_id).state == ObservedState.STOPPED
    # (the shell may also say that its sleep was "Terminated", as it does outside a sandbox)
    assert log_of(job, "main-0").splitlines()[-2:] == ["got TERM", "clean exit"]


# --- a host that cannot sandbox --------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_without_bwrap_the_cluster_says_so_and_takes_jobs_from_platform_admins_only(
    owner, staff, team, tmp_path, client
):
    from django.core.exceptions import ValidationError

    from jobs import services
    from teams.models import Membership

    staff.is_superuser = True
    staff.save()
    Membership.objects.create(team=team, user=staff, role=Membership.Role.ADMIN)
    local = Cluster.objects.create(
        name="nobwrap", kind="local", is_default=True,
        settings={"cpu": 2, "memory": "4Gi", "bwrap": str(tmp_path / "no" / "bwrap"), "allow_unisolated": False},
    )  # fmt: skip
    assert "bubblewrap is not installed" in local.isolation_problem
    spec = {
        "name": "probe",
        "team": team.slug,
        "framework": "batch",
        "command": "true",
        "roles": {"main": {"cpu": "100m", "memory": "64Mi"}},
    }

    with pytest.raises(ValidationError) as refusal:
        services.job_submit(user=owner, data=spec)
    message = " ".join(refusal.value.message_dict["cluster"])
    assert "cannot isolate its tasks" in message and "only platform admins" in message
    from jobs.models import Job

    assert not Job.objects.exists()

    # The submit page says so to the member; the admin page says so to the operator.
    client.force_login(owner)
    page = client.get("/jobs/new/").content.decode()
    assert 'id="cluster-isolation"' in page and "nobwrap" in page and "bubblewrap is not installed" in page
    assert "only platform admins may submit jobs there" in page
    client.force_login(staff)
    admin_page = client.get(f"/admin/clusters/cluster/{local.pk}/change/").content.decode()
    assert "NOT isolated" in admin_page and "bubblewrap is not installed" in admin_page

    # A platform admin may still run jobs there; everyone may once an operator allows it.
    services.job_dry_run(user=staff, data=spec)
    local.settings = {**local.settings, "allow_unisolated": True}
    local.save()
    services.job_dry_run(user=owner, data=spec)
    client.force_login(owner)
    page = client.get("/jobs/new/").content.decode()
    assert 'id="cluster-isolation"' in page and "only platform admins may submit jobs there" not in page


@pytest.mark.django_db
def test_a_cluster_that_isolates_shows_no_warning(owner, client, settings):
    if refused:
        pytest.skip(f"this host cannot sandbox tasks: {refused}")
    Cluster.objects.create(name="boxed", kind="local", is_default=True, settings={"cpu": 2, "memory": "4Gi"})
    client.force_login(owner)
    page = client.get("/jobs/new/").content.decode()
    assert page and 'id="cluster-isolation"' not in page


def test_isolation_settings_are_checked_naming_the_key():
    from clusters.backends.base import BackendUnavailable

    for key, value, problem in [
        ("isolation", "yes", "true or false"),
        ("allow_unisolated", 1, "true or false"),
        ("sandbox_user", 0, "other than 0"),
        ("sandbox_group", "nogroup", "numeric group id"),
        ("bwrap", "", "bubblewrap program"),
        ("sandbox_read_only", "/srv", "list of absolute paths"),
    ]:
        with pytest.raises(BackendUnavailable, match=f"settings.{key}: .*{problem}"):
            LocalBackend(cluster(**{key: value})).config()


def test_the_sandbox_probe_explains_a_missing_bwrap(tmp_path):
    assert "bubblewrap is not installed" in sandbox.refused(str(tmp_path / "bwrap"), 65534, 65534)


@pytest.mark.django_db
def test_a_working_dir_outside_is_refused_by_the_api_naming_the_field_and_records_nothing(owner, team, api):
    from jobs.models import Job

    Cluster.objects.create(name="local", kind="local", is_default=True, settings={"cpu": 2, "memory": "4Gi"})
    var = Path(settings.VAR_DIR)
    spec = {
        "name": "escape",
        "team": team.slug,
        "framework": "batch",
        "command": "cat secret_key",
        "working_dir": str(var),
        "roles": {"main": {"cpu": "100m", "memory": "64Mi"}},
    }

    response = api(owner).post("/api/v1/jobs/", spec, format="json")

    assert response.status_code == 400, response.content
    assert f"working_dir: {var} is outside what a task may see" in response.content.decode()
    assert not Job.objects.exists()


@needs_sandbox
def test_the_portals_secret_files_are_empty_in_folders_a_task_sees(backends, portal_layout, tmp_path, monkeypatch):
    # An operator's folder that every task sees read-only (as /etc is), holding the portal's secrets too.
    shared = tmp_path / "etc-like"
    shared.mkdir()
    (shared / "ldap.py").write_text(f"AUTH_LDAP_BIND_PASSWORD = '{CANARY}'\n")
    (shared / "db-url").write_text(f"mysql://easyai:{CANARY}@db/easyai\n")
    (shared / "hosts").write_text("a file tasks may read\n")
    for path in shared.iterdir():
        path.chmod(0o644)
    monkeypatch.setenv("EASYAI_SETTINGS_FILE", str(shared / "ldap.py"))
    monkeypatch.setenv("DATABASE_URL_FILE", str(shared / "db-url"))
    backend = backends(sandbox_read_only=[str(shared)])
    job = make_job([("main", 1, f"cat {shared}/ldap.py; cat {shared}/db-url; cat {shared}/hosts")])
    backend.submit(job)

    obs = wait_for(backend, job.job_id)
    assert obs.state == ObservedState.SUCCEEDED, obs.message
    log = log_of(job, "main-0")
    assert CANARY not in log and log.endswith("a file tasks may read\n"), log


@needs_sandbox
def test_a_link_planted_where_a_jobs_shm_goes_is_not_followed(backends, portal_layout, tmp_path):
    backend = backends()
    job = make_job([("main", 1, "ls -A /dev/shm")])
    planted = launch.shm_dir(
        backend.state_dir, backend.name, job.job_id
    )  # /dev/shm is everyone's: another user of the host may plant a link
    target = tmp_path / "elsewhere"
    target.mkdir()
    planted.symlink_to(target)
    try:
        backend.submit(job)
        obs = backend.observe([job.job_id])[job.job_id]
        assert (obs.state, obs.reason) == (ObservedState.FAILED, "start_failed")
        assert "is not a folder of the portal's" in obs.message
        assert os.stat(target).st_uid == 0
    finally:
        planted.unlink()
