"""An inference service's whole life on a Kubernetes cluster, through the serving app, against the fake API
server: its InferenceService is created, read back in one list call per pass, patched for a canary, promoted,
rolled back, and deleted; a revision KServe fails to load never becomes what serves."""

from __future__ import annotations

import pytest

from serving import runtime, services, traffic
from serving.api import grpc_of
from serving.models import InferenceService
from testing.fakekube import NS, make_cluster

ISVC = ("serving.kserve.io", "v1beta1", "inferenceservices")
URL = "http://iris.easyai-vision.example.com"
ADDRESS = "http://iris-predictor.easyai-vision.svc.cluster.local"

# Work is enqueued when a transaction commits (django-q2 runs it inline in tests): real commits here.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def kube_cluster(fake_kube, db):
    fake_kube.install("kserve")
    return make_cluster(fake_kube, settings={"request_timeout": 1, "storage_claim": "shared"})


def _spec(fake_kube) -> dict:
    return fake_kube.get(*ISVC, NS, "iris")["spec"]["predictor"]


def _ready(fake_kube, revision: str, traffic_split: list[tuple[str, int]], previous: str = "") -> None:
    fake_kube.set_inference_service(
        NS, "iris", ready=True, url=URL, address=ADDRESS, traffic=traffic_split,
        latest_created=revision, latest_ready=revision, previous=previous, grpc_url="iris-grpc.example.com:443",
    )  # fmt: skip


def _fresh(service) -> InferenceService:
    return InferenceService.objects.select_related("primary__version", "canary__version", "next__version").get(
        pk=service.pk
    )


def test_a_service_lives_its_whole_life_on_kubernetes(fake_kube, kube_cluster, finished_job, owner, team):
    services.version_register(user=owner, job=finished_job, name="iris", model_format="sklearn")
    services.version_register(user=owner, job=finished_job, name="iris", model_format="sklearn")
    service = services.service_create(user=owner, team=team, name="iris", model="iris", version=1, cpu="500m", cluster="gpu-a")
    predictor = _spec(fake_kube)
    assert predictor["model"]["storageUri"].rstrip("/") == "pvc://shared/models/vision/iris/1"
    assert predictor["model"]["modelFormat"]["name"] == "sklearn"
    assert "canaryTrafficPercent" not in predictor

    # Not ready yet: nothing serves, and the serving URL says so.
    runtime.sync_cluster(kube_cluster)
    assert _fresh(service).state == "starting"
    with pytest.raises(traffic.Refused) as refused:
        traffic.route_for(owner, "vision", "iris")
    assert refused.value.status == 503

    _ready(fake_kube, "iris-predictor-00001", [("iris-predictor-00001", 100)])
    lists_before = len(fake_kube.requests("GET", r"/inferenceservices"))
    runtime.sync_cluster(kube_cluster)
    assert len(fake_kube.requests("GET", r"/inferenceservices")) == lists_before + 1  # one list call a pass
    service = _fresh(service)
    assert service.state == "ready" and service.primary.version.number == 1
    assert (service.cluster_url, service.address) == (URL, ADDRESS)
    assert grpc_of(service)["address"] == "iris-grpc.example.com:443"
    route = traffic.route_for(owner, "vision", "iris")
    assert route.choose().base == ADDRESS and not route.canary  # KServe splits the traffic itself

    # A canary: the same InferenceService, patched with the new version and its share.
    services.service_canary(user=owner, service=service, version=2, percent=20)
    predictor = _spec(fake_kube)
    assert predictor["canaryTrafficPercent"] == 20
    assert predictor["model"]["storageUri"].rstrip("/") == "pvc://shared/models/vision/iris/2"
    runtime.sync_cluster(kube_cluster)  # KServe has not reconciled the new spec yet
    assert _fresh(service).canary.state == "starting"
    _ready(fake_kube, "iris-predictor-00002", [("iris-predictor-00002", 20), ("iris-predictor-00001", 80)], "iris-predictor-00001")
    runtime.sync_cluster(kube_cluster)
    service = _fresh(service)
    assert service.canary.state == "ready" and service.primary.version.number == 1

    # Promote: the share leaves the spec; the canary is what serves.
    services.service_promote(user=owner, service=service)
    predictor = _spec(fake_kube)
    assert "canaryTrafficPercent" not in predictor
    assert predictor["model"]["storageUri"].rstrip("/") == "pvc://shared/models/vision/iris/2"
    assert _fresh(service).primary.version.number == 2

    # Roll back to version 1: a new revision; KServe fails to load it, and version 2 keeps serving.
    services.service_rollback(user=owner, service=_fresh(service))
    assert _spec(fake_kube)["model"]["storageUri"].rstrip("/") == "pvc://shared/models/vision/iris/1"
    fake_kube.set_inference_service(
        NS, "iris", ready=False, url=URL, address=ADDRESS, traffic=[("iris-predictor-00002", 100)],
        latest_created="iris-predictor-00003", latest_ready="iris-predictor-00002",
        message="Revision iris-predictor-00003 failed: model failed to load",
    )  # fmt: skip
    runtime.sync_cluster(kube_cluster)
    service = _fresh(service)
    assert service.next is None and service.primary.version.number == 2
    assert "failed to load" in service.message and "keeps serving" in service.message

    services.service_delete(user=owner, service=service)
    assert fake_kube.get(*ISVC, NS, "iris") is None
    assert not InferenceService.objects.exists()


def test_a_cluster_that_refuses_the_service_fails_the_revision_and_says_why(fake_kube, kube_cluster, finished_job, owner, team):
    services.version_register(user=owner, job=finished_job, name="iris", model_format="sklearn")
    fake_kube.fail("POST", r"/inferenceservices$", 422)
    service = services.service_create(user=owner, team=team, name="iris", model="iris", version=1, cluster="gpu-a")
    service = _fresh(service)
    assert service.next is None and service.primary is None
    assert "refused" in service.message
    assert service.revisions.get().state == "failed"


def test_a_create_that_fails_for_a_moment_is_applied_again_by_the_next_pass(
    fake_kube, kube_cluster, finished_job, owner, team, settings
):
    services.version_register(user=owner, job=finished_job, name="iris", model_format="sklearn")
    fake_kube.fail("POST", r"/inferenceservices$", 500)
    service = services.service_create(user=owner, team=team, name="iris", model="iris", version=1, cluster="gpu-a")
    assert fake_kube.get(*ISVC, NS, "iris") is None
    assert _fresh(service).state == "starting"
    runtime.sync_cluster(kube_cluster)  # not on the cluster: applied again
    assert fake_kube.get(*ISVC, NS, "iris") is not None
    # KServe never makes it ready: after the start timeout the revision failed, and says so.
    settings.EASYAI_SERVING_START_TIMEOUT = 0
    runtime.sync_cluster(kube_cluster)
    service = _fresh(service)
    assert service.next is None and "did not make it ready" in service.message
