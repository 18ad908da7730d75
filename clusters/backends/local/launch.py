"""Starting and stopping a local job's processes: each task under a detached supervisor (supervisor.py), in its
sandbox where the cluster isolates tasks; SIGTERM to a task's process group, SIGKILL at the deadline; the
job's /dev/shm and the shells opened in it. Also what a task sees of the storage, and the plan render shows.

Where this host has busybox (tools.py), every task's command runs under the toolbox's wrapper
(clusters/backends/contract/toolbox.py): the static tools on its PATH after its own, its role's services
beside it, and the hold of a failed command the spec's ``debug`` asks for. The wrapper's files are in the
task's run folder (``{task dir}/run``, the task user's alone, shown at the same path in its sandbox); the
services' logs beside the task's log (``{task}.services/{name}.log``); the tools folder read-only."""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clusters.backends.base import JobDescription, TaskDescription
from clusters.backends.contract import storage, toolbox
from clusters.backends.local import contract, isolation, placement, sandbox, tools
from clusters.backends.local.observe import read_held, run_dir
from clusters.backends.local.proc import (
    is_alive,
    kill_group,
    kill_pid,
    kill_session,
    read_json,
    start_time,
    write_json_atomic,
)
from clusters.backends.local.records import RUNNING, RecordStore, job_from_dict
from clusters.backends.local.records import now as _now
from clusters.backends.local.resources import LocalConfig
from clusters.crypto import endpoint_password_hash, endpoint_token

if TYPE_CHECKING:
    from clusters.backends.local.backend import LocalBackend

REPO_ROOT = Path(__file__).resolve().parents[3]


def visible(storage_root: Path, job: JobDescription, task: TaskDescription) -> list[sandbox.Mount]:
    """What a task of this job sees of the storage besides the system: what a pod of it would mount."""
    mounts = [
        sandbox.Mount(str(storage_root / place.relative), not place.read_only)
        for place in task.places_seen(job)
        if not storage.is_foreign(place)
    ]
    # Other jobs' outputs (a previous job's model_dir, inputs): read, never changed from here.
    mounts += [
        sandbox.Mount(task.storage[place.variable], False)
        for place in task.places_seen(job)
        if storage.is_foreign(place) and task.storage.get(place.variable)
    ]
    if job.framework == "tensorboard":
        # The summary_dirs it shows, read-only, as a TensorBoard pod mounts them (only the notebooks app
        # starts these jobs, over jobs their user may see).
        for item in filter(None, (p.strip() for p in task.env.get(storage.TENSORBOARD_SOURCES, "").split(","))):
            match = storage.TENSORBOARD_SOURCE.match(item)
            if match:
                summary = storage.output_dir(storage_root, match.group(1), "summary_dir", match.group(2))
                mounts.append(sandbox.Mount(str(summary), False))
    for volume in job.volumes:
        host_path = (volume.get("hostPath") or {}).get("path")
        if host_path:
            mounts.append(sandbox.Mount(os.path.normpath(host_path), not volume.get("read_only", True)))
    return mounts


def toolbox_problems(job: JobDescription) -> list[str]:
    """Why this host cannot give the job's tasks what their spec asks of the toolbox (services, a hold)."""
    asking = [t for t in job.tasks if contract.runs_as_process(job, t) and (t.services or t.hold_mode)]
    if not asking or tools.can_wrap():
        return []
    wants = []
    if any(t.services for t in asking):
        wants.append("services")
    if any(t.hold_mode for t in asking):
        wants.append(f"debug.{next(t.hold_mode for t in asking if t.hold_mode)}")
    return [
        f"{' and '.join(wants)} need busybox on this host, which runs the task wrapper; "
        "an operator installs it with apt-get install busybox-static"
    ]


