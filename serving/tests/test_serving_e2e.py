"""End to end on the local backend, with real processes: the example trains as a real job, its model_dir is
registered, served by the KServe model server, and called through ``/serving/…`` on the endpoint origin.

One service lives through the whole story: V1 and V2 answers are the model's own; gRPC answers the same; a
canary at 20 % takes 20 ± 5 % of 1,000 calls; a version that fails to load never takes traffic while the old
one keeps answering; promote and roll back; an outsider gets 404 and an anonymous caller 401 until a team
admin makes the service public.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import joblib
import numpy as np
import pytest
import yaml
from django.conf import settings

from clusters.backends.contract import storage
from jobs import services as job_services
from jobs.models import Job
from jobs.workers import sync as job_sync
from serving import proxy, runtime, services
from serving.api import grpc_of
from serving.models import InferenceService
from serving.store import model_store
from testing.wait import wait_until
from testing.web import fetch

pytestmark = pytest.mark.slow

REPO = Path(settings.BASE_DIR)
SAMPLES = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]]


def _settle(cluster) -> None:
    job_sync.cluster_sync(cluster)
    runtime.sync_cluster(cluster)


def _fresh(service: InferenceService) -> InferenceService:
    return InferenceService.objects.select_related("primary__version", "canary__version", "next__version").get(
        pk=service.pk
    )


def _wait(service: InferenceService, cluster, check, what: str, timeout: float = 120.0) -> InferenceService:
    def settled():
        _settle(cluster)
        fresh = _fresh(service)
        return fresh if check(fresh) else None

    return wait_until(settled, timeout, what, every=0.3)


def _train(owner, team, cluster, c: float) -> Job:
    """The example's own job spec, run for real: train.py from the owner's workspace."""
    workspace = storage.personal_workspace(Path(settings.EASYAI_STORAGE_ROOT), owner.username)
    (workspace / "examples" / "serving").mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "examples" / "serving" / "train.py", workspace / "examples" / "serving" / "train.py")
    spec = yaml.safe_load((REPO / "examples" / "serving" / "job.yaml").read_text())
    spec.update(team=team.slug, command=f"python examples/serving/train.py --c {c}")
    job = job_services.job_submit(user=owner, data=spec)

    def ended():
        job_sync.cluster_sync(cluster)
        job.refresh_from_db()
        return job if job.is_final else None

    wait_until(ended, 120, "the training job to end", every=0.2)
    assert job.state == "success", (job.state, job.message)
    return job


def _call(port: int, path: str, user, body: dict | None = None) -> tuple[int, dict, str]:
    status, headers, raw = fetch(
        port,
        path,
        method="POST" if body is not None else "GET",
        user=user,
        body=json.dumps(body).encode() if body is not None else None,
        Content_Type="application/json",
    )
    try:
        answer = json.loads(raw or b"null")
    except ValueError:
        answer = {"raw": raw.decode(errors="replace")}
    return status, answer, headers.get("X-EasyAI-Revision", "")


def _own_predictions(version_prefix: str) -> list:
    with model_store().open(f"{version_prefix}/model.joblib") as handle:
        model = joblib.load(handle)
    return model.predict(np.array(SAMPLES)).tolist()


def test_a_trained_model_is_registered_served_split_promoted_and_rolled_back(
    asgi_server, local_cluster, stop_all, people, team
):
    owner, outsider, team_admin = people["owner"], people["outsider"], people["team_admin"]
    port = asgi_server.port
    proxy.forget_routes()

    # Train, register, serve.
    job = _train(owner, team, local_cluster, c=1.0)
    status, version, _rev = _call(
        port, f"/api/v1/models/{team.slug}/iris/versions/", owner, {"job": job.public_id, "format": "sklearn"}
    )
    assert status == 201, version
    assert version["version"] == 1 and version["metrics"]["c"] == 1.0 and version["source_job"] == job.public_id
    status, created, _rev = _call(
        port, "/api/v1/services/", owner, {"team": team.slug, "name": "iris", "model": "iris", "cpu": "1", "memory": "1Gi"}
    )
    assert status == 201, created
    service = InferenceService.objects.get(team=team, name="iris")
    service = _wait(service, local_cluster, lambda s: s.primary is not None, "revision 1 to serve")
    assert service.state == "ready"

    base = f"/serving/{team.slug}/iris"
    expected = _own_predictions("models/vision/iris/1")
    status, answer, revision = _call(port, f"{base}/v1/models/iris:predict", owner, {"instances": SAMPLES})
    assert status == 200, answer
    assert answer["predictions"] == expected
    assert revision == "1"
    v2_body = {"inputs": [{"name": "input-0", "shape": [3, 4], "datatype": "FP64", "data": sum(SAMPLES, [])}]}
    status, answer, _rev = _call(port, f"{base}/v2/models/iris/infer", owner, v2_body)
    assert status == 200, answer
    assert answer["outputs"][0]["data"] == expected
    status, _answer, _rev = _call(port, f"{base}/v2/health/ready", owner)
    assert status == 200
    # A malformed body is the model server's 400, passed through.
    status, answer, _rev = _call(port, f"{base}/v1/models/iris:predict", owner, {"instances": [[1.0, 2.0]]})
    assert status == 400, answer

    # gRPC, on the serving revision's own port (callers on this host).
    import grpc
    from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
    from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc as pb_grpc

    service = InferenceService.objects.select_related("cluster", "primary__job").get(pk=service.pk)
    address = grpc_of(service)["address"]
    assert address
    with grpc.insecure_channel(address) as channel:
        request = pb.ModelInferRequest(model_name="iris")
        tensor = request.inputs.add(name="input-0", datatype="FP64", shape=[3, 4])
        tensor.contents.fp64_contents.extend(sum(SAMPLES, []))
        reply = pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request, timeout=30)
    output = reply.outputs[0]
    values = list(output.contents.int64_contents or output.contents.int32_contents)
    if not values and reply.raw_output_contents:
        values = np.frombuffer(reply.raw_output_contents[0], dtype=np.int64).tolist()
    assert values == expected

    # Who may call: an outsider never learns it exists; an anonymous caller must sign in, until it is public.
    assert _call(port, f"{base}/v1/models/iris:predict", outsider, {"instances": SAMPLES})[0] == 404
    assert _call(port, f"{base}/v1/models/iris:predict", None, {"instances": SAMPLES})[0] == 401
    services.service_update(user=team_admin, service=service, public=True)
    proxy.forget_routes()
    assert _call(port, f"{base}/v1/models/iris:predict", None, {"instances": SAMPLES})[0] == 200
    services.service_update(user=team_admin, service=service, public=False)
    proxy.forget_routes()

    # A canary at 20 % takes 20 ± 5 % of 1,000 calls.
    second = _train(owner, team, local_cluster, c=0.05)
    services.version_register(user=owner, job=second, name="iris", model_format="sklearn")
    services.service_canary(user=owner, service=service, version=2, percent=20)
    service = _wait(service, local_cluster, lambda s: s.canary is not None and s.canary.state == "ready", "the canary")
    canary_number = str(service.canary.number)
    proxy.forget_routes()
    seen = Counter(_call(port, f"{base}/v1/models/iris:predict", owner, {"instances": SAMPLES[:1]})[2] for _ in range(1000))
    assert set(seen) == {"1", canary_number}, seen
    assert 150 <= seen[canary_number] <= 250, seen

    # A version that fails to load never takes traffic; the service keeps serving what it served, and says why.
    broken = services.version_push(
        user=owner, team=team, name="iris", archive=_zip({"model.joblib": b"this is not a pickle"}), model_format="sklearn"
    )
    services.service_update(user=owner, service=service, version=broken.number)
    service = _wait(service, local_cluster, lambda s: s.next is None and "failed to load" in s.message, "v3 to fail")
    assert service.primary.version.number == 1
    assert f"version {broken.number}" in service.message
    proxy.forget_routes()
    status, answer, revision = _call(port, f"{base}/v1/models/iris:predict", owner, {"instances": SAMPLES})
    assert status == 200 and revision in ("1", canary_number)

    # Promote: the canary takes every call; roll back: version 1 again, in a new revision.
    services.service_promote(user=owner, service=service)
    proxy.forget_routes()
    service = _fresh(service)
    assert service.primary.version.number == 2 and service.canary is None
    revisions = {_call(port, f"{base}/v1/models/iris:predict", owner, {"instances": SAMPLES})[2] for _ in range(30)}
    assert revisions == {canary_number}
    services.service_rollback(user=owner, service=service)
    service = _wait(service, local_cluster, lambda s: s.primary is not None and s.primary.version.number == 1 and s.next is None, "the rollback")
    proxy.forget_routes()
    status, answer, revision = _call(port, f"{base}/v1/models/iris:predict", owner, {"instances": SAMPLES})
    assert status == 200 and answer["predictions"] == expected
    assert revision == str(service.primary.number)

    # Two replicas: a new revision with two model servers, both answering before it takes over.
    services.service_update(user=owner, service=service, min_replicas=2, max_replicas=2)
    service = _wait(service, local_cluster, lambda s: s.next is None and s.primary.version.number == 1 and s.primary.job.tasks.count() == 2, "two replicas")
    assert all("http" in t.ready_endpoints for t in service.primary.job.tasks.all())
    proxy.forget_routes()
    replies = [_call(port, f"{base}/v1/models/iris:predict", owner, {"instances": SAMPLES}) for _ in range(20)]
    assert {(status, tuple(answer["predictions"])) for status, answer, _rev in replies} == {(200, tuple(expected))}
    service.refresh_from_db()
    assert service.requests > 900  # counted by the proxy, added to the row every couple of seconds


def _zip(files: dict[str, bytes]) -> bytes:
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _set_cookie(headers, name: str) -> str:
    (cookie,) = [c for c in headers.get_all("Set-Cookie") or [] if c.startswith(f"{name}=")]
    return cookie.split(";", 1)[0]


def test_a_browser_signs_in_to_a_service_through_the_portal_and_its_cookie_serves_that_service_only(
    origins, local_cluster, stop_all, people, team, tmp_path
):
    """The endpoint origin's sign-in, for a service: no credential → the portal (signed in, allowed) → a ticket
    for this one service → its cookie; a call riding on the cookie from another site is refused."""
    from django.test import Client

    from serving.tests.conftest import train_iris

    owner, outsider = people["owner"], people["outsider"]
    train_iris(tmp_path / "model")
    archive = _zip({p.name: p.read_bytes() for p in (tmp_path / "model").iterdir()})
    services.version_push(user=owner, team=team, name="iris", archive=archive, model_format="sklearn")
    service = services.service_create(user=owner, team=team, name="iris", model="iris", memory="1Gi")
    _wait(service, local_cluster, lambda s: s.primary is not None, "revision 1 to serve")
    proxy.forget_routes()

    def session(user) -> str:
        client = Client()
        client.force_login(user)
        return f"sessionid={client.cookies['sessionid'].value}"

    path = f"/serving/{team.slug}/iris/v2/health/ready"
    status, headers, _body = fetch(origins.port, path, Host=origins.endpoints, Accept="text/html")
    assert status == 302 and headers["Location"].startswith(f"http://{origins.portal}{path}?_easyai_state=")
    state = _set_cookie(headers, "easyai_state")
    back = headers["Location"][len(f"http://{origins.portal}") :]
    # An outsider signed in on the portal learns nothing; the owner gets a ticket for this service.
    assert fetch(origins.port, back, Host=origins.portal, Cookie=session(outsider))[0] == 404
    status, headers, _body = fetch(origins.port, back, Host=origins.portal, Cookie=session(owner))
    assert status == 302 and "_easyai_ticket=" in headers["Location"], (status, headers)
    ticket_path = headers["Location"][len(f"http://{origins.endpoints}") :]
    status, headers, _body = fetch(origins.port, ticket_path, Host=origins.endpoints, Cookie=state)
    assert status == 302 and headers["Location"] == path
    credential = _set_cookie(headers, "easyai_endpoint")
    assert f"Path=/serving/{team.slug}/iris/" in next(
        c for c in headers.get_all("Set-Cookie") if c.startswith("easyai_endpoint=")
    )
    # The ticket is spent.
    assert fetch(origins.port, ticket_path, Host=origins.endpoints, Cookie=state)[0] == 403

    assert fetch(origins.port, path, Host=origins.endpoints, Cookie=credential)[0] == 200
    predict = f"/serving/{team.slug}/iris/v1/models/iris:predict"
    body = json.dumps({"instances": SAMPLES}).encode()
    call = {"Host": origins.endpoints, "method": "POST", "body": body, "Content_Type": "application/json"}
    status, _headers, raw = fetch(origins.port, predict, Cookie=credential, Sec_Fetch_Site="same-origin", **call)
    assert status == 200 and len(json.loads(raw)["predictions"]) == 3
    status, _headers, _raw = fetch(origins.port, predict, Cookie=credential, Origin="http://evil.example", **call)
    assert status == 403
    # Without the cookie: a script gets 401.
    assert fetch(origins.port, predict, **call)[0] == 401
