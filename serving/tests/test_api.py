"""The serving API through the permission module: who may read and change models, versions, aliases, pull
tokens and services (owner, team-mate, team admin, outsider, anonymous); pull tokens as a read-only credential
for one team's files; refusals that name the field (400) or the conflict (409) and leave every row as it was;
list endpoints whose query count does not grow with their rows."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from clusters.backends.contract import storage
from jobs.models import Job
from serving import runtime, services
from serving.models import (
    AliasMove,
    InferenceService,
    ModelAlias,
    ModelVersion,
    PullToken,
    RegisteredModel,
    Revision,
    RevisionState,
)
from serving.store import model_store

pytestmark = pytest.mark.django_db

WHO = ["anonymous", "outsider", "owner", "mate", "team_admin", "staff"]
MODEL = "/api/v1/models/vision/iris/"
SERVICE = "/api/v1/services/vision/iris-svc/"


def snapshot() -> dict[str, list[dict]]:
    """Every row the serving app keeps, and the jobs: what a refused call must leave as it was."""
    tables = (RegisteredModel, ModelVersion, ModelAlias, AliasMove, PullToken, InferenceService, Revision, Job)
    return {table.__name__: list(table.objects.order_by("pk").values()) for table in tables}


def person(people, who):
    return None if who == "anonymous" else people[who]


def bearer(client, key: str):
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


def zipped(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def model_bytes(job) -> bytes:
    return (
        storage.output_dir(Path(settings.EASYAI_STORAGE_ROOT), job.public_id, "model_dir") / "model.joblib"
    ).read_bytes()


@pytest.fixture
def speech_model(people, other_team, finished_job) -> RegisteredModel:
    """Another team's model (the outsider's, in Speech), pushed as an archive."""
    archive = zipped({"model.joblib": model_bytes(finished_job)})
    return services.version_push(
        user=people["outsider"], team=other_team, name="iris", archive=archive, model_format="sklearn"
    ).model


# --- reads -------------------------------------------------------------------------------------------------

DETAIL_READS = [
    MODEL,
    f"{MODEL}versions/",
    f"{MODEL}versions/1/",
    f"{MODEL}versions/1/download/",
    f"{MODEL}versions/1/files/model.joblib",
    SERVICE,
]


def expected_read(who: str) -> int:
    return {"anonymous": 401, "outsider": 404}.get(who, 200)


@pytest.mark.parametrize("who", WHO)
def test_detail_reads_are_the_teams_an_outsider_gets_404_and_anonymous_401(api, people, service, who):
    client = api(person(people, who))
    seen = {url: client.get(url).status_code for url in DETAIL_READS}
    assert seen == dict.fromkeys(DETAIL_READS, expected_read(who))


@pytest.mark.parametrize("who", WHO)
def test_the_lists_show_the_teams_models_and_services_to_its_members_only(api, people, service, speech_model, who):
    client = api(person(people, who))
    models, services_ = client.get("/api/v1/models/"), client.get("/api/v1/services/")
    if who == "anonymous":
        assert (models.status_code, services_.status_code) == (401, 401)
        return
    assert models.status_code == services_.status_code == 200
    seen_models = sorted((m["team"], m["name"]) for m in models.json())
    seen_services = [(s["team"], s["name"]) for s in services_.json()]
    if who == "outsider":
        assert seen_models == [("speech", "iris")] and seen_services == []
    elif who == "staff":
        assert seen_models == [("speech", "iris"), ("vision", "iris")] and seen_services == [("vision", "iris-svc")]
    else:
        assert seen_models == [("vision", "iris")] and seen_services == [("vision", "iris-svc")]


def test_the_model_detail_has_its_versions_metrics_aliases_and_history(api, people, iris, finished_job):
    body = api(people["mate"]).get(MODEL).json()
    assert (body["team"], body["name"], body["owner"]) == ("vision", "iris", "owner")
    assert body["latest_version"] == 2 and body["versions"] == 2
    assert body["aliases"] == {"production": 1}
    assert [(m["alias"], m["from"], m["to"], m["by"]) for m in body["alias_history"]] == [
        ("production", None, 1, "owner")
    ]
    versions = {v["version"]: v for v in body["version_list"]}
    assert versions[2]["metrics"] == {"accuracy": 0.5, "f1": 0.4}
    assert versions[1]["aliases"] == ["production"] and versions[2]["aliases"] == []
    assert versions[1]["source_job"] == finished_job.public_id and versions[1]["lineage"]["experiment"] == "iris"
    assert sorted(f["path"] for f in versions[1]["files"]) == ["metrics.json", "model.joblib"]


# --- registering and changing models --------------------------------------------------------------------------


@pytest.mark.parametrize("who", ["owner", "mate", "team_admin"])
def test_any_team_member_adds_a_version_to_a_team_model(api, people, iris, finished_job, who):
    response = api(people[who]).post(
        f"{MODEL}versions/", {"job": finished_job.public_id, "format": "sklearn"}, format="json"
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["version"], body["registered_by"], body["source_job"]) == (
        3,
        people[who].username,
        finished_job.public_id,
    )
    assert RegisteredModel.objects.get(pk=iris.pk).owner == people["owner"]  # the model stays the owner's


def test_an_outsider_cannot_register_into_the_team_nor_with_the_teams_job(api, people, iris, finished_job, other_team):
    before = snapshot()
    client = api(people["outsider"])
    into_vision = client.post(f"{MODEL}versions/", {"job": finished_job.public_id, "format": "sklearn"}, format="json")
    assert into_vision.status_code == 400 and "team" in into_vision.json()
    with_the_job = client.post(
        "/api/v1/models/speech/iris/versions/", {"job": finished_job.public_id, "format": "sklearn"}, format="json"
    )
    assert with_the_job.status_code == 400 and "job" in with_the_job.json()
    assert snapshot() == before


def test_a_bad_registration_names_its_field_and_records_nothing(api, people, iris, finished_job):
    before = snapshot()
    client = api(people["owner"])
    for body, field in (
        ({"job": finished_job.public_id, "format": "pickle-jar"}, "format"),
        ({"job": finished_job.public_id, "format": "sklearn", "path": "../../etc"}, "path"),
        ({"job": finished_job.public_id, "format": "onnx"}, "path"),
        ({"job": finished_job.public_id, "format": "sklearn", "metrics": {"accuracy": "high"}}, "metrics"),
        ({"job": "j-nothere1", "format": "sklearn"}, "job"),
        ({"format": "sklearn"}, "job"),
    ):
        response = client.post(f"{MODEL}versions/", body, format="json")
        assert response.status_code == 400, (body, response.content)
        assert field in response.json(), (body, response.json())
    assert snapshot() == before
    assert model_store().list("models/vision/iris/3") == []


def test_a_pushed_archive_becomes_the_next_version(api, people, iris, finished_job):
    upload = io.BytesIO(zipped({"model.joblib": model_bytes(finished_job)}))
    upload.name = "iris.zip"
    response = api(people["mate"]).post(
        f"{MODEL}versions/", {"archive": upload, "format": "sklearn"}, format="multipart"
    )
    assert response.status_code == 201, response.content
    assert response.json()["version"] == 3 and response.json()["source_job"] == ""


def test_a_member_creates_a_model_in_the_team_and_an_outsider_cannot(api, people, iris):
    made = api(people["mate"]).post("/api/v1/models/", {"name": "resnet", "tags": {"task": "vision"}}, format="json")
    assert made.status_code == 201, made.content
    assert (made.json()["team"], made.json()["owner"], made.json()["tags"]) == ("vision", "mate", {"task": "vision"})
    before = snapshot()
    for who, body, field in (
        ("outsider", {"name": "resnet2", "team": "vision"}, "team"),
        ("owner", {"name": "iris"}, "name"),  # taken
        ("owner", {"name": "Bad Name"}, "name"),
    ):
        refused = api(people[who]).post("/api/v1/models/", body, format="json")
        assert refused.status_code == 400 and field in refused.json(), (who, refused.content)
    assert snapshot() == before
    changed = api(people["owner"]).patch(MODEL, {"description": "Iris flowers"}, format="json")
    assert changed.status_code == 200 and changed.json()["description"] == "Iris flowers"


# (method, url, body) of the calls that change a model: the owner's and team admins', not a team-mate's.
MODEL_CHANGES = [
    ("patch", MODEL, {"description": "changed"}),
    ("put", f"{MODEL}aliases/production/", {"version": 2}),
    ("put", f"{MODEL}aliases/staging/", {"version": 2}),
    ("delete", f"{MODEL}aliases/production/", None),
    ("delete", f"{MODEL}versions/2/", None),
    ("delete", MODEL, None),
]


def refused_calls(client, calls, expected: int) -> dict:
    """Each call's status where it is not ``expected`` or where it changed a row (none, when all is well)."""
    wrong = {}
    for method, url, body in calls:
        before = snapshot()
        response = getattr(client, method)(url, body, format="json")
        if response.status_code != expected or snapshot() != before:
            wrong[f"{method} {url} {body}"] = (response.status_code, snapshot() == before, response.content[:200])
    return wrong


