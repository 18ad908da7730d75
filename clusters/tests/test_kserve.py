"""Served models on Kubernetes: KServe InferenceServices rendered strictly, and their whole life against the fake
API server with the real `kubernetes` client; the fake backend's stand-in for them."""

from __future__ import annotations

from typing import Any

import pytest

from clusters.backends.base import (
    MODEL_FORMATS,
    BackendError,
    BackendRejected,
    BackendUnavailable,
    ServiceDescription,
    ServingBackend,
    TrafficObservation,
)
from clusters.backends.fake import FakeBackend
from clusters.backends.kubernetes import KubernetesBackend
from clusters.backends.kubernetes import manifests as m
from clusters.backends.kubernetes.schema_check import validate_manifest
from clusters.models import Cluster
from testing.fakekube import NS, FakeKube, make_cluster

ISVC = ("serving.kserve.io", "v1beta1", "inferenceservices")
LIST_PATH = r"^/apis/serving\.kserve\.io/v1beta1/inferenceservices$"
V1 = "pvc://easyai-storage/models/vision/iris/1"
V2 = "pvc://easyai-storage/models/vision/iris/2"


def service(model_format: str = "sklearn", **fields: Any) -> ServiceDescription:
    """A service as the serving app describes it for a Kubernetes cluster."""
    values: dict[str, Any] = {
        "team": "vision",
        "name": "iris",
        "model_format": model_format,
        "storage_uri": V1,
        "cpu_milli": 500,
        "memory_bytes": 2 * 2**30,
        "image": "registry.example/predictor:1" if model_format == "custom" else "",
        "labels": {"easyai.io/service": "iris", "easyai.io/model": "Iris classifier"},
    }
    values.update(fields)
    return ServiceDescription(**values)


def cluster(**fields: Any) -> Cluster:
    """An unsaved cluster: rendering reads only its settings."""
    values: dict[str, Any] = {"name": "gpu-a", "kind": Cluster.Kind.KUBERNETES, "namespace_prefix": "easyai-"}
    values.update(fields)
    return Cluster(**values)


# --- the manifest --------------------------------------------------------------------------------------------

MODES = ("Serverless", "RawDeployment")
CANARIES = (None, 0, 20, 100)
MATRIX = [(f, mode, canary) for f in MODEL_FORMATS for mode in MODES for canary in CANARIES]


@pytest.mark.parametrize(("model_format", "mode", "canary"), MATRIX, ids=lambda v: str(v))
def test_every_format_mode_and_canary_validates_strictly_or_is_refused(model_format, mode, canary):
    wanted = service(model_format, deployment_mode=mode, canary_percent=canary, gpu=1, service_account="models-s3")
    if mode == "RawDeployment" and canary is not None:
        with pytest.raises(ValueError, match="only in Serverless mode"):
            m.inference_service(wanted, cluster())
        return
    manifest = m.inference_service(wanted, cluster(image_pull_secrets=["regcred"]))
    assert validate_manifest(manifest) == []
    assert manifest["metadata"]["annotations"] == {"serving.kserve.io/deploymentMode": mode}
    predictor = manifest["spec"]["predictor"]
    assert predictor.get("canaryTrafficPercent") == canary and ("canaryTrafficPercent" in predictor) == (
        canary is not None
    )
    assert predictor["serviceAccountName"] == "models-s3"
    assert predictor["imagePullSecrets"] == [{"name": "regcred"}]
    if model_format == "custom":
        (container,) = predictor["containers"]
        assert "model" not in predictor
        assert container["env"] == [{"name": "STORAGE_URI", "value": V1}]
        resources = container["resources"]
    else:
        assert "containers" not in predictor
        model = predictor["model"]
        assert model["modelFormat"] == {"name": m.KSERVE_FORMATS[model_format][0]}
        assert model["storageUri"] == V1
        assert model.get("protocolVersion") == ("v2" if model_format != "tensorflow" else None)
        resources = model["resources"]
    gpu = {"cpu": "500m", "memory": str(2 * 2**30), "nvidia.com/gpu": "1"}
    assert resources == {"requests": gpu, "limits": gpu}