def plan(backend: LocalBackend, job: JobDescription) -> list[dict[str, Any]]:
    """The processes start() would start for this job; ports and GPU ids are chosen only at placement."""
    mpirun = shutil.which("mpirun")
    config = backend.config()
    box = backend.sandbox(config)
    readonly = config.readonly_data_dir and box is None
    plans = []
    for task in job.tasks:
        demand = placement.accounted(task.cpu_milli, task.memory_bytes, task.gpu, job.oversell)
        entry: dict[str, Any] = {
            "kind": "LocalProcess",
            "task": task.name,
            "role": task.role,
            "index": task.index,
            "resources": {"cpu_milli": task.cpu_milli, "memory_bytes": task.memory_bytes, "gpu": task.gpu},
            "accounted": {"cpu_milli": demand.cpu_milli, "memory_bytes": demand.memory_bytes, "gpu": demand.gpu},
        }
        if contract.runs_as_process(job, task):
            env = contract.task_env(job, task, {}, ["?"] * task.gpu)
            if task.ports:
                # The spec's ports; each gets a free host port at placement, given as EASYAI_PORT_<NAME>.
                entry["ports"] = dict(task.ports)
            command = contract.task_argv(job, task, mpirun or "mpirun")
            argv = list(command)
            toolbox_mounts: list[sandbox.Mount] = []
            if tools.can_wrap():
                places = toolbox_places(backend, job, task)
                env.update(places.env)
                argv = toolbox.wrapped_argv(str(backend.tools_dir), argv)
                toolbox_mounts = places.mounts
                entry["toolbox"] = {
                    "tools": str(backend.tools_dir),
                    "run_dir": str(places.run_dir),
                    "service_logs": str(places.service_logs),
                }
            if task.services:
                entry["services"] = [
                    {key: service[key] for key in ("name", "command", "port", "health") if service.get(key)}
                    for service in task.services
                ]
            if task.hold_mode and task.hold_seconds > 0:
                entry["hold"] = {"mode": task.hold_mode, "seconds": task.hold_seconds}
            if readonly and env.get("data_dir"):
                argv = isolation.readonly_argv(argv, env["data_dir"])
            entry.update(
                argv=argv,
                command=command,
                working_dir=backend.working_dir(job, task),
                env=sorted(env),
                log=backend.task_log(job, task),
            )
            if box is not None:
                mounts = backend.visible(job, task) + toolbox_mounts
                entry["sandbox"] = {
                    "user": box.uid,
                    "group": box.gid,
                    "writable": sorted(m.path for m in mounts if m.writable),
                    "read_only": sorted(m.path for m in mounts if not m.writable),
                }
            else:
                entry["sandbox"] = None
        else:
            entry.update(argv=None, note="an MPI rank started by the launcher's mpirun, not a process of its own")
        plans.append(entry)
    return plans


@dataclass(frozen=True)
class ToolboxPlaces:
    """Where a task's wrapper finds the tools and keeps its files, the variables that say so, and the mounts
    that show them in its sandbox (the same paths as on the host)."""

    run_dir: Path
    service_logs: Path
    env: dict[str, str]
    mounts: list[sandbox.Mount]


def toolbox_places(backend: LocalBackend, job: JobDescription, task: TaskDescription) -> ToolboxPlaces:
    run = run_dir(backend.records.task_dir(job.job_id, task.name))
    log = Path(backend.task_log(job, task))
    service_logs = log.parent / f"{task.name}.services"
    env = {
        toolbox.TOOLS: str(backend.tools_dir),
        toolbox.RUN_DIR: str(run),
        toolbox.SERVICE_LOGS: str(service_logs),
        **toolbox.wrapper_env(task.services, task.hold_mode, task.hold_seconds),
    }
    mounts = [sandbox.Mount(str(backend.tools_dir), False), sandbox.Mount(str(run), True)]
    seen = [m.path for m in backend.visible(job, task) if m.writable]
    if not sandbox.inside(str(service_logs), seen):
        mounts.append(sandbox.Mount(str(service_logs), True))
    return ToolboxPlaces(run, service_logs, env, mounts)


