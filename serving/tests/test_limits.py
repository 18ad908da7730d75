"""What the serving URL and the file downloads refuse without a 500: a call's body past the limit (413, before
anything else is read) and a version's file gone from the store (404)."""

from __future__ import annotations

import pytest

from serving import services
from serving.store import model_store
from testing.web import fetch


@pytest.mark.django_db(transaction=True)
def test_a_call_whose_body_is_too_large_is_413_and_says_the_limit(asgi_server, settings, people):
    settings.EASYAI_SERVING_MAX_BODY_BYTES = 4096
    status, _headers, body = fetch(
        asgi_server.port,
        "/serving/vision/iris/v1/models/iris:predict",
        method="POST",
        user=people["owner"],
        body=b"[" + b"1," * 5000 + b"1]",
        Content_Type="application/json",
    )
    assert status == 413 and b"4096" in body and b"EASYAI_SERVING_MAX_BODY_BYTES" in body


def test_a_file_missing_from_the_store_is_404(api, owner, finished_job):
    version = services.version_register(user=owner, job=finished_job, name="iris", model_format="sklearn")
    url = "/api/v1/models/vision/iris/versions/1/files/model.joblib"
    assert api(owner).get(url).status_code == 200
    model_store().delete_prefix(version.prefix)
    answer = api(owner).get(url)
    assert answer.status_code == 404 and "missing" in answer.json()["detail"]