def test_the_manifest_of_an_sklearn_model():
    manifest = m.inference_service(service(runtime_version="1", canary_percent=20), cluster())
    assert manifest == {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {
            "name": "iris",
            "namespace": "easyai-vision",
            "labels": {
                "easyai.io/service": "iris",
                "easyai.io/model": "Iris_classifier",  # made a valid label value
                "app.kubernetes.io/managed-by": "easyai",
                "easyai.io/team": "vision",
            },
            "annotations": {"serving.kserve.io/deploymentMode": "Serverless"},
        },
        "spec": {
            "predictor": {
                "minReplicas": 1,
                "maxReplicas": 1,
                "canaryTrafficPercent": 20,
                "model": {
                    "modelFormat": {"name": "sklearn", "version": "1"},
                    "storageUri": V1,
                    "resources": {
                        "requests": {"cpu": "500m", "memory": "2147483648"},
                        "limits": {"cpu": "500m", "memory": "2147483648"},
                    },
                    "protocolVersion": "v2",
                },
            }
        },
    }


def test_pytorch_and_torchscript_are_kserves_pytorch():
    for model_format in ("pytorch", "torchscript"):
        model = m.inference_service(service(model_format), cluster())["spec"]["predictor"]["model"]
        assert model["modelFormat"] == {"name": "pytorch"} and model["protocolVersion"] == "v2"


def test_a_custom_model_is_its_own_serving_container():
    manifest = m.inference_service(service("custom", cpu_milli=2000, memory_bytes=0), cluster())
    assert manifest["spec"]["predictor"]["containers"] == [
        {
            "name": "kserve-container",
            "image": "registry.example/predictor:1",
            "env": [{"name": "STORAGE_URI", "value": V1}],
            "resources": {"requests": {"cpu": "2"}, "limits": {"cpu": "2"}},
            "ports": [{"containerPort": 8080, "protocol": "TCP"}],
        }
    ]


def test_kserves_newer_mode_names_are_taken_and_only_knative_splits_traffic():
    assert validate_manifest(m.inference_service(service(deployment_mode="Knative", canary_percent=5), cluster())) == []
    assert validate_manifest(m.inference_service(service(deployment_mode="Standard"), cluster())) == []
    with pytest.raises(ValueError, match="a canary cannot be served in Standard mode"):
        m.inference_service(service(deployment_mode="Standard", canary_percent=5), cluster())


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"model_format": "pickle"}, "model format 'pickle' is not one of"),
        ({"deployment_mode": "ModelMesh"}, "deployment mode 'ModelMesh' is not one of"),
        ({"canary_percent": 101}, "101 is not between 0 and 100"),
        ({"canary_percent": -1}, "-1 is not between 0 and 100"),
        ({"model_format": "custom", "image": ""}, "a custom model needs a predictor image"),
        ({"min_replicas": 3, "max_replicas": 2}, r"min replicas \(3\) is more than max replicas \(2\)"),
        ({"storage_uri": ""}, "no storage URI"),
        ({"service_account": "S3 Creds"}, "is not a DNS-1123 subdomain"),
    ],
)
def test_a_description_kserve_would_refuse_is_refused_with_its_reason(fields, problem):
    with pytest.raises(ValueError, match=problem):
        m.inference_service(service(**fields), cluster())


def test_a_gpu_on_a_cluster_that_names_no_gpu_resource_is_refused():
    with pytest.raises(ValueError, match="names no GPU resource"):
        m.inference_service(service(gpu=1), cluster(gpu_resource_name=""))
    manifest = m.inference_service(service(gpu=2), cluster(gpu_resource_name="amd.com/gpu"))
    assert manifest["spec"]["predictor"]["model"]["resources"]["limits"]["amd.com/gpu"] == "2"


