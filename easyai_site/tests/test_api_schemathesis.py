"""Schemathesis over every operation of /api/schema/, as a team member: no 5xx, every response true to the schema.

The schema is read from the portal's own /api/schema/ and each operation is called in-process through
Django's WSGI handler (no server, no network), bounded in examples so the run takes about a minute here.
Each operation is one test (``test_api[GET /api/v1/jobs/]``) over a fresh database holding the member's
experiment, job (with outputs), notebook and TensorBoard; an operation on one object is called a second time
with the generated ids replaced by that object's, so detail answers are checked on real rows too.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import schemathesis
from django.conf import settings as django_settings
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig

from clusters.backends.contract import storage
from conftest import api_client_for
from jobs import services as job_services
from notebooks import services as notebook_services

EXAMPLES = 20  # per operation and generation phase; 40 operations take about a minute on two cores

CONFIG = SchemathesisConfig.from_dict(
    {
        "seed": 19,  # a failure here is reproducible
        "generation": {"mode": "all", "max-examples": EXAMPLES},
        "phases": {
            "examples": {"enabled": True},
            "coverage": {"enabled": True},
            "fuzzing": {"enabled": True},
            "stateful": {"enabled": False},
        },
        # What this test is for: no 5xx, and every answer matches the schema.
        "checks": {
            "enabled": False,
            "not_a_server_error": {"enabled": True},
            "response_schema_conformance": {"enabled": True},
        },
    }
)

schema = schemathesis.openapi.from_wsgi("/api/schema/", WSGIHandler(), config=CONFIG)


@dataclass
class Member:
    headers: dict[str, str]
    ids: dict[str, str]  # path parameter -> the id of a real object of the member's, by name


@pytest.fixture
def member(db, fake_backend, owner, team, settings) -> Iterator[Member]:
    """A team member with an experiment, a job (with its outputs), a notebook and a TensorBoard of their own."""
    # As Django's test client does: the end of a request must not close the test's transaction.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        experiment = job_services.experiment_create(user=owner, team=team, name="baseline")
        job = job_services.job_submit(
            user=owner,
            data={
                "name": "fuzz",
                "framework": "batch",
                "command": "true",
                "roles": {"main": {"replicas": 1, "cpu": "1", "memory": "1Gi"}},
            },
        )
        root = Path(django_settings.EASYAI_STORAGE_ROOT)
        for folder, name in (("model_dir", "model.bin"), ("summary_dir", "events.out")):
            path = storage.output_dir(root, job.public_id, folder, *(["main-0"] if folder == "summary_dir" else []))
            path.mkdir(parents=True)
            (path / name).write_bytes(b"written by the task")
        notebook = notebook_services.notebook_create(user=owner, team=team, name="scratch", image="x")
        board, _created = notebook_services.tensorboard_open(user=owner, job_ids=[job.public_id])
        ids = {
            "/api/v1/experiments/{id}/": {"id": str(experiment.pk)},
            "/api/v1/jobs/{id}/": {"id": job.public_id, "task": "main-0"},
            "/api/v1/jobs/{job_id}/": {"job_id": job.public_id},
            "/api/v1/notebooks/{id}/": {"id": str(notebook.pk)},
            "/api/v1/tensorboards/{id}/": {"id": str(board.pk)},
            "/api/v1/teams/{slug}/": {"slug": team.slug, "username": owner.username},
        }
        yield Member(headers={"Authorization": api_client_for(owner)._credentials["HTTP_AUTHORIZATION"]}, ids=ids)
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@schema.parametrize()
@settings(
    max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True, database=None
)
def test_api(case, member):
    case.call_and_validate(headers=member.headers)
    # The same request once more on the member's real objects: generated ids rarely name a row, and the
    # answers about real ones (a job with its tasks and events, a running notebook) are checked too.
    real = next((ids for prefix, ids in member.ids.items() if case.operation.path.startswith(prefix)), None)
    if real and case.path_parameters:
        case.path_parameters = {**case.path_parameters, **{k: v for k, v in real.items() if k in case.path_parameters}}
        case.call_and_validate(headers=member.headers)
