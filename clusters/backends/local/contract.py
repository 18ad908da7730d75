"""The environment contract: what each task of a framework finds in its environment, as the operators give it.

Every task runs on 127.0.0.1, so where an operator names a pod's service we
give 127.0.0.1 and a free port of this host, chosen when the job is placed.
"""

from __future__ import annotations

import json
import os
import socket
import sys

from clusters.backends.base import JobDescription, TaskDescription

LOCALHOST = "127.0.0.1"

# Inherited from the worker's environment; nothing else is (no PYTHONPATH, no credentials).
SAFE_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "USER", "LOGNAME", "TZ")

# Frameworks whose tasks talk to each other over ports we must choose.
NETWORKED = frozenset({"pytorch", "tensorflow", "xgboost", "paddle"})

MPI_LAUNCHERS = ("mpirun", "mpiexec")


def runs_as_process(job: JobDescription, task: TaskDescription) -> bool:
    """MPI workers are ranks that the launcher's mpirun starts: no process of their own, only their resources."""
    return not (job.framework == "mpi" and task.role == "worker")


def free_ports(count: int, taken: set[int]) -> list[int]:
    """Ports the kernel calls free now. Another program may still take one before the task binds it: a
    window every launcher that hands out ports has; the sockets stay open until all are picked so that
    one job never gets the same port twice."""
    sockets: list[socket.socket] = []
    ports: list[int] = []
    try:
        while len(ports) < count:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((LOCALHOST, 0))
            sockets.append(sock)
            port = sock.getsockname()[1]
            if port not in taken:
                ports.append(port)
    finally:
        for sock in sockets:
            sock.close()
    return ports


def rank_order(job: JobDescription) -> list[TaskDescription]:
    """Master (or chief) first, then every other task in the job's order: the ranks of PyTorch and XGBoost."""
    firsts = [t for t in job.tasks if t.role in ("master", "chief")]
    return firsts + [t for t in job.tasks if t not in firsts]


def _endpoint(ports: dict[str, int], task: TaskDescription) -> str:
    return f"{LOCALHOST}:{ports.get(task.name, 0)}"


def framework_env(job: JobDescription, task: TaskDescription, ports: dict[str, int]) -> dict[str, str]:
    env: dict[str, str] = {}
    framework = job.framework
    if framework == "pytorch":
        order = rank_order(job)
        rank = order.index(task)
        env.update(
            MASTER_ADDR=LOCALHOST,
            MASTER_PORT=str(ports.get(order[0].name, 0)),
            WORLD_SIZE=str(len(order)),
            RANK=str(rank),
            # Each task is its own "node" with its own GPUs (CUDA_VISIBLE_DEVICES starts at cuda:0 in every
            # task), as one pod per node is on Kubernetes; so the local rank is 0, not the global rank.
            LOCAL_RANK="0",
            LOCAL_WORLD_SIZE="1",
        )
    elif framework == "tensorflow":
        cluster: dict[str, list[str]] = {}
        for other in job.tasks:
            if other.role == "evaluator":
                continue  # the evaluator is not part of the training cluster (as the TFJob operator does)
            cluster.setdefault(other.role, []).append(_endpoint(ports, other))
        tf_config = {"cluster": cluster, "task": {"type": task.role, "index": task.index}, "environment": "cloud"}
        env["TF_CONFIG"] = json.dumps(tf_config, separators=(",", ":"))
    elif framework == "xgboost":
        masters = [t for t in job.tasks if t.role == "master"]
        workers = [t for t in job.tasks if t.role == "worker"]
        rank = task.index + (len(masters) if task.role == "worker" else 0)
        env.update(
            MASTER_ADDR=LOCALHOST,
            MASTER_PORT=str(ports.get(masters[0].name if masters else job.tasks[0].name, 0)),
            WORLD_SIZE=str(len(job.tasks)),
            RANK=str(rank),
        )
        if len(job.tasks) > 1 and workers:
            # The operator gives one port for all workers, each on its own pod; here they share a host,
            # so LightGBM-style workers that each bind WORKER_PORT cannot run more than one per host.
            env["WORKER_PORT"] = str(ports.get(workers[0].name, 0))
            env["WORKER_ADDRS"] = ",".join(LOCALHOST for _ in workers)
    elif framework == "paddle":
        masters = [t for t in job.tasks if t.role == "master"]
        workers = [t for t in job.tasks if t.role == "worker"]
        rendezvous = masters[0] if masters else (workers[0] if workers else job.tasks[0])
        env.update(
            PADDLE_MASTER=_endpoint(ports, rendezvous),
            PADDLE_NNODES=str(len(job.tasks)),
            PADDLE_JOB_ID=job.job_id,
            PADDLE_TRAINERS_NUM=str(len(workers)),
            PADDLE_TRAINER_ENDPOINTS=",".join(_endpoint(ports, w) for w in workers),
            PADDLE_CURRENT_ENDPOINT=_endpoint(ports, task),
        )
        if task.role == "worker":
            env["PADDLE_TRAINER_ID"] = str(task.index)
        if masters:  # parameter-server mode: one server or one trainer per task, as the operator sets
            env["PADDLE_SERVER_NUM" if task.role == "master" else "PADDLE_TRAINER_NUM"] = "1"
    elif framework == "mpi":
        workers = [t for t in job.tasks if t.role == "worker"]
        env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", EASYAI_MPI_WORKERS=str(len(workers)))
    return env


