"""One Kubernetes sync pass over 10,000 active jobs on the fake API server, beside per-job polling.

    .venv/bin/python bench/k8s_sync.py [--jobs 10000] [--pods-per-job 2] [--poll 1000]

The fake is filled directly (no 10,000 HTTP creates). The sync pass is the
backend's observe(): one list per custom kind installed plus one pod list.
The original design polled each job with a GET: that loop is timed over
--poll jobs and extrapolated to --jobs (printed as such), unless --poll
equals --jobs.
"""

from __future__ import annotations

import argparse
import multiprocessing
import time

from _setup import django_up

GROUP, VERSION, PLURAL = "kubeflow.org", "v1", "pytorchjobs"


def serve_fake(conn, jobs: int, pods_per_job: int, template: dict) -> None:
    """The child process: fill a FakeKube directly, serve it, answer journal questions on the pipe."""
    from clusters.backends.kubernetes import manifests as m
    from testing.fakekube import FakeKube

    fake = FakeKube().start()
    namespace = "easyai-vision"
    fake.put("", "v1", "namespaces", "", {"metadata": {"name": namespace}})
    started = time.perf_counter()
    for i in range(jobs):
        job_id = f"j-{i:08d}"
        labels = {**template["metadata"]["labels"], m.LABEL_JOB_ID: job_id}
        obj = {**template, "metadata": {**template["metadata"], "name": job_id, "labels": labels},
               "status": {"conditions": [{"type": "Running", "status": "True", "reason": "Running"}]}}  # fmt: skip
        fake.put(GROUP, VERSION, PLURAL, namespace, obj)
        for index in range(pods_per_job):
            role, replica = ("master", 0) if index == 0 else ("worker", index - 1)
            pod_labels = {**labels, m.LABEL_ROLE: role, m.TO_REPLICA_TYPE: role, m.TO_REPLICA_INDEX: str(replica)}
            fake.add_pod(namespace, f"{job_id}-{role}-{replica}", pod_labels, container="pytorch")
    for key, obj in list(fake.objects.items()):
        fake.serialized(key, obj)  # the API server's watch cache holds objects serialised already
    conn.send((fake.url, fake.kubeconfig(), time.perf_counter() - started))
    while True:
        command = conn.recv()
        if command == "journal":
            conn.send([(r.method, r.path) for r in fake.journal])
        elif command == "clear":
            fake.clear_journal()
            conn.send(None)
        else:
            fake.stop()
            conn.send(None)
            return


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--pods-per-job", type=int, default=2)
    parser.add_argument("--poll", type=int, default=1_000, help="jobs the per-job polling loop really polls")
    args = parser.parse_args()
    teardown = django_up()
    try:
        import yaml

        from clusters.backends.kubernetes import KubernetesBackend
        from clusters.models import Cluster
        from testing.fakekube import make_job

        cluster = Cluster(name="bench", kind=Cluster.Kind.KUBERNETES, namespace_prefix="easyai-",
                          nfs_server="nfs.example.org", nfs_path="/export", settings={"request_timeout": 120})  # fmt: skip
        template = KubernetesBackend(cluster).render(make_job("pytorch"))[0]
        # The API server runs in a process of its own, as a real one does: it does not share our GIL.
        parent, child = multiprocessing.get_context("fork").Pipe()
        server = multiprocessing.get_context("fork").Process(
            target=serve_fake, args=(child, args.jobs, args.pods_per_job, template), daemon=True
        )
        server.start()
        url, kubeconfig, fill_seconds = parent.recv()
        print(f"filled the fake API server ({url}) with {args.jobs:,} PyTorchJobs and "
              f"{args.jobs * args.pods_per_job:,} pods in {fill_seconds:.1f} s")  # fmt: skip
        cluster.kubeconfig = yaml.safe_dump(kubeconfig)
        cluster.save()
        backend = KubernetesBackend(cluster)
        job_ids = [f"j-{i:08d}" for i in range(args.jobs)]

        def journal() -> list[tuple[str, str]]:
            parent.send("journal")
            return parent.recv()

        def clear() -> None:
            parent.send("clear")
            parent.recv()

        backend.installed_crds()  # discovery is cached for 10 minutes: not part of a pass
        passes = []
        for _ in range(3):
            clear()
            start = time.perf_counter()
            seen = backend.observe(job_ids)
            passes.append(time.perf_counter() - start)
            calls = journal()
        running = sum(1 for o in seen.values() if o.state == "running")
        assert running == args.jobs, f"{running} of {args.jobs} observed running"

        clear()
        custom = backend.conn.custom
        polled = job_ids[: args.poll]
        start = time.perf_counter()
        for job_id in polled:
            custom.get_namespaced_custom_object(GROUP, VERSION, "easyai-vision", PLURAL, job_id, _request_timeout=30)
        poll_seconds = time.perf_counter() - start
        poll_calls = len(journal())
        parent.send("stop")
        parent.recv()

        print()
        print(f"sync pass, observe() of {args.jobs:,} active jobs: {len(calls)} API calls per pass "
              f"[goal: constant, one per kind + pods]")  # fmt: skip
        for method, path in calls:
            print(f"    {method} {path}")
        print(f"    seconds per pass: {', '.join(f'{s:.2f}' for s in passes)} (best {min(passes):.2f} s) "
              f"[goal: under 5 s]")  # fmt: skip
        if args.poll >= args.jobs:
            print(f"per-job polling (original design): {poll_calls:,} API calls, {poll_seconds:.2f} s (measured)")
        else:
            factor = args.jobs / len(polled)
            print(f"per-job polling (original design): measured {poll_calls:,} GETs for {len(polled):,} jobs in "
                  f"{poll_seconds:.2f} s; for {args.jobs:,} jobs that is {int(poll_calls * factor):,} API calls and "
                  f"~{poll_seconds * factor:.1f} s EXTRAPOLATED (x{factor:g}), on loopback with no network latency")  # fmt: skip
    finally:
        teardown()


if __name__ == "__main__":
    main()
