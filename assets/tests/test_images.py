"""Registered images: who sees and changes them (API), the submit page's offer, a restricted cluster's refusal, the
framework's default filled in and the image a job ran recorded."""

from __future__ import annotations

import json

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext

from assets.images import FRAMEWORKS
from assets.models import Image
from clusters.models import Cluster
from jobs.models import Job
from jobs.spec import Framework

pytestmark = pytest.mark.django_db


@pytest.fixture
def images(team, other_team, staff):
    return {
        "platform": Image.objects.create(
            name="pytorch/pytorch", tags=["2.5", "2.4"], frameworks=["pytorch", "mpi"], default_for=["pytorch"],
            accelerator="gpu", description="PyTorch with CUDA",
        ),
        "team": Image.objects.create(team=team, name="vision/train", tags=["v3"], frameworks=["batch"]),
        "other": Image.objects.create(team=other_team, name="speech/secret", tags=["v1"], frameworks=["batch"]),
    }  # fmt: skip


def names(response) -> set[str]:
    assert response.status_code == 200, response.content
    return {row["name"] for row in response.json()["results"]}


def test_the_image_frameworks_are_the_jobs_frameworks():
    assert set(FRAMEWORKS) == set(Framework.values)


def test_members_list_the_platforms_images_and_their_teams_not_others(api, owner, mate, outsider, staff, images):
    assert names(api(owner).get("/api/v1/images/")) == {"pytorch/pytorch", "vision/train"}
    assert names(api(mate).get("/api/v1/images/")) == {"pytorch/pytorch", "vision/train"}
    assert names(api(outsider).get("/api/v1/images/")) == {"pytorch/pytorch", "speech/secret"}
    assert names(api(staff).get("/api/v1/images/")) == {"pytorch/pytorch", "vision/train", "speech/secret"}
    assert names(api(owner).get("/api/v1/images/?framework=mpi")) == {"pytorch/pytorch"}
    row = next(r for r in api(owner).get("/api/v1/images/").json()["results"] if r["name"] == "pytorch/pytorch")
    assert row["references"] == ["pytorch/pytorch:2.5", "pytorch/pytorch:2.4"] and row["team"] is None
    assert row["can_change"] is False


def test_the_image_list_takes_a_fixed_number_of_queries(api, owner, team):
    client = api(owner)
    client.get("/api/v1/images/")  # the token's first-use write
    counts = []
    for n in (2, 12):
        for i in range(len(Image.objects.all()), n):
            Image.objects.create(team=team, name=f"vision/img{i}", tags=["1"])
        with CaptureQueriesContext(connection) as captured:
            assert len(client.get("/api/v1/images/").json()["results"]) == n
        counts.append(len(captured))
    assert counts[0] == counts[1], counts


def test_outsiders_get_404_on_a_teams_image_and_members_403_on_changes(api, owner, mate, outsider, team_admin, images):
    image = images["team"]
    url = f"/api/v1/images/{image.pk}/"
    assert api(outsider).get(url).status_code == 404
    assert api(outsider).patch(url, {"description": "x"}, format="json").status_code == 404
    assert api(outsider).delete(url).status_code == 404
    assert api(owner).get(url).status_code == 200
    assert api(mate).patch(url, {"description": "x"}, format="json").status_code == 403
    assert api(owner).delete(url).status_code == 403
    response = api(team_admin).patch(url, {"description": "the team's", "tags": ["v3", "v4"]}, format="json")
    assert response.status_code == 200, response.content
    image.refresh_from_db()
    assert image.description == "the team's" and image.tags == ["v3", "v4"]
    assert api(team_admin).delete(url).status_code == 204
    assert not Image.objects.filter(pk=image.pk).exists()