def start(
    backend: LocalBackend,
    record: dict[str, Any],
    gpu_ids: dict[str, list[str]],
    taken_ports: set[int],
    config: LocalConfig,
) -> None:
    """Start every task of a placed job (the gang), each under a detached supervisor."""
    job = job_from_dict(record["description"])
    job_id = job.job_id
    root = backend.storage_root
    # The job's own places, never a previous job's model_dir: another job's output is not created for it.
    own = {
        root / place.relative for task in job.tasks for place in task.places_seen(job) if not storage.is_foreign(place)
    }
    for path in sorted(own):
        path.mkdir(parents=True, exist_ok=True)
    box = backend.sandbox(config)
    readonly_data_dir = config.readonly_data_dir and box is None
    shm = None
    if box is not None:
        # The sandbox's user must be able to write where the task may (the job's folders, the workspaces)
        # and read data_dir; only the job's own places, never another job's folders it may read, nor a volume.
        for path in sorted(own):
            sandbox.give(path, box.uid, box.gid)
        shm = shm_dir(backend.state_dir, backend.name, job_id, create=True, owner=(box.uid, box.gid))
    # data_dir is meant read-only. On Kubernetes the mount says so; here only a mount namespace of the task's
    # own can (readonly_data_dir, root only): changing the permissions of the owner's data is not ours to do.
    ports: dict[str, int] = {}
    if job.framework in contract.NETWORKED:
        ports = dict(zip([t.name for t in job.tasks], contract.free_ports(len(job.tasks), taken_ports), strict=True))
        taken_ports.update(ports.values())
    # Named web endpoints: the spec's port is what the task would listen on in a pod; here every task
    # shares the host, so each named port gets a free host port of its own (EASYAI_PORT_<NAME>).
    endpoints: dict[str, dict[str, int]] = {}
    for task in job.tasks:
        if task.ports:
            chosen = contract.free_ports(len(task.ports), taken_ports)
            endpoints[task.name] = dict(zip(task.ports, chosen, strict=True))
            taken_ports.update(chosen)
    mpirun = shutil.which("mpirun")
    wrap = tools.can_wrap()
    if wrap:
        tools.prepare(backend.tools_dir)
    all_gpus = [g for ids in gpu_ids.values() for g in ids]
    now = _now()
    record.update(status=RUNNING, started_at=now, message="", ports=ports)
    for task in job.tasks:
        entry = record["tasks"][task.name]
        entry["gpu_ids"] = gpu_ids.get(task.name, [])
        entry["port"] = ports.get(task.name)
        entry["endpoints"] = endpoints.get(task.name, {})
        entry["log"] = backend.task_log(job, task)
    # Recorded before any process starts: a worker that dies half-way leaves a record that says which
    # tasks were launched, and the next pass finds their supervisors through supervisor.json.
    backend.records.save(record)
    for task in job.tasks:
        entry = record["tasks"][task.name]
        if not entry["process"]:
            continue
        # An MPI launcher's ranks use the GPUs placed for the whole job.
        visible = all_gpus if job.framework == "mpi" else entry["gpu_ids"]
        env = contract.task_env(job, task, ports, visible, endpoints=entry["endpoints"])
        if job.framework == "notebook" and "jupyter" in task.ports:
            # As on a cluster: Jupyter demands a token only the portal can make, and its proxy sends it;
            # another task on this host's loopback cannot use the notebook.
            env["JUPYTER_TOKEN"] = endpoint_token(job_id)
        if job.framework == "notebook" and "vscode" in task.ports:
            env["HASHED_PASSWORD"] = endpoint_password_hash(job_id)  # code-server's, as on a cluster
        cwd = backend.working_dir(job, task)
        log = Path(entry["log"])
        log.parent.mkdir(parents=True, exist_ok=True)
        task_dir = backend.records.task_dir(job_id, task.name)
        task_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        argv = contract.task_argv(job, task, mpirun)
        extra_mounts: list[sandbox.Mount] = []
        if wrap:
            places = toolbox_places(backend, job, task)
            owner = (box.uid, box.gid) if box is not None else None
            _own_dir(places.run_dir, owner, 0o700)
            _own_dir(places.service_logs, owner, 0o755)
            env.update(places.env)
            argv = toolbox.wrapped_argv(str(backend.tools_dir), argv)
            extra_mounts = places.mounts
        spec: dict[str, Any] = {"argv": argv, "cwd": cwd, "env": env, "log": str(log)}
        if box is not None:
            # The portal's HOME and TMPDIR are not there: the owner's workspace and the task's own /tmp are.
            if "HOME" not in task.env:
                env["HOME"] = str(storage.personal_workspace(root, job.owner))
            if "TMPDIR" not in task.env:
                env["TMPDIR"] = "/tmp"
            mounts = backend.visible(job, task) + extra_mounts
            spec["argv"] = sandbox.task_argv(box, argv, cwd=cwd, mounts=mounts, shm=shm)
            spec["cwd"] = "/"  # the sandbox enters the working directory itself, as the task's user
            spec["working_dir"] = cwd
            spec["sandboxed"] = True
            entry["sandboxed"] = True  # a shell joins the task's sandbox
        else:
            Path(cwd).mkdir(parents=True, exist_ok=True)
            if readonly_data_dir and env.get("data_dir"):
                spec["argv"] = isolation.readonly_argv(argv, env["data_dir"])
                entry["own_mounts"] = True  # a shell joins the task's mount namespace
        write_json_atomic(task_dir / "spec.json", spec)
        entry["launched_at"] = _now()
        try:
            pid = launch(task_dir)
        except BaseException:
            entry.pop("launched_at", None)
            raise
        entry["supervisor_pid"] = pid
        entry["supervisor_start"] = start_time(pid)
    backend.records.save(record)


