"""The pipeline engine's tick at 100 active runs of 10 steps, on the fake backend.

Prints, side by side, the queries and seconds of one engine tick when every run is at its first step and when
every run has eight steps behind it (the figure must not grow with the finished steps), for a quiet tick (no
job ended: nothing to do) and a busy one (every run's running step ended: 100 successors start). Then the delay
from a step's job ending (the sync pass that sees it commits) to its successor's job being submitted, with the
clock ticking the engine as the site's clock does (every pipelines.schedule.TICK_EVERY seconds).

    .venv/bin/python bench/pipelines.py             (SQLite)
    DATABASE_URL=mysql://root:@127.0.0.1:3306/easyai .venv/bin/python bench/pipelines.py
"""

from __future__ import annotations

import statistics
import threading
import time

from _setup import database_label, django_up

RUNS = 100
STEPS = 10


SPEC = "name: bench\nsteps:\n" + "".join(
    f"  - name: s{i}\n"
    + (f"    depends: [s{i - 1}]\n" if i else "")
    + "    outputs: {parameters: {score: model_dir/score}}\n"
    + "    job: {framework: batch, command: 'echo "
    + (f"{{{{steps.s{i - 1}.outputs.parameters.score}}}}" if i else "start")
    + "', roles: {main: {cpu: '0.1', memory: 64Mi}}}\n"
    for i in range(STEPS)
)


def main() -> None:
    teardown = django_up()
    try:
        run_bench()
    finally:
        teardown()


def run_bench() -> None:
    from pathlib import Path

    from _setup import local_team
    from django.conf import settings
    from django.core.cache import cache
    from django.db import connection

    from clusters.backends import use_backend
    from clusters.backends.fake import FakeBackend
    from jobs.models import Job
    from jobs.tasks import sync_cluster
    from jobs.workers import sync as job_sync
    from pipelines import engine, services
    from pipelines import schedule as schedules
    from pipelines.models import PipelineRun, RunStep, StepJob

    user, team, cluster = local_team()
    backend = FakeBackend()
    use_backend(cluster.name, backend)
    backend.cluster = cluster
    cache.add(schedules.ADVANCE_KEY, 1, timeout=3600)  # the set-up's submits do not tick the engine inline
    version = services.pipeline_save(user=user, data=SPEC, source=SPEC)
    for _ in range(RUNS):
        services.run_submit(user=user, pipeline=version.pipeline)
    root = Path(settings.EASYAI_STORAGE_ROOT)

    def running_jobs(runs=None) -> list[Job]:
        rows = StepJob.objects.filter(outcome="", step__state="running")
        if runs is not None:
            rows = rows.filter(step__run__in=runs)
        return list(Job.objects.filter(pk__in=rows.values("job_id"), state="running"))

    def end_all(jobs: list[Job]) -> None:
        for job in jobs:
            (root / job.public_id / "model_dir").mkdir(parents=True, exist_ok=True)
            (root / job.public_id / "model_dir" / "score").write_text("0.5")
            backend.set_state(job.public_id, "succeeded", exit_code=0)
        job_sync.cluster_sync(cluster)

    def measured_tick() -> tuple[int, float, int]:
        queries = []

        def record(execute, sql, *rest):
            queries.append(sql)
            return execute(sql, *rest)

        start = time.perf_counter()
        with connection.execute_wrapper(record):
            tick = engine.advance()
        return len(queries), time.perf_counter() - start, tick.started

    def start_submitted() -> None:
        for job in Job.objects.filter(state="queued"):
            from jobs.workers.submit import job_submit_to_backend

            job_submit_to_backend(job.pk)
        for job_id in backend.jobs:
            if job_id not in backend.states or backend.states[job_id].state == "pending":
                backend.set_state(job_id, "running")
        job_sync.cluster_sync(cluster)

    rows = []
    measured_tick()  # every run starts its first step
    start_submitted()
    for finished in range(STEPS - 1):
        quiet = measured_tick()
        end_all(running_jobs())
        busy = measured_tick()
        start_submitted()
        if finished in (0, 4, STEPS - 2):
            rows.append((finished, quiet, busy))
    print(f"pipeline engine tick, {database_label()}, {RUNS} active runs of {STEPS} steps (a chain), fake backend")
    print("| finished steps per run | quiet tick: queries | quiet tick | busy tick: queries | busy tick | started |")
    print("| --- | --- | --- | --- | --- | --- |")
    for finished, quiet, busy in rows:
        print(
            f"| {finished} | {quiet[0]} | {quiet[1] * 1000:.1f} ms | {busy[0]} | {busy[1] * 1000:.1f} ms | {busy[2]} |"
        )

    # The delay from a step's end to its successor's submit, with the clock ticking the engine on its own.
    PipelineRun.objects.update(state="success")  # the 100 runs above are done with
    delays = []
    stop = threading.Event()

    def clock() -> None:
        """The site's clock: its pipelines work every 0.1 s (enqueue_due keeps its own cadence); the task runs inline."""
        from django.db import close_old_connections

        last: dict = {}
        while not stop.is_set():
            close_old_connections()
            schedules.enqueue_due(last)
            stop.wait(0.1)

    cache.delete(schedules.ADVANCE_KEY)  # from here on, the engine ticks as the clock and the sync passes ask
    timed_runs = [services.run_submit(user=user, pipeline=version.pipeline) for _ in range(3)]
    engine.advance()
    start_submitted()
    thread = threading.Thread(target=clock, daemon=True)
    thread.start()
    try:
        for _ in range(STEPS - 1):
            for job in running_jobs(timed_runs):
                step = StepJob.objects.select_related("step").get(job=job).step
                successor = RunStep.objects.get(run_id=step.run_id, position=step.position + 1)
                for path in ("model_dir",):
                    (root / job.public_id / path).mkdir(parents=True, exist_ok=True)
                (root / job.public_id / "model_dir" / "score").write_text("0.5")
                backend.set_state(job.public_id, "succeeded", exit_code=0)
                ended = time.perf_counter()
                sync_cluster(cluster.pk)  # the sync pass that sees it end, as a worker runs it
                deadline = ended + 30
                while not StepJob.objects.filter(step=successor, job__isnull=False).exists():
                    if time.perf_counter() > deadline:
                        raise SystemExit("the successor never started")
                    time.sleep(0.002)
                delays.append(time.perf_counter() - ended)
            start_submitted()
    finally:
        stop.set()
        thread.join()
    print()
    print(
        f"a step's end (its sync pass) to its successor's submit, the clock looking every {schedules.TICK_EVERY} s "
        f"({len(delays)} steps): median {statistics.median(delays) * 1000:.0f} ms, "
        f"p90 {statistics.quantiles(delays, n=10)[-1] * 1000:.0f} ms, max {max(delays) * 1000:.0f} ms"
    )
    print("(before it: the wait for the sync pass that sees the job end, the cluster's sync interval)")
    connection.close()


if __name__ == "__main__":
    main()