def test_team_admins_register_their_teams_images_and_only_platform_admins_the_platforms(
    api, owner, team_admin, outsider, staff, team
):
    body = {"team": "vision", "name": "vision/eval", "tags": ["1.0"], "frameworks": ["batch"], "accelerator": "cpu"}
    assert api(owner).post("/api/v1/images/", body, format="json").status_code == 403
    assert api(outsider).post("/api/v1/images/", body, format="json").status_code == 400  # no such team for them
    response = api(team_admin).post("/api/v1/images/", body, format="json")
    assert response.status_code == 201, response.content
    assert Image.objects.get(name="vision/eval").team == team
    platform = {"name": "python", "tags": ["3.11-slim"], "frameworks": ["batch"], "default_for": ["batch"]}
    assert api(team_admin).post("/api/v1/images/", platform, format="json").status_code == 403
    response = api(staff).post("/api/v1/images/", platform, format="json")
    assert response.status_code == 201 and response.json()["team"] is None
    assert Image.objects.count() == 2


def test_a_bad_image_names_each_field_and_records_nothing(api, staff):
    body = {"name": "Not An Image!", "tags": ["ok", "bad tag"], "frameworks": ["cobol"], "default_for": ["batch"]}
    response = api(staff).post("/api/v1/images/", body, format="json")
    assert response.status_code == 400
    assert {"name", "tags", "frameworks"} <= set(response.json())
    clash = {"name": "b", "tags": ["1"], "frameworks": ["batch"], "default_for": ["batch"]}
    assert api(staff).post("/api/v1/images/", {**clash, "name": "a"}, format="json").status_code == 201
    response = api(staff).post("/api/v1/images/", clash, format="json")
    assert response.status_code == 400 and "default_for" in response.json()
    assert list(Image.objects.values_list("name", flat=True)) == ["a"]


def test_the_images_are_in_the_openapi_schema(api, owner):
    schema = api(owner).get("/api/schema/?format=json")
    assert schema.status_code == 200
    paths = json.loads(schema.content)["paths"]
    assert "/api/v1/images/" in paths and "/api/v1/images/{id}/" in paths
    assert {"get", "post"} <= set(paths["/api/v1/images/"])


def test_the_cluster_setting_must_be_true_or_false():
    cluster = Cluster(name="k", kind="local", settings={"registered_images_only": "yes"})
    with pytest.raises(ValidationError) as caught:
        cluster.full_clean()
    assert "registered_images_only" in str(caught.value)
    Cluster(name="k2", kind="local", settings={"registered_images_only": True}).full_clean()


# --- submitting --------------------------------------------------------------------------------


def spec(**extra) -> dict:
    return {"name": "t", "framework": "batch", "command": "true", "roles": {"worker": {"replicas": 1}}, **extra}


def submit(client, doc: dict):
    return client.post("/api/v1/jobs/", json.dumps(doc), content_type="application/json")


def test_a_restricted_cluster_refuses_an_unregistered_image_at_its_field_and_records_nothing(
    api, owner, fake_backend, images
):
    Cluster.objects.filter(pk=fake_backend.cluster.pk).update(settings={"registered_images_only": True})
    client = api(owner)
    response = submit(client, spec(image="python:3.11"))
    assert response.status_code == 400
    assert "registered images only" in response.json()["image"][0]
    response = submit(client, spec(roles={"worker": {"replicas": 1, "image": "speech/secret:v1"}}))
    assert response.status_code == 400 and set(response.json()) == {"roles.worker.image"}  # another team's
    response = submit(client, spec(image="vision/train:v9"))  # a tag not registered
    assert response.status_code == 400 and "image" in response.json()
    assert not Job.objects.exists()

    response = submit(client, spec(image="vision/train:v3"))
    assert response.status_code == 201, response.content
    assert Job.objects.get().spec["image"] == "vision/train:v3"


def test_a_free_image_runs_where_the_cluster_allows_it(api, owner, fake_backend, images):
    response = submit(api(owner), spec(image="python:3.11"))
    assert response.status_code == 201, response.content


def test_a_spec_without_an_image_gets_its_frameworks_default_and_the_job_page_shows_it(
    api, client, owner, fake_backend, images
):
    doc = {"name": "t", "framework": "pytorch", "command": "true", "roles": {"master": {"replicas": 1}}}
    response = submit(api(owner), doc)
    assert response.status_code == 201, response.content
    job = Job.objects.get(public_id=response.json()["id"])
    assert job.spec["image"] == "pytorch/pytorch:2.5"  # the first tag of the framework's default
    client.force_login(owner)
    page = client.get(f"/jobs/{job.public_id}/").content.decode()
    assert 'id="job-image">pytorch/pytorch:2.5<' in page
    # No default for batch: the spec stays without an image on a cluster that runs any.
    response = submit(api(owner), spec())
    assert Job.objects.get(public_id=response.json()["id"]).spec["image"] == ""