def test_the_validator_holds_kserves_admission_rules():
    manifest = m.inference_service(service(canary_percent=20), cluster())
    predictor = manifest["spec"]["predictor"]
    both = {**predictor, "containers": [{"name": "kserve-container", "image": "x"}]}
    assert any("exactly one of" in p for p in validate_manifest({**manifest, "spec": {"predictor": both}}))
    neither = {k: v for k, v in predictor.items() if k != "model"}
    assert any("found none" in p for p in validate_manifest({**manifest, "spec": {"predictor": neither}}))
    for change, problem in [
        ({"canaryTrafficPercent": 150}, "canaryTrafficPercent: 150 is not between 0 and 100"),
        ({"minReplicas": 3, "maxReplicas": 2}, "minReplicas: 3 is more than maxReplicas 2"),
        ({"model": {**predictor["model"], "protocolVersion": "v3"}}, "'v3' is not one of v1, v2"),
        ({"model": {**predictor["model"], "name": "iris"}}, "not allowed in a standard predictor"),
        ({"model": {**predictor["model"], "storageUrl": V1}}, "Additional properties are not allowed"),
    ]:
        problems = validate_manifest({**manifest, "spec": {"predictor": {**predictor, **change}}})
        assert any(problem in p for p in problems), (change, problems)
    renamed = {**manifest, "metadata": {**manifest["metadata"], "name": "1-iris"}}
    assert any("not a DNS-1035 label" in p for p in validate_manifest(renamed))


# --- a service's life on Kubernetes --------------------------------------------------------------------------


def kserve_backend(fake: FakeKube, **fields: Any) -> KubernetesBackend:
    fake.install("kserve")
    return KubernetesBackend(make_cluster(fake, **fields))


def stored(fake: FakeKube, name: str = "iris") -> dict[str, Any]:
    return fake.get(*ISVC, NS, name)


@pytest.mark.django_db
def test_a_service_from_creation_through_a_canary_and_its_promotion_to_deletion(fake_kube):
    backend = kserve_backend(fake_kube)
    assert isinstance(backend, ServingBackend)
    backend.apply_service(service())
    created = fake_kube.requests("POST", r"/inferenceservices$")
    assert [r.status for r in created] == [201] and created[0].query.get("fieldValidation") == "Strict"
    assert stored(fake_kube)["spec"] == backend.render_service(service())["spec"]
    seen = backend.observe_services()[("vision", "iris")]
    assert not seen.ready and seen.message == "" and seen.traffic == []

    fake_kube.set_inference_service(
        NS, "iris", ready=True, url="http://iris.easyai-vision.example.com",
        address="http://iris-predictor.easyai-vision.svc.cluster.local", traffic=[("iris-predictor-00001", 100)],
        latest_created="iris-predictor-00001", latest_ready="iris-predictor-00001", grpc_url="iris-grpc:443",
    )  # fmt: skip
    seen = backend.observe_services()[("vision", "iris")]
    assert seen.ready and seen.url == "http://iris.easyai-vision.example.com"
    assert seen.address == "http://iris-predictor.easyai-vision.svc.cluster.local"
    assert seen.traffic == [TrafficObservation("iris-predictor-00001", 100, latest=True)]
    assert seen.latest_ready_revision == seen.latest_created_revision == "iris-predictor-00001"
    assert seen.grpc_address == "iris-grpc:443"

    # Version 2 as a canary with a fifth of the calls: the same InferenceService, patched.
    backend.apply_service(service(storage_uri=V2, canary_percent=20))
    assert [r.status for r in fake_kube.requests("POST", r"/inferenceservices$")] == [201, 409]
    assert fake_kube.requests("PATCH", r"/inferenceservices/iris$")[-1].query.get("fieldValidation") == "Strict"
    predictor = stored(fake_kube)["spec"]["predictor"]
    assert predictor["canaryTrafficPercent"] == 20 and predictor["model"]["storageUri"] == V2
    # KServe has not seen the new spec yet: what its status says is about the previous one.
    seen = backend.observe_services()[("vision", "iris")]
    assert not seen.ready and seen.reason == "Reconciling" and seen.message == ""

    fake_kube.set_inference_service(
        NS, "iris", ready=True, url="http://iris.easyai-vision.example.com",
        traffic=[("iris-predictor-00002", 20), ("iris-predictor-00001", 80)],
        latest_created="iris-predictor-00002", latest_ready="iris-predictor-00002", previous="iris-predictor-00001",
    )  # fmt: skip
    seen = backend.observe_services()[("vision", "iris")]
    assert seen.ready and seen.previous_rolledout_revision == "iris-predictor-00001"
    assert seen.traffic == [
        TrafficObservation("iris-predictor-00002", 20, latest=True),
        TrafficObservation("iris-predictor-00001", 80, latest=False),
    ]

    # Promoted: the canary takes everything; the share leaves the spec.
    backend.apply_service(service(storage_uri=V2))
    predictor = stored(fake_kube)["spec"]["predictor"]
    assert "canaryTrafficPercent" not in predictor and predictor["model"]["storageUri"] == V2
    assert stored(fake_kube)["spec"] == backend.render_service(service(storage_uri=V2))["spec"]

    backend.delete_service("vision", "iris")
    assert stored(fake_kube) is None
    assert fake_kube.requests("DELETE", r"/inferenceservices/iris$")[-1].query["propagationPolicy"] == "Foreground"
    backend.delete_service("vision", "iris")  # already gone: not an error
    assert backend.observe_services() == {}


