"""Which local revision serves, driven through the fake backend: a revision whose job never gets to run fails
after the start timeout and says why; a serving revision that dies is replaced, and one that never loaded is
not started again and again."""

from __future__ import annotations

import pytest

from jobs.workers import sync as job_sync
from serving import runtime, services
from serving.models import InferenceService, Revision

# Work is enqueued when a transaction commits (django-q2 runs it inline in tests): real commits here.
pytestmark = pytest.mark.django_db(transaction=True)


def _settle(backend) -> InferenceService:
    job_sync.cluster_sync(backend.cluster)
    runtime.sync_cluster(backend.cluster)
    return InferenceService.objects.select_related("primary__version", "next__version").get()


def test_a_revision_whose_job_waits_past_the_timeout_fails_and_says_what_it_waits_for(
    fake_backend, finished_job, owner, team, settings
):
    services.version_register(user=owner, job=finished_job, name="iris", model_format="sklearn")
    service = services.service_create(user=owner, team=team, name="iris", model="iris")
    revision = service.revisions.select_related("job").get()  # its job submitted on commit
    fake_backend.set_state(revision.job.public_id, "pending", message="waiting for the team's quota")
    service = _settle(fake_backend)
    assert service.state == "starting"
    settings.EASYAI_SERVING_START_TIMEOUT = 0
    service = _settle(fake_backend)
    assert service.next is None and service.primary is None and service.state == "failed"
    assert "waiting for the team's quota" in service.message
    assert Revision.objects.get().state == "failed"


def test_a_serving_revision_that_dies_is_replaced_and_one_that_never_loaded_is_not_retried(
    fake_backend, finished_job, owner, team
):
    services.version_register(user=owner, job=finished_job, name="iris", model_format="sklearn")
    service = services.service_create(user=owner, team=team, name="iris", model="iris")
    first = Revision.objects.get()
    # As if its model server had answered: it serves.
    Revision.objects.filter(pk=first.pk).update(state="ready")
    InferenceService.objects.filter(pk=service.pk).update(primary=first, next=None)
    fake_backend.set_state(first.job.public_id, "failed", message="killed")
    service = _settle(fake_backend)
    first.refresh_from_db()
    assert first.state == "retired" and "stopped" in service.message
    second = service.next
    assert second is not None and second.version.number == 1 and second.number == 2

    # The replacement fails before it ever answers: nothing is started again for that version.
    fake_backend.set_state(Revision.objects.get(pk=second.pk).job.public_id, "failed", message="bad model")
    service = _settle(fake_backend)
    assert service.next is None and service.primary is None
    assert "failed to load" in service.message
    _settle(fake_backend)
    assert Revision.objects.count() == 2