def task_env(
    job: JobDescription,
    task: TaskDescription,
    ports: dict[str, int],
    gpu_ids: list[str],
    *,
    inherited: dict[str, str] | None = None,
    endpoints: dict[str, int] | None = None,
) -> dict[str, str]:
    """The whole environment of a task: a safe part of ours, defaults, the task's own env, then the contract."""
    source = os.environ if inherited is None else inherited
    env = {key: source[key] for key in SAFE_ENV if key in source}
    # No images here: "python" in a task is the portal's Python (and its packages) unless the task says otherwise.
    python_bin = os.path.dirname(sys.executable)
    path = env.get("PATH", "/usr/local/bin:/usr/bin:/bin")
    if python_bin not in path.split(os.pathsep):
        env["PATH"] = os.pathsep.join([python_bin, path])
    env["PYTHONUNBUFFERED"] = "1"  # logs appear as they are written, not when a buffer fills
    env["OMP_NUM_THREADS"] = str(max(1, task.cpu_milli // 1000))  # tasks share the host: no thread storm
    env.update(task.env)
    env.update(framework_env(job, task, ports))
    env.update(
        EASYAI_JOB_ID=job.job_id,
        EASYAI_TASK_NAME=task.name,
        EASYAI_ROLE=task.role,
        EASYAI_ROLE_INDEX=str(task.index),
        EASYAI_ROLE_REPLICAS=str(task.replicas),
        # Exclusive GPUs: "" hides every GPU from a task that asked for none.
        CUDA_VISIBLE_DEVICES=",".join(gpu_ids),
        NVIDIA_VISIBLE_DEVICES=",".join(gpu_ids) if gpu_ids else "void",
    )
    # Where each named web endpoint must listen: the host port chosen at placement (the spec's port when
    # none was chosen yet, as in a dry run's plan).
    for name, port in task.ports.items():
        env[port_variable(name)] = str((endpoints or {}).get(name, port))
    return env


def port_variable(name: str) -> str:
    """``EASYAI_PORT_<NAME>``: the variable holding the port a named endpoint listens on."""
    return "EASYAI_PORT_" + name.upper().replace("-", "_")


def mpirun_argv(command: list[str], workers: int, mpirun: str) -> list[str]:
    """The launcher's command under mpirun over the workers, unless it calls mpirun itself."""
    first = os.path.basename(command[0]) if command else ""
    if first in MPI_LAUNCHERS:
        return list(command)
    if len(command) >= 3 and command[1] == "-c" and os.path.basename(command[0]) in ("sh", "bash"):
        words = command[2].split()
        if words and os.path.basename(words[0]) in MPI_LAUNCHERS:
            return list(command)
    n = str(max(1, workers))
    return [mpirun, "--allow-run-as-root", "--oversubscribe", "-np", n, "-H", f"localhost:{n}", *command]


def task_argv(job: JobDescription, task: TaskDescription, mpirun: str | None) -> list[str]:
    if job.framework == "mpi" and task.role == "launcher" and mpirun:
        workers = sum(1 for t in job.tasks if t.role == "worker")
        return mpirun_argv(task.command, workers, mpirun)
    return list(task.command)