@pytest.mark.django_db
def test_applying_the_same_description_again_changes_nothing(fake_kube):
    backend = kserve_backend(fake_kube)
    backend.apply_service(service(canary_percent=10))
    generation = stored(fake_kube)["metadata"]["generation"]
    backend.apply_service(service(canary_percent=10))
    assert fake_kube.requests("PATCH") == []
    assert stored(fake_kube)["metadata"]["generation"] == generation


@pytest.mark.django_db
def test_a_409_on_create_updates_the_existing_service_keeping_what_kserve_wrote(fake_kube):
    backend = kserve_backend(fake_kube)
    old = backend.render_service(service(model_format="xgboost", gpu=1))
    old["metadata"].setdefault("annotations", {})["serving.kserve.io/autoscalerClass"] = "hpa"
    old["metadata"]["finalizers"] = ["inferenceservice.finalizers"]
    fake_kube.put(*ISVC, NS, old)
    backend.apply_service(service())
    assert [r.status for r in fake_kube.requests("POST")] == [409]
    assert [r.status for r in fake_kube.requests("GET", r"/inferenceservices/iris$")] == [200]
    now = stored(fake_kube)
    assert now["spec"] == backend.render_service(service())["spec"]  # the GPU and the old format are gone
    assert now["metadata"]["finalizers"] == ["inferenceservice.finalizers"]
    assert now["metadata"]["annotations"]["serving.kserve.io/autoscalerClass"] == "hpa"
    assert now["metadata"]["labels"]["easyai.io/model"] == "Iris_classifier"


@pytest.mark.django_db
def test_an_injected_409_on_create_is_handled_as_an_update(fake_kube):
    backend = kserve_backend(fake_kube)
    backend.apply_service(service())
    fake_kube.fail("POST", r"/inferenceservices$", 409)
    backend.apply_service(service(max_replicas=4))
    assert stored(fake_kube)["spec"]["predictor"]["maxReplicas"] == 4


@pytest.mark.django_db
def test_someone_elses_inference_service_with_the_name_is_left_alone(fake_kube):
    backend = kserve_backend(fake_kube)
    fake_kube.put(*ISVC, NS, {"metadata": {"name": "iris"}, "spec": {"predictor": {"sklearn": {"storageUri": "x"}}}})
    with pytest.raises(BackendRejected, match="already exists and is not team vision's"):
        backend.apply_service(service())
    assert stored(fake_kube)["spec"] == {"predictor": {"sklearn": {"storageUri": "x"}}}
    assert fake_kube.requests("PATCH") == []
    assert backend.observe_services() == {}  # not labelled as ours