@pytest.mark.parametrize(("who", "expected"), [("mate", 409), ("outsider", 404), ("anonymous", 401)])
def test_changing_a_model_is_refused_to_others_and_nothing_changes(api, people, iris, who, expected):
    assert refused_calls(api(person(people, who)), MODEL_CHANGES, expected) == {}
    assert model_store().list("models/vision/iris/2")


@pytest.mark.parametrize("who", ["owner", "team_admin"])
def test_the_owner_or_a_team_admin_moves_and_removes_an_alias_and_deletes_the_model(api, people, iris, who):
    client = api(people[who])
    moved = client.put(f"{MODEL}aliases/production/", {"version": 2}, format="json")
    assert moved.status_code == 200, moved.content
    assert moved.json()["aliases"] == {"production": 2}
    latest = moved.json()["alias_history"][0]
    assert (latest["alias"], latest["from"], latest["to"], latest["by"]) == ("production", 1, 2, people[who].username)
    assert client.delete(f"{MODEL}aliases/production/").status_code == 204
    assert client.delete(f"{MODEL}aliases/production/").status_code == 404
    assert client.get(MODEL).json()["aliases"] == {}
    assert client.delete(MODEL).status_code == 204
    assert not RegisteredModel.objects.exists() and model_store().list("models/vision/iris") == []


