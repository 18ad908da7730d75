"""Schemathesis over every operation of /api/schema/, as a team member: no 5xx, every response true to the schema.

The schema is read from the portal's own /api/schema/ and each operation is called in-process through
Django's WSGI handler (no server, no network), bounded in examples so the run takes about a minute here.
Each operation is one test (``test_api[GET /api/v1/jobs/]``) over a fresh database holding a team, a job,
a notebook and an experiment, so list and detail answers have something to show.
"""

from __future__ import annotations

import pytest
import schemathesis
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig

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


@pytest.fixture
def member(db, fake_backend, owner, team, settings):
    """A team member with a job, an experiment and a notebook of their own; their token's header."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    # As Django's test client does: the end of a request must not close the test's transaction.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        job_services.experiment_create(user=owner, team=team, name="baseline")
        job_services.job_submit(
            user=owner,
            data={
                "name": "fuzz",
                "framework": "batch",
                "command": "true",
                "roles": {"main": {"replicas": 1, "cpu": "1", "memory": "1Gi"}},
            },
        )
        notebook_services.notebook_create(user=owner, team=team, name="scratch", kind="jupyterlab", image="x")
        yield dict(api_client_for(owner)._credentials)
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@schema.parametrize()
@settings(
    max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True, database=None
)
def test_api(case, member):
    headers = {"Authorization": member["HTTP_AUTHORIZATION"]}
    case.call_and_validate(headers=headers)