def _own_dir(path: Path, owner: tuple[int, int] | None, mode: int) -> None:
    """A folder of the task's: made, given to the sandbox's user (never through a link), with this mode."""
    path.mkdir(parents=True, exist_ok=True)
    found = os.lstat(path)
    if not stat.S_ISDIR(found.st_mode):
        raise OSError(f"{path} is not a folder: refusing to give it to the task")
    if owner and (found.st_uid, found.st_gid) != owner:
        os.chown(path, *owner, follow_symlinks=False)
    os.chmod(path, mode)


def launch(task_dir: Path) -> int:
    """Start the task's supervisor detached: a throw-away sh backgrounds it and exits, so the supervisor
    is nobody's child here (init adopts it) and outlives this worker; sh prints its pid."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(REPO_ROOT)}
    script = '"$1" -m clusters.backends.local.supervisor "$2" </dev/null >>"$2/supervisor.log" 2>&1 & echo $!'
    out = subprocess.run(
        ["/bin/sh", "-c", script, "sh", sys.executable, str(task_dir)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        env=env,
        cwd=str(task_dir),
        start_new_session=True,
        check=True,
        timeout=30,
    ).stdout
    return int(out.strip())


def begin_stop(store: RecordStore, record: dict[str, Any], grace: float, *, spare: list[str] | None = None) -> None:
    """Ask every task to stop (SIGTERM to its process group); SIGKILL follows at the deadline.

    ``spare``: held tasks (their command failed, their hold keeps them for debugging) left running, with their
    shells, when another task's failure ends the job; they end with their hold. Asked again (a stop of the job),
    the spared tasks are stopped too, at once.
    """
    now = _now()
    if record.get("stop"):
        spared = record["stop"].pop("spare", None)
        if not spared:
            return
        record["stop"]["deadline"] = now + grace
        record["stop"]["killed_at"] = None
        names = spared
        for name in names:
            release = run_dir(store.task_dir(record["job_id"], name)) / "release"
            if release.parent.is_dir():
                release.touch()
    else:
        record["stop"] = {"at": now, "deadline": now + grace, "killed_at": None}
        if spare:
            record["stop"]["spare"] = list(spare)
        names = [name for name in record["tasks"] if name not in (spare or [])]
    for name in names:
        task = record["tasks"][name]
        task_dir = store.task_dir(record["job_id"], name)
        if not task["process"] or not task_dir.is_dir():
            continue
        # "stop" first, child.json second: the supervisor does the reverse (see supervisor.py).
        (task_dir / "stop").touch()
        child = read_json(task_dir / "child.json")
        if child and not (task_dir / "exit.json").exists():
            kill_group(child["pid"], signal.SIGTERM)
    kill_shells(store, record["job_id"], record, spare=record["stop"].get("spare"))


def release_hold(backend: LocalBackend, job_id: str) -> None:
    """End the holds of the job's held tasks: each ends at once with its command's status (toolbox.py's
    ``release``). Idempotent; nothing to do for a job without holds, ended or gone."""
    record = backend.records.load(job_id)
    if record is None:
        return
    for name, task in record["tasks"].items():
        task_dir = backend.records.task_dir(job_id, name)
        if not task["process"] or (task_dir / "exit.json").exists():
            continue
        held, _since = read_held(task_dir)
        if held is not None:
            (run_dir(task_dir) / "release").touch()


def kill_tasks(
    store: RecordStore, record: dict[str, Any], *, supervisors: bool = False, spare: list[str] | None = None
) -> None:
    """SIGKILL every task process group (but the ``spare`` ones) and whatever else is left in its supervisor's
    session."""
    for name, task in record["tasks"].items():
        if name in (spare or ()):
            continue
        task_dir = store.task_dir(record["job_id"], name)
        if not task["process"] or not task_dir.is_dir() or (task_dir / "exit.json").exists():
            continue
        child = read_json(task_dir / "child.json")
        if task.get("supervisor_pid"):
            sup, sup_start = task["supervisor_pid"], task.get("supervisor_start")
        else:  # launched by a worker that died before recording the pid
            found = read_json(task_dir / "supervisor.json") or {}
            sup, sup_start = found.get("pid"), found.get("starttime")
        if child:
            kill_group(child["pid"], signal.SIGKILL)
        if sup and is_alive(sup, sup_start):
            # The supervisor stays, to reap and record the exit; unless it is stuck itself.
            kill_session(sup, signal.SIGKILL, spare=None if supervisors else sup)
            if supervisors:
                kill_pid(sup, signal.SIGKILL)


def shm_dir(
    state_dir: Path, cluster_name: str, job_id: str, *, create: bool = False, owner: tuple[int, int] | None = None
) -> Path:
    """The job's /dev/shm, shared by its tasks only (NCCL and DataLoader workers use it)."""
    host_shm = Path("/dev/shm")
    base = host_shm if host_shm.is_dir() and os.access(host_shm, os.W_OK) else state_dir / "shm"
    path = base / f"easyai-{cluster_name}-{job_id}"
    if create:
        base.mkdir(parents=True, exist_ok=True)
        path.mkdir(mode=0o700, exist_ok=True)
        # /dev/shm is everyone's: what is there must be the folder made here, not another user's or a link.
        found = os.lstat(path)
        if not stat.S_ISDIR(found.st_mode) or found.st_uid not in (0, *(owner[:1] if owner else ())):
            raise OSError(f"{path} is not a folder of the portal's: refusing to share it with the job's tasks")
        if owner:
            os.chown(path, *owner, follow_symlinks=False)
    return path


def drop_shm(state_dir: Path, cluster_name: str, job_id: str) -> None:
    shutil.rmtree(shm_dir(state_dir, cluster_name, job_id), ignore_errors=True)


def kill_shells(
    store: RecordStore, job_id: str, record: dict[str, Any] | None, *, spare: list[str] | None = None
) -> None:
    names = list(record["tasks"]) if record else []
    for name in names:
        if name in (spare or ()):
            continue
        shells = store.task_dir(job_id, name) / "shells"
        if not shells.is_dir():
            continue
        for entry in shells.iterdir():
            if entry.name.isdigit():
                kill_group(int(entry.name), signal.SIGKILL)
                entry.unlink(missing_ok=True)