@pytest.mark.parametrize("who", ["owner", "team_admin"])
def test_the_owner_or_a_team_admin_reads_and_deletes_a_version(api, people, iris, who):
    client = api(people[who])
    read = client.get(f"{MODEL}versions/2/")
    assert read.status_code == 200 and read.json()["metrics"] == {"accuracy": 0.5, "f1": 0.4}
    assert client.delete(f"{MODEL}versions/1/").status_code == 204
    assert list(ModelVersion.objects.values_list("number", flat=True)) == [2]
    assert model_store().list("models/vision/iris/1") == []
    history = client.get(MODEL).json()["alias_history"]
    assert (history[0]["alias"], history[0]["from"], history[0]["to"]) == ("production", 1, None)  # its alias went


def test_an_alias_to_a_missing_version_is_400_naming_version_and_nothing_changes(api, people, iris):
    before = snapshot()
    response = api(people["owner"]).put(f"{MODEL}aliases/production/", {"version": 9}, format="json")
    assert response.status_code == 400 and "version" in response.json()
    assert snapshot() == before


# --- pull tokens ----------------------------------------------------------------------------------------------


def make_pull_token(api, admin, team_slug: str = "vision") -> tuple[int, str]:
    """(id, key) of a pull token the team's admin makes."""
    response = api(admin).post("/api/v1/pull-tokens/", {"team": team_slug, "name": "ci"}, format="json")
    assert response.status_code == 201, response.content
    return response.json()["id"], response.json()["token"]