def test_a_restricted_cluster_refuses_a_spec_with_no_image_and_no_default(api, owner, fake_backend, images):
    Cluster.objects.filter(pk=fake_backend.cluster.pk).update(settings={"registered_images_only": True})
    response = submit(api(owner), spec())
    assert response.status_code == 400 and "name one" in response.json()["image"][0]
    doc = {"name": "t", "framework": "pytorch", "command": "true", "roles": {"master": {"replicas": 1}}}
    assert submit(api(owner), doc).status_code == 201  # the default is registered


def test_the_submit_page_offers_the_users_images_by_framework(client, owner, fake_backend, images):
    Cluster.objects.create(name="strict", kind="local", settings={"registered_images_only": True})
    client.force_login(owner)
    page = client.get("/jobs/new/").content.decode()
    assert 'list="image-names"' in page
    assert '<option value="pytorch/pytorch:2.5" data-frameworks="pytorch mpi">' in page
    assert '<option value="pytorch/pytorch:2.4"' in page and 'value="vision/train:v3"' in page
    assert "speech/secret" not in page
    assert "These clusters run registered images only: strict." in page


def test_the_submit_page_shows_a_restricted_clusters_refusal_at_the_image_field(client, owner, fake_backend, images):
    Cluster.objects.filter(pk=fake_backend.cluster.pk).update(settings={"registered_images_only": True})
    client.force_login(owner)
    form = {
        "source": "form", "name": "t", "framework": "batch", "image": "python:3.11", "command": "true",
        "workers": "1", "action": "submit",
    }  # fmt: skip
    response = client.post("/jobs/new/", form)
    assert response.status_code == 400
    assert 'id="id_image_error">The cluster fake runs registered images only' in response.content.decode()
    assert not Job.objects.exists()


def test_platform_admins_register_images_in_the_admin(client, team):
    from django.contrib.auth import get_user_model

    admin = get_user_model().objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(admin)
    form = {
        "name": "python", "tags": '["3.11-slim"]', "description": "", "frameworks": '["batch"]',
        "accelerator": "cpu", "default_for": '["batch"]',
    }  # fmt: skip
    response = client.post("/admin/assets/image/add/", form)
    assert response.status_code == 302, response.content.decode()[:3000]
    image = Image.objects.get(name="python")
    assert image.team is None and image.created_by == admin and image.default_for == ["batch"]
    assert client.get("/admin/assets/image/").status_code == 200
    assert client.get("/admin/jobs/jobtemplate/").status_code == 200


def test_the_images_page_lists_what_each_sees_and_lets_team_admins_register(
    client, owner, team_admin, outsider, images
):
    client.force_login(owner)
    page = client.get("/images/").content.decode()
    assert 'data-image="pytorch/pytorch"' in page and 'data-image="vision/train"' in page
    assert "speech/secret" not in page and 'id="image-register"' not in page  # a member registers nothing
    assert client.post(f"/images/{images['team'].pk}/delete/").status_code == 403
    client.force_login(outsider)
    assert client.post(f"/images/{images['team'].pk}/delete/").status_code == 404
    client.force_login(team_admin)
    page = client.get("/images/").content.decode()
    assert 'id="image-register"' in page and "every team (platform)" not in page
    form = {"team": "vision", "name": "vision/eval", "tags": "1.0, 0.9", "frameworks": "batch", "accelerator": "cpu"}
    assert client.post("/images/", form).status_code == 302
    assert Image.objects.get(name="vision/eval").tags == ["1.0", "0.9"]
    response = client.post("/images/", {**form, "team": "", "name": "python"})  # the platform's: not theirs
    assert response.status_code == 403 and not Image.objects.filter(name="python").exists()
    assert client.post(f"/images/{images['team'].pk}/delete/").status_code == 302
    assert not Image.objects.filter(pk=images["team"].pk).exists()
