"""The site's clock calls the periodic work each app offers in its ready(), and names no app itself."""

import ast
from pathlib import Path

import pytest
from django.core.management import call_command

from easyai_site.management.commands import scheduler

pytestmark = pytest.mark.django_db


def test_each_app_offers_its_periodic_work_to_the_clock():
    from jobs import schedule as job_schedule
    from notebooks import schedule as notebook_schedule

    offered = scheduler.periodic_work()
    assert ("jobs", job_schedule.enqueue_due) in offered
    assert ("notebooks", notebook_schedule.enqueue_due) in offered
    # In the apps' order: the jobs app's submits and syncs before the notebooks' scans, as before.
    labels = [label for label, _work in offered]
    assert labels.index("jobs") < labels.index("notebooks")


def test_the_clock_imports_no_app():
    tree = ast.parse(Path(scheduler.__file__).read_text())
    imported = {
        (node.module or "").split(".")[0] if isinstance(node, ast.ImportFrom) else alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert imported.isdisjoint({"teams", "clusters", "jobs", "files", "notebooks", "serving"})


def test_one_tick_calls_every_apps_work(monkeypatch):
    calls = []
    monkeypatch.setattr(scheduler, "periodic_work", lambda: [("a", calls.append), ("b", calls.append)])
    last: dict = {}
    scheduler.tick(last)
    assert calls == [last, last]  # one dict for all: each app keys its own entries


def test_the_scheduler_command_runs_one_tick():
    call_command("scheduler", "--once")