def test_a_team_admin_makes_a_pull_token_shown_once(api, people, iris):
    response = api(people["team_admin"]).post("/api/v1/pull-tokens/", {"team": "vision", "name": "ci"}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    key = body["token"]
    assert key.startswith("eam_") and len(key) > 30
    assert (body["team"], body["name"], body["created_by"], body["hint"]) == ("vision", "ci", "teamadmin", key[:10])
    listed = api(people["team_admin"]).get("/api/v1/pull-tokens/")
    assert [t["name"] for t in listed.json()] == ["ci"]
    assert "token" not in listed.json()[0] and key not in listed.content.decode()
    assert PullToken.objects.get().key_hash != key  # only its hash is kept


@pytest.mark.parametrize("who", ["owner", "mate", "outsider"])
def test_only_a_team_admin_makes_or_sees_the_teams_pull_tokens(api, people, iris, who):
    token_id, _key = make_pull_token(api, people["team_admin"])
    before = snapshot()
    client = api(people[who])
    refused = client.post("/api/v1/pull-tokens/", {"team": "vision", "name": "mine"}, format="json")
    assert refused.status_code == 400 and "team" in refused.json()
    assert client.get("/api/v1/pull-tokens/").json() == []
    assert client.post(f"/api/v1/pull-tokens/{token_id}/revoke/").status_code == 404
    assert snapshot() == before


def test_a_pull_token_downloads_its_teams_versions(api, people, iris):
    _id, key = make_pull_token(api, people["team_admin"])
    client = bearer(api(None), key)
    version = ModelVersion.objects.get(model=iris, number=1)
    with model_store().open(f"{version.prefix}/model.joblib") as handle:
        stored = handle.read()
    response = client.get(f"{MODEL}versions/1/files/model.joblib")
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == stored
    archive = client.get(f"{MODEL}versions/1/download/")
    assert archive.status_code == 200 and archive["Content-Type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(b"".join(archive.streaming_content))) as unzipped:
        assert sorted(unzipped.namelist()) == ["metrics.json", "model.joblib"]
        assert unzipped.read("model.joblib") == stored
    assert client.get(f"{MODEL}versions/1/files/nothere.bin").status_code == 404
    assert client.get(f"{MODEL}versions/1/files/../2/model.joblib").status_code == 404
    assert client.get(f"{MODEL}versions/7/download/").status_code == 404
    assert PullToken.objects.get().last_used_at is not None


def test_a_pull_token_reads_no_other_teams_model(api, people, iris, speech_model):
    _id, key = make_pull_token(api, people["team_admin"])
    client = bearer(api(None), key)
    assert client.get("/api/v1/models/speech/iris/versions/1/download/").status_code == 404
    assert client.get("/api/v1/models/speech/iris/versions/1/files/model.joblib").status_code == 404
    # The other team's own token (the outsider administers Speech) reads it, and not vision's.
    _other_id, other_key = make_pull_token(api, people["outsider"], "speech")
    other = bearer(api(None), other_key)
    assert other.get("/api/v1/models/speech/iris/versions/1/download/").status_code == 200
    assert other.get(f"{MODEL}versions/1/download/").status_code == 404


def test_a_revoked_pull_token_is_401(api, people, iris):
    token_id, key = make_pull_token(api, people["team_admin"])
    client = bearer(api(None), key)
    assert client.get(f"{MODEL}versions/1/download/").status_code == 200
    revoked = api(people["team_admin"]).post(f"/api/v1/pull-tokens/{token_id}/revoke/")
    assert revoked.status_code == 200 and revoked.json()["revoked_at"]
    assert client.get(f"{MODEL}versions/1/download/").status_code == 401
    assert client.get(f"{MODEL}versions/1/files/model.joblib").status_code == 401
    assert bearer(api(None), "eam_not-a-token").get(f"{MODEL}versions/1/download/").status_code == 401


OTHER_CALLS = [
    ("get", "/api/v1/models/", None),
    ("get", MODEL, None),
    ("get", f"{MODEL}versions/", None),
    ("get", f"{MODEL}versions/1/", None),
    ("post", f"{MODEL}versions/", {"job": "j-whatever", "format": "sklearn"}),
    ("put", f"{MODEL}aliases/production/", {"version": 2}),
    ("delete", f"{MODEL}versions/2/", None),
    ("get", "/api/v1/services/", None),
    ("get", SERVICE, None),
    ("post", "/api/v1/services/", {"name": "x", "model": "iris"}),
    ("get", "/api/v1/pull-tokens/", None),
    ("post", "/api/v1/pull-tokens/", {"team": "vision", "name": "more"}),
    ("get", "/api/v1/jobs/", None),
]


@pytest.mark.parametrize("scheme", ["Bearer", "Token"])
def test_a_pull_token_calls_no_other_api(api, people, service, scheme):
    _id, key = make_pull_token(api, people["team_admin"])
    client = api(None)
    client.credentials(HTTP_AUTHORIZATION=f"{scheme} {key}")
    assert refused_calls(client, OTHER_CALLS, 401) == {}


# --- services -------------------------------------------------------------------------------------------------


def test_a_member_creates_a_service_on_the_fake_cluster_and_its_revision_starts(
    api, people, iris, fake_backend, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = api(people["mate"]).post(
            "/api/v1/services/", {"name": "iris-svc", "model": "iris", "version": 2, "memory": "1Gi"}, format="json"
        )
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["team"], body["name"], body["owner"], body["cluster"]) == ("vision", "iris-svc", "mate", "fake")
    assert (body["version"], body["state"], body["public"], body["traffic"]) == (2, "starting", False, [])
    assert body["url"].endswith("/serving/vision/iris-svc/")
    assert [(r["revision"], r["version"], r["state"]) for r in body["revisions"]] == [(1, 2, "starting")]
    revision = Revision.objects.get()
    assert revision.job is not None and revision.job.framework == "serving"
    assert list(fake_backend.jobs) == [revision.job.public_id] and fake_backend.submits() == 1


def test_a_service_following_an_alias_reports_the_aliases_version(api, people, iris):
    response = api(people["owner"]).post(
        "/api/v1/services/", {"name": "prod", "model": "iris", "alias": "production"}, format="json"
    )
    assert response.status_code == 201, response.content
    assert (response.json()["alias"], response.json()["version"]) == ("production", 1)


def test_only_a_team_admin_makes_a_service_public(api, people, service):
    before = snapshot()
    refused = api(people["owner"]).post(
        "/api/v1/services/", {"name": "open", "model": "iris", "public": True}, format="json"
    )
    assert refused.status_code == 400 and refused.json().keys() == {"public"}
    changed = api(people["owner"]).patch(SERVICE, {"public": True}, format="json")  # the owner's own service
    assert changed.status_code == 400 and changed.json().keys() == {"public"}
    assert snapshot() == before
    made = api(people["team_admin"]).post(
        "/api/v1/services/", {"name": "open", "model": "iris", "public": True}, format="json"
    )
    assert made.status_code == 201 and made.json()["public"] is True
    opened = api(people["team_admin"]).patch(SERVICE, {"public": True}, format="json")
    assert opened.status_code == 200 and opened.json()["public"] is True
    # ...and only a team admin makes it private again.
    assert api(people["owner"]).patch(SERVICE, {"public": False}, format="json").json().keys() == {"public"}
    assert api(people["team_admin"]).patch(SERVICE, {"public": False}, format="json").json()["public"] is False


BAD_SERVICES = [
    ({"name": "Bad Name", "model": "iris"}, "name"),
    ({"name": "iris-svc", "model": "iris"}, "name"),  # taken
    ({"name": "x", "model": "nomodel"}, "model"),
    ({"name": "x", "model": "iris", "version": 9}, "version"),
    ({"name": "x", "model": "iris", "alias": "staging"}, "alias"),
    ({"name": "x", "model": "iris", "version": 1, "alias": "production"}, "alias"),
    ({"name": "x", "model": "iris", "cpu": "lots"}, "cpu"),
    ({"name": "x", "model": "iris", "memory": "-1Gi"}, "memory"),
    ({"name": "x", "model": "iris", "gpu": 65}, "gpu"),
    ({"name": "x", "model": "iris", "min_replicas": 3, "max_replicas": 2}, "max_replicas"),
    ({"name": "x", "model": "iris", "min_replicas": 0}, "min_replicas"),  # the local cluster keeps one running
    ({"name": "x", "model": "iris", "cluster": "nowhere"}, "cluster"),
    ({"name": "x", "model": "iris", "team": "speech"}, "team"),
]


def test_a_bad_service_is_400_naming_its_field_and_records_nothing(api, people, service):
    client = api(people["owner"])
    wrong = {}
    for body, field in BAD_SERVICES:
        before = snapshot()
        response = client.post("/api/v1/services/", body, format="json")
        if response.status_code != 400 or field not in response.json() or snapshot() != before:
            wrong[str(body)] = (response.status_code, response.content[:200])
    assert wrong == {}


def test_an_outsider_cannot_create_a_service_of_the_teams_model(api, people, iris):
    before = snapshot()
    response = api(people["outsider"]).post(
        "/api/v1/services/", {"team": "vision", "name": "mine", "model": "iris"}, format="json"
    )
    assert response.status_code == 400 and "team" in response.json()
    own_team = api(people["outsider"]).post("/api/v1/services/", {"name": "mine", "model": "iris"}, format="json")
    assert own_team.status_code == 400 and "model" in own_team.json()  # Speech has no model iris yet
    assert snapshot() == before


# (method, url, body) of the calls that change a service: the owner's and team admins'.
SERVICE_CHANGES = [
    ("patch", SERVICE, {"cpu": "2"}),
    ("patch", SERVICE, {"version": 2}),
    ("patch", SERVICE, {"public": True}),
    ("post", f"{SERVICE}canary/", {"version": 2, "percent": 10}),
    ("post", f"{SERVICE}promote/", None),
    ("post", f"{SERVICE}rollback/", None),
    ("delete", SERVICE, None),
]


@pytest.mark.parametrize(("who", "expected"), [("mate", 409), ("outsider", 404), ("anonymous", 401)])
def test_changing_a_service_is_refused_to_others_and_nothing_changes(api, people, service, who, expected):
    assert refused_calls(api(person(people, who)), SERVICE_CHANGES, expected) == {}


@pytest.mark.parametrize("who", ["outsider", "anonymous"])
def test_try_it_is_refused_to_whoever_may_not_see_the_service(api, people, service, who):
    response = api(person(people, who)).post(f"{SERVICE}try/", {"body": {"instances": [[1, 2, 3, 4]]}}, format="json")
    assert response.status_code == {"outsider": 404, "anonymous": 401}[who]


def test_try_it_says_503_while_no_revision_answers(api, people, service):
    response = api(people["mate"]).post(f"{SERVICE}try/", {"body": {"instances": [[1, 2, 3, 4]]}}, format="json")
    assert response.status_code == 503 and "no revision ready" in response.json()["detail"]


# (url, body, the field named, status) of calls refused for what they ask, not for who asks.
REFUSED = [
    (f"{SERVICE}canary/", {"version": 2, "percent": 101}, "percent", 400),
    (f"{SERVICE}canary/", {"version": 2, "percent": -1}, "percent", 400),
    (f"{SERVICE}canary/", {"version": 9, "percent": 10}, "version", 400),
    (f"{SERVICE}canary/", {"percent": 10}, "version", 400),
    (f"{SERVICE}promote/", None, None, 409),  # no canary
    (f"{SERVICE}rollback/", None, None, 409),  # nothing served before
]


def test_refused_service_calls_name_the_field_or_the_conflict_and_change_nothing(api, people, service):
    client = api(people["owner"])
    wrong = {}
    for url, body, field, expected in REFUSED:
        before = snapshot()
        response = client.post(url, body, format="json")
        named = field is None or field in response.json()
        if response.status_code != expected or not named or snapshot() != before:
            wrong[f"{url} {body}"] = (response.status_code, response.content[:200])
    assert wrong == {}


def test_deleting_a_version_in_use_names_the_service(api, people, service):
    before = snapshot()
    response = api(people["team_admin"]).delete(f"{MODEL}versions/1/")
    assert response.status_code == 409
    assert "vision/iris-svc" in response.json()["detail"]
    assert snapshot() == before


def test_deleting_a_model_or_an_alias_in_use_names_the_service(api, people, service):
    followed = api(people["owner"]).post(
        "/api/v1/services/", {"name": "prod", "model": "iris", "alias": "production"}, format="json"
    )
    assert followed.status_code == 201
    before = snapshot()
    refused = api(people["team_admin"]).delete(MODEL)
    assert refused.status_code == 409 and "vision/iris-svc" in refused.json()["detail"]
    refused = api(people["owner"]).delete(f"{MODEL}aliases/production/")
    assert refused.status_code == 409 and "vision/prod" in refused.json()["detail"]
    assert snapshot() == before
    assert model_store().list("models/vision/iris/1")


def test_deleting_the_version_a_followed_alias_points_at_is_409_even_when_nothing_serves(api, people, iris, settings):
    followed = api(people["owner"]).post(
        "/api/v1/services/", {"name": "prod", "model": "iris", "alias": "production"}, format="json"
    )
    assert followed.status_code == 201
    # Its first revision never answers (its job never came): it takes no traffic, and nothing serves.
    settings.EASYAI_SERVING_START_TIMEOUT = 0
    runtime.settle(InferenceService.objects.get(name="prod").pk)
    assert InferenceService.objects.get(name="prod").state == "failed"
    before = snapshot()
    response = api(people["owner"]).delete(f"{MODEL}versions/1/")
    assert response.status_code == 409, response.status_code
    assert "vision/prod" in response.json()["detail"]
    assert snapshot() == before


def ready(revision: Revision) -> None:
    """The revision answered its readiness check (what the sync pass records from its job)."""
    Revision.objects.filter(pk=revision.pk).update(state=RevisionState.READY, ready_at=timezone.now())


def test_canary_promote_and_rollback_by_the_owner(api, people, service):
    client = api(people["owner"])
    ready(service.next)
    InferenceService.objects.filter(pk=service.pk).update(primary=service.next, next=None)
    canary = client.post(f"{SERVICE}canary/", {"version": 2, "percent": 20}, format="json")
    assert canary.status_code == 200, canary.content
    assert (canary.json()["canary_version"], canary.json()["canary_percent"]) == (2, 20)
    assert canary.json()["traffic"] == [{"revision": 1, "version": 1, "percent": 100, "role": "primary"}]
    # Not yet answering: promote is refused, nothing changes.
    before = snapshot()
    assert client.post(f"{SERVICE}promote/").status_code == 409
    assert snapshot() == before
    ready(Revision.objects.get(number=2))
    split = client.get(SERVICE).json()["traffic"]
    assert [(s["revision"], s["percent"], s["role"]) for s in split] == [(1, 80, "primary"), (2, 20, "canary")]
    promoted = client.post(f"{SERVICE}promote/")
    assert promoted.status_code == 200, promoted.content
    assert (promoted.json()["version"], promoted.json()["canary_version"]) == (2, None)
    assert promoted.json()["traffic"] == [{"revision": 2, "version": 2, "percent": 100, "role": "primary"}]
    assert Revision.objects.get(number=1).state == RevisionState.RETIRED
    rolled = client.post(f"{SERVICE}rollback/")
    assert rolled.status_code == 200, rolled.content
    assert rolled.json()["version"] == 1
    assert [(r["revision"], r["version"], r["state"]) for r in rolled.json()["revisions"]][0] == (3, 1, "starting")
    assert client.delete(SERVICE).status_code == 204
    assert not InferenceService.objects.exists()


def test_a_team_admin_changes_and_deletes_a_members_service(api, people, service):
    client = api(people["team_admin"])
    changed = client.patch(SERVICE, {"cpu": "2", "memory": "1Gi"}, format="json")
    assert changed.status_code == 200 and (changed.json()["cpu"], changed.json()["memory"]) == ("2", "1Gi")
    assert client.delete(SERVICE).status_code == 204
    assert not InferenceService.objects.exists()
    assert client.delete(MODEL).status_code == 204  # no longer in use


# --- query counts ----------------------------------------------------------------------------------------------


def _queries(client, url: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200
    return len(queries)


def _more_models(count: int, start: int, people, finished_job) -> None:
    for n in range(start, start + count):
        version = services.version_register(
            user=people["owner"], job=finished_job, name=f"m{n}", model_format="sklearn"
        )
        services.alias_set(user=people["owner"], model=version.model, alias="production", number=1)


def test_the_model_list_runs_the_same_queries_for_2_models_as_for_12(api, people, finished_job):
    client = api(people["mate"])
    _more_models(2, 0, people, finished_job)
    client.get("/api/v1/models/")  # once-per-process and once-a-minute reads (content types, the token's use)
    two = _queries(client, "/api/v1/models/")
    _more_models(10, 2, people, finished_job)
    assert len(client.get("/api/v1/models/").json()) == 12
    assert _queries(client, "/api/v1/models/") == two


def _more_services(count: int, start: int, people, team, *, aliases: bool) -> None:
    for n in range(start, start + count):
        follow = {"alias": "production"} if aliases and n % 2 else {"version": 2}
        service = services.service_create(user=people["owner"], team=team, name=f"s{n}", model="iris", **follow)
        # Half of them serving, with a canary: the traffic column reads both revisions.
        if n % 2 == 0:
            ready(service.next)
            InferenceService.objects.filter(pk=service.pk).update(primary=service.next, next=None)
            services.service_canary(user=people["owner"], service=service, version=1, percent=10)


def test_the_service_list_runs_the_same_queries_for_2_fixed_version_services_as_for_12(api, people, iris, team):
    client = api(people["mate"])
    _more_services(2, 0, people, team, aliases=False)
    client.get("/api/v1/services/")
    two = _queries(client, "/api/v1/services/")
    _more_services(10, 2, people, team, aliases=False)
    assert len(client.get("/api/v1/services/").json()) == 12
    assert _queries(client, "/api/v1/services/") == two


def test_the_service_list_runs_the_same_queries_for_2_services_as_for_12_half_following_an_alias(
    api, people, iris, team
):
    client = api(people["mate"])
    _more_services(2, 0, people, team, aliases=True)
    client.get("/api/v1/services/")
    two = _queries(client, "/api/v1/services/")
    _more_services(10, 2, people, team, aliases=True)
    assert len(client.get("/api/v1/services/").json()) == 12
    assert _queries(client, "/api/v1/services/") == two
