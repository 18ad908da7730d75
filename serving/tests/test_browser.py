"""A service's page in a real headless browser: its "Try it" panel sends a body through the service's route and
shows the model server's answer (the page's script, its session and CSRF token, the API and a real model server
on the local backend)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.conf import settings
from playwright.sync_api import Page, expect

from clusters.backends.contract import storage
from jobs import services as job_services
from jobs.workers import sync as job_sync
from serving import runtime, services
from serving.models import InferenceService
from serving.tests.conftest import train_iris
from testing.asgi import signed_in
from testing.wait import wait_until

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SAMPLES = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]]


def _serving(service: InferenceService, cluster) -> InferenceService:
    """The service once its first revision answers, settled as the site's clock would."""

    def settled():
        job_sync.cluster_sync(cluster)
        runtime.sync_cluster(cluster)
        fresh = InferenceService.objects.select_related("primary").get(pk=service.pk)
        return fresh if fresh.primary is not None else None

    def explain() -> str:
        fresh = InferenceService.objects.get(pk=service.pk)
        return f"state {fresh.state}, message {fresh.message!r}, revisions {list(fresh.revisions.values('number', 'state', 'message'))}"

    return wait_until(settled, 120, "the service's first revision to answer", every=0.3, explain=explain)


def test_try_it_sends_a_body_and_shows_the_models_answer(page: Page, asgi_server, local_cluster, stop_all, owner, team):
    # A job whose model_dir holds a trained model (the job itself only has to exist), registered and served.
    job = job_services.job_submit(
        user=owner,
        data={"name": "iris-train", "team": team.slug, "framework": "batch", "command": "true", "roles": {"train": {}}},
    )
    trained = train_iris(storage.output_dir(Path(settings.EASYAI_STORAGE_ROOT), job.public_id, "model_dir"))
    services.version_register(user=owner, job=job, name="iris", model_format="sklearn")
    service = services.service_create(user=owner, team=team, name="iris", model="iris", cpu="1", memory="1Gi")
    service = _serving(service, local_cluster)
    expected = trained.predict(SAMPLES).tolist()

    signed_in(page, asgi_server, owner)
    page.goto(f"{asgi_server.http_url}/services/{team.slug}/iris/")
    expect(page.locator(".service-state")).to_have_text("ready")
    answer = page.locator("#try-answer")

    page.locator("#try-body").fill(json.dumps({"instances": SAMPLES}))
    page.get_by_role("button", name="Send").click()
    expect(answer).to_contain_text("HTTP 200 · revision 1 ·", timeout=30_000)
    shown = answer.inner_text()
    assert json.loads(shown.split("\n", 1)[1]) == {"predictions": expected}, shown

    # V2, the Open Inference Protocol: the same predictions as an output tensor.
    page.locator("#try-protocol").select_option("v2")
    v2 = {"inputs": [{"name": "input-0", "shape": [3, 4], "datatype": "FP64", "data": sum(SAMPLES, [])}]}
    page.locator("#try-body").fill(json.dumps(v2))
    page.get_by_role("button", name="Send").click()
    expect(answer).to_contain_text('"outputs"', timeout=30_000)
    assert json.loads(answer.inner_text().split("\n", 1)[1])["outputs"][0]["data"] == expected

    # The model server's own refusal of a malformed body is shown as it answered; a body that is not JSON is
    # refused by the page before anything is sent.
    page.locator("#try-protocol").select_option("v1")
    page.locator("#try-body").fill(json.dumps({"instances": [[1.0, 2.0]]}))
    page.get_by_role("button", name="Send").click()
    expect(answer).to_contain_text("HTTP 400 · revision 1", timeout=30_000)
    calls = InferenceService.objects.get(pk=service.pk).requests
    page.locator("#try-body").fill("{not json")
    page.get_by_role("button", name="Send").click()
    expect(answer).to_contain_text("The body is not JSON")
    assert InferenceService.objects.get(pk=service.pk).requests == calls == 3
    # The portal out of reach: the panel says the call was not sent, not "…" for ever.
    page.route("**/try/", lambda route: route.abort())
    page.locator("#try-body").fill(json.dumps({"instances": SAMPLES}))
    page.get_by_role("button", name="Send").click()
    expect(answer).to_contain_text("The call could not be sent")
