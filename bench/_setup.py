"""Shared set-up for the benchmarks: Django on a throw-away test database.

With DATABASE_URL set the figures come from MySQL (a test_ database is created
and dropped, the real one is never touched); without it, from SQLite.
"""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def django_up(**env: str):
    """Configure and set up Django on a fresh test database; returns a teardown function."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "easyai_site.settings")
    os.environ.setdefault("EASYAI_VAR_DIR", tempfile.mkdtemp(prefix="easyai-bench-"))
    os.environ.setdefault("EASYAI_Q_SYNC", "1")
    os.environ.update(env)
    import django

    from easyai_site.prepare import prepare

    prepare()  # var/ and its secret key, as the portal's entry points make them
    django.setup()
    from django.db import connection
    from django.test.utils import setup_test_environment

    setup_test_environment()
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)

    def teardown() -> None:
        connection.creation.destroy_test_db(old_name, verbosity=0)

    return teardown


def database_label() -> str:
    from django.db import connection

    return f"{connection.vendor} {connection.Database.__name__ if hasattr(connection, 'Database') else ''}".strip()


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def timed(func, repeat: int) -> list[float]:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        func()
        samples.append(time.perf_counter() - start)
    return samples


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_daphne(env: dict[str, str] | None = None) -> tuple[subprocess.Popen, int]:
    """The portal in daphne (the server ``manage.py serve`` runs), in a subprocess on a free port, once it listens."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "easyai_site.asgi:application"],
        cwd=ROOT,
        env=env if env is not None else dict(os.environ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return process, port
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"daphne did not start: {process.stderr.read().decode()[-2000:]}") from None
            time.sleep(0.05)


def local_team():
    """On a freshly migrated database: a user "bench", admin of team "bench", and a default local cluster."""
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from clusters.models import Cluster
    from teams.models import Membership, Team

    call_command("migrate", verbosity=0)
    user = get_user_model().objects.create_user("bench", "bench@example.com", "bench-pass-123")
    team = Team.objects.create(name="Bench", slug="bench")
    Membership.objects.create(team=team, user=user, role=Membership.Role.ADMIN)
    cluster = Cluster.objects.create(name="local", kind="local", is_default=True, settings={"stop_grace": 2})
    return user, team, cluster


def people_and_teams():
    """On a fresh test database: a default local cluster, ten users in five teams (user0 in team-0, user1 in
    team-1, …): the population the list and usage benchmarks spread their jobs over."""
    from django.contrib.auth import get_user_model

    from clusters.models import Cluster
    from teams.models import Membership, Team

    cluster = Cluster.objects.create(name="local", kind="local", is_default=True)
    users = [get_user_model().objects.create_user(f"user{i}", password="x") for i in range(10)]
    teams = [Team.objects.create(name=f"Team {i}", slug=f"team-{i}") for i in range(5)]
    for i, user in enumerate(users):
        Membership.objects.create(team=teams[i % 5], user=user, role="member")
    return cluster, users, teams


def time_cases(cases: dict, repeat: int, *, profile: bool = False) -> None:
    """Each case (name -> a call answering an HTTP response): its median time and its query count, printed; with
    ``profile``, where one call spends its time."""
    from django.db import connection

    for name, call in cases.items():
        response = call()
        if response.status_code != 200:
            print(f"{name}: answered {response.status_code}, skipped")
            continue
        queries: list[str] = []

        def record(execute, sql, *rest, queries=queries):
            queries.append(sql)
            return execute(sql, *rest)

        with connection.execute_wrapper(record):
            call()
        samples = timed(call, repeat)
        print(f"{name}: median {median_ms(samples):.1f} ms over {repeat}, {len(queries)} queries")
        if profile:
            import cProfile
            import pstats

            profiler = cProfile.Profile()
            profiler.runcall(call)
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