@pytest.mark.django_db
def test_a_422_is_rejected_with_the_servers_message(fake_kube):
    backend = kserve_backend(fake_kube)
    fake_kube.fail("POST", r"/inferenceservices$", 422, message='InferenceService "iris" is invalid: spec: bad')
    with pytest.raises(BackendRejected, match="is invalid: spec: bad"):
        backend.apply_service(service())
    backend.apply_service(service())
    fake_kube.fail("PATCH", r"/inferenceservices/iris$", 400, message="update rejected: deploymentMode cannot change")
    with pytest.raises(BackendRejected, match="deploymentMode cannot change"):
        backend.apply_service(service(deployment_mode="RawDeployment"))


@pytest.mark.django_db
def test_a_500_is_a_retryable_error(fake_kube):
    backend = kserve_backend(fake_kube)
    fake_kube.fail("POST", r"/inferenceservices$", 500)
    with pytest.raises(BackendError) as caught:
        backend.apply_service(service())
    assert not isinstance(caught.value, (BackendUnavailable, BackendRejected))
    backend.apply_service(service())  # the retry goes through
    assert stored(fake_kube) is not None
    fake_kube.fail("GET", LIST_PATH, 503)
    with pytest.raises(BackendError):
        backend.observe_services()


@pytest.mark.django_db
def test_a_refusal_is_unavailable_and_marks_the_cluster_unhealthy(fake_kube):
    backend = kserve_backend(fake_kube)
    fake_kube.fail("GET", LIST_PATH, 403, message="cannot list inferenceservices")
    with pytest.raises(BackendUnavailable, match="cannot list inferenceservices"):
        backend.observe_services()
    assert not Cluster.objects.get(pk=backend.cluster.pk).healthy


@pytest.mark.django_db
def test_a_canary_the_cluster_cannot_split_is_rejected_before_any_request(fake_kube):
    backend = kserve_backend(fake_kube)
    with pytest.raises(BackendRejected, match="only in Serverless mode"):
        backend.apply_service(service(deployment_mode="RawDeployment", canary_percent=20))
    assert fake_kube.requests("POST") == []


@pytest.mark.django_db
def test_a_missing_team_namespace_is_created(fake_kube):
    backend = kserve_backend(fake_kube)
    backend.apply_service(service(team="speech"))
    assert fake_kube.get("", "v1", "namespaces", "", "easyai-speech") is not None
    assert fake_kube.get(*ISVC, "easyai-speech", "iris") is not None
    assert ("speech", "iris") in backend.observe_services()


@pytest.mark.django_db
def test_a_cluster_without_kserve_says_so_and_serves_nothing(fake_kube):
    backend = KubernetesBackend(make_cluster(fake_kube))
    with pytest.raises(BackendRejected, match="install KServe"):
        backend.apply_service(service())
    assert backend.observe_services() == {}
    backend.delete_service("vision", "iris")


@pytest.mark.django_db
def test_observe_services_makes_one_list_call_for_many_services(fake_kube):
    backend = kserve_backend(fake_kube)
    fake_kube.put("", "v1", "namespaces", "", {"metadata": {"name": "easyai-speech"}})
    for index in range(30):
        backend.apply_service(service(team=("vision", "speech")[index % 2], name=f"model-{index}"))
    fake_kube.put(*ISVC, NS, {"metadata": {"name": "by-hand"}, "spec": {}})  # not the portal's
    fake_kube.clear_journal()
    seen = backend.observe_services()
    assert len(seen) == 30 and ("speech", "model-1") in seen and ("vision", "model-0") in seen
    (listed,) = fake_kube.journal
    assert listed.method == "GET" and listed.path == "/apis/serving.kserve.io/v1beta1/inferenceservices"
    assert listed.query["labelSelector"] == "app.kubernetes.io/managed-by=easyai"


@pytest.mark.django_db
def test_a_failed_revision_says_why_and_one_still_rolling_out_does_not(fake_kube):
    backend = kserve_backend(fake_kube)
    backend.apply_service(service())
    fake_kube.set_inference_service(NS, "iris", ready=False, latest_created="iris-predictor-00001")
    seen = backend.observe_services()[("vision", "iris")]
    assert not seen.ready and seen.message == "" and seen.reason == "RevisionMissing"
    fake_kube.set_inference_service(
        NS, "iris", ready=False, latest_created="iris-predictor-00001", reason="RevisionFailed",
        message='Revision "iris-predictor-00001" failed with message: model.joblib: no such file',
    )  # fmt: skip
    seen = backend.observe_services()[("vision", "iris")]
    assert not seen.ready and seen.reason == "RevisionFailed" and "no such file" in seen.message
    assert seen.latest_created_revision == "iris-predictor-00001" and seen.latest_ready_revision == ""


@pytest.mark.django_db
def test_a_service_being_deleted_is_no_longer_reported(fake_kube):
    backend = kserve_backend(fake_kube)
    backend.apply_service(service())
    stored(fake_kube)["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    stored(fake_kube)["metadata"]["resourceVersion"] = fake_kube.next_rv()
    assert backend.observe_services() == {}


# --- the fake backend ------------------------------------------------------------------------------------------


def test_the_fake_backend_serves_like_kserve():
    fake = FakeBackend()
    assert isinstance(fake, ServingBackend)
    fake.apply_service(service())
    first = fake.observe_services()[("vision", "iris")]
    assert not first.ready and first.latest_created_revision == "iris-predictor-00001"

    fake.set_service("vision", "iris", ready=True)
    seen = fake.observe_services()[("vision", "iris")]
    assert seen.ready and seen.traffic == [TrafficObservation("iris-predictor-00001", 100, latest=True)]

    fake.apply_service(service(storage_uri=V2, canary_percent=20))
    seen = fake.observe_services()[("vision", "iris")]
    assert seen.latest_created_revision == "iris-predictor-00002"
    assert seen.latest_ready_revision == "iris-predictor-00001"
    fake.set_service("vision", "iris", ready=True)
    assert fake.observe_services()[("vision", "iris")].traffic == [
        TrafficObservation("iris-predictor-00002", 20, latest=True),
        TrafficObservation("iris-predictor-00001", 80),
    ]

    fake.apply_service(service(storage_uri=V2))  # promoted: no new revision, all the traffic
    seen = fake.observe_services()[("vision", "iris")]
    assert seen.latest_created_revision == "iris-predictor-00002"
    assert seen.traffic == [TrafficObservation("iris-predictor-00002", 100, latest=True)]

    fake.apply_service(service(storage_uri="pvc://easyai-storage/models/vision/iris/3"))
    fake.set_service("vision", "iris", ready=False, message="model.joblib: no such file")
    seen = fake.observe_services()[("vision", "iris")]
    assert not seen.ready and seen.message == "model.joblib: no such file"

    fake.delete_service("vision", "iris")
    assert fake.observe_services() == {}
    assert [name for name, _ in fake.calls].count("apply_service") == 4


def test_the_fake_backend_refuses_what_kubernetes_refuses_and_fails_when_told():
    fake = FakeBackend()
    with pytest.raises(BackendRejected):
        fake.apply_service(service(deployment_mode="RawDeployment", canary_percent=20))
    fake.fail_apply = BackendError("the cluster did not answer")
    with pytest.raises(BackendError):
        fake.apply_service(service())
    fake.fail_observe_services = BackendError("the cluster did not answer")
    with pytest.raises(BackendError):
        fake.observe_services()
