"""Job templates: rendering with values, saving a job as one, who sees and changes them, the API, the pages and
the submit page's picker."""

from __future__ import annotations

import json

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from jobs import templates
from jobs.models import Job, JobTemplate

pytestmark = pytest.mark.django_db

SPEC = {
    "name": "train",
    "framework": "pytorch",
    "image": "pytorch/pytorch:2.5",
    "command": "python train.py --epochs {{epochs}} --lr {{lr}}",
    "roles": {"master": {"replicas": 1}, "worker": {"replicas": "{{workers}}", "env": {"EPOCHS": "{{epochs}}"}}},
}
FIELDS = {
    "epochs": {"description": "epochs", "default": "10"},
    "lr": {"description": "learning rate"},
    "workers": {"default": "2"},
}


@pytest.fixture
def template(owner, team) -> JobTemplate:
    return templates.template_create(user=owner, team=team, name="train", spec=SPEC, fields=FIELDS)


def test_a_template_renders_with_values_and_defaults(template):
    spec = templates.render(template, {"lr": "0.1", "workers": "3"})
    assert spec["command"] == "python train.py --epochs 10 --lr 0.1"
    assert spec["roles"]["worker"]["replicas"] == 3  # a whole number where the spec wants one
    assert spec["roles"]["worker"]["env"] == {"EPOCHS": "10"}  # a string where the spec wants one


def test_unknown_and_missing_fields_are_refused_naming_them(template):
    with pytest.raises(ValidationError) as caught:
        templates.render(template, {"epoch": "3"})
    text = " ".join(caught.value.message_dict["values"])
    assert "no field epoch" in text and "Give a value for lr" in text


def test_a_value_cannot_change_the_specs_shape(template):
    spec = templates.render(template, {"lr": "1\nimage: evil", "workers": "2"})
    assert spec["image"] == "pytorch/pytorch:2.5" and spec["command"].endswith("--lr 1\nimage: evil")


def test_a_template_must_declare_what_it_uses_and_use_what_it_declares(owner, team):
    with pytest.raises(ValidationError) as caught:
        templates.template_create(user=owner, team=team, name="t", spec=SPEC, fields={"epochs": {}, "extra": {}})
    text = " ".join(caught.value.message_dict["fields"])
    assert "does not declare: lr, workers" in text and "never uses: extra" in text
    bad = {**SPEC, "framework": "cobol"}
    with pytest.raises(ValidationError) as caught:
        templates.template_create(user=owner, team=team, name="t", spec=bad, fields=FIELDS)
    assert "spec.framework" in caught.value.message_dict
    assert not JobTemplate.objects.exists()


def test_a_job_saved_as_a_template_turns_the_chosen_values_into_fields(owner, team, fake_backend):
    from jobs import services

    job = services.job_submit(
        user=owner,
        data={"name": "j", "framework": "batch", "command": "python t.py --epochs 20", "env": {"LR": "0.5"},
              "roles": {"worker": {"replicas": 3}}},
    )  # fmt: skip
    template = templates.template_from_job(
        user=owner, job=job, name="from-job",
        fields={"workers": {"path": "roles.worker.replicas"}, "epochs": {"path": "command", "text": "20"},
                "lr": {"path": "env.LR"}},
    )  # fmt: skip
    assert template.fields == {
        "workers": {"description": "", "default": "3"},
        "epochs": {"description": "", "default": "20"},
        "lr": {"description": "", "default": "0.5"},
    }
    assert template.team == team and template.owner == owner
    spec = templates.render(template, {"workers": "5", "epochs": "7"})
    assert spec["roles"]["worker"]["replicas"] == 5 and spec["command"][-1] == "python t.py --epochs 7"
    with pytest.raises(ValidationError) as caught:
        templates.template_from_job(user=owner, job=job, name="x", fields={"a": {"path": "roles.nope.replicas"}})
    assert "no value at 'roles.nope.replicas'" in caught.value.message_dict["fields"][0]


# --- who sees and changes them ------------------------------------------------------------------------


def test_team_templates_are_the_teams_and_platform_templates_everyones(api, template, owner, mate, outsider, staff):
    templates.load_platform_templates(user=staff)
    shipped = {"batch", "mpi-horovod", "paddle", "pytorch-ddp", "tensorflow-ps", "xgboost"}

    def listed(user) -> set[str]:
        response = api(user).get("/api/v1/templates/")
        assert response.status_code == 200
        return {(row["team"] or "") + "/" + row["name"] for row in response.json()["results"]}

    assert listed(owner) == listed(mate) == {"vision/train"} | {f"/{n}" for n in shipped}
    assert listed(outsider) == {f"/{n}" for n in shipped}
    url = f"/api/v1/templates/{template.pk}/"
    assert api(outsider).get(url).status_code == 404
    assert api(outsider).delete(url).status_code == 404
    assert api(outsider).post(f"{url}submit/", {}, format="json").status_code == 404
    assert api(mate).get(url).status_code == 200
    assert api(mate).delete(url).status_code == 403
    platform = JobTemplate.objects.get(name="batch")
    assert api(owner).delete(f"/api/v1/templates/{platform.pk}/").status_code == 403
    assert api(owner).delete(url).status_code == 204
    assert not JobTemplate.objects.filter(pk=template.pk).exists()


def test_a_team_admin_deletes_a_mates_template(api, template, team_admin):
    assert api(team_admin).delete(f"/api/v1/templates/{template.pk}/").status_code == 204


def test_the_template_list_takes_a_fixed_number_of_queries(api, owner, team):
    client = api(owner)
    client.get("/api/v1/templates/")
    counts = []
    for n in (1, 8):
        for i in range(JobTemplate.objects.count(), n):
            spec = {**SPEC, "name": f"t{i}"}
            templates.template_create(user=owner, team=team, name=f"t{i}", spec=spec, fields=FIELDS)
        with CaptureQueriesContext(connection) as captured:
            assert len(client.get("/api/v1/templates/").json()["results"]) == n
        counts.append(len(captured))
    assert counts[0] == counts[1], counts


# --- the API ------------------------------------------------------------------------------------------


def test_post_a_template_then_submit_it_with_values(api, owner, fake_backend):
    client = api(owner)
    response = client.post(
        "/api/v1/templates/", {"name": "train", "spec": SPEC, "fields": FIELDS, "description": "d"}, format="json"
    )
    assert response.status_code == 201, response.content
    pk = response.json()["id"]
    assert response.json()["team"] == "vision"
    response = client.post(f"/api/v1/templates/{pk}/submit/", {"values": {"lr": "0.01"}}, format="json")
    assert response.status_code == 201, response.content
    job = Job.objects.get(public_id=response.json()["id"])
    assert job.spec["command"][-1] == "python train.py --epochs 10 --lr 0.01"
    assert job.spec["roles"]["worker"]["replicas"] == 2 and job.team.slug == "vision"

    response = client.post(f"/api/v1/templates/{pk}/submit/", {"values": {"nope": "1"}}, format="json")
    assert response.status_code == 400 and "nope" in response.json()["values"][0]
    assert Job.objects.count() == 1
    response = client.post(f"/api/v1/templates/{pk}/submit/", {"values": {"lr": "1"}, "dry_run": True}, format="json")
    assert response.status_code == 200 and response.json()["spec"]["command"][-1].endswith("--lr 1")
    assert Job.objects.count() == 1


def test_post_a_template_from_a_job(api, owner, outsider, fake_backend):
    job = (
        api(owner)
        .post(
            "/api/v1/jobs/",
            json.dumps({"name": "j", "framework": "batch", "command": "run", "roles": {"worker": {"replicas": 2}}}),
            content_type="application/json",
        )
        .json()
    )
    body = {"name": "again", "from_job": job["id"], "fields": {"workers": {"path": "roles.worker.replicas"}}}
    assert api(outsider).post("/api/v1/templates/", body, format="json").status_code == 400  # not a job they see
    response = api(owner).post("/api/v1/templates/", body, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["fields"] == {"workers": {"description": "", "default": "2"}}


def test_only_platform_admins_post_platform_templates(api, owner, staff):
    body = {"team": "platform", "name": "p", "spec": SPEC, "fields": FIELDS}
    assert api(owner).post("/api/v1/templates/", body, format="json").status_code == 403
    response = api(staff).post("/api/v1/templates/", body, format="json")
    assert response.status_code == 201 and response.json()["team"] is None


def test_templates_are_in_the_openapi_schema(api, owner):
    paths = json.loads(api(owner).get("/api/schema/?format=json").content)["paths"]
    assert {"get", "post"} <= set(paths["/api/v1/templates/"])
    assert {"get", "delete"} <= set(paths["/api/v1/templates/{id}/"])
    assert "post" in paths["/api/v1/templates/{id}/submit/"]


def test_load_templates_loads_every_shipped_template_and_refreshes_them(db):
    call_command("load_templates")
    first = dict(JobTemplate.objects.filter(team=None).values_list("name", "pk"))
    assert set(first) == {"batch", "mpi-horovod", "paddle", "pytorch-ddp", "tensorflow-ps", "xgboost"}
    assert set(JobTemplate.objects.values_list("framework", flat=True)) == {
        "batch", "mpi", "paddle", "pytorch", "tensorflow", "xgboost"
    }  # fmt: skip
    assert all(t.description for t in JobTemplate.objects.all())
    call_command("load_templates")
    assert dict(JobTemplate.objects.filter(team=None).values_list("name", "pk")) == first


# --- pages --------------------------------------------------------------------------------------------


def test_the_submit_pages_picker_fills_the_form_from_a_template(client, owner, template, fake_backend):
    client.force_login(owner)
    page = client.get("/jobs/new/").content.decode()
    assert 'id="template-picker"' in page and f'<option value="{template.pk}"' in page
    page = client.get(f"/jobs/new/?template={template.pk}&set-lr=0.3&set-workers=4").content.decode()
    assert 'name="set-epochs"' in page and 'name="set-lr" id="set-lr" value="0.3"' in page
    assert "python train.py --epochs 10 --lr 0.3" in page and "replicas: 4" in page
    page = client.get(f"/jobs/new/?template={template.pk}")
    assert "Give a value for lr" in page.content.decode()


def test_an_outsider_cannot_pick_a_teams_template(client, outsider, template):
    client.force_login(outsider)
    assert client.get(f"/jobs/new/?template={template.pk}").status_code == 404


def test_the_templates_page_lists_and_deletes(client, owner, mate, outsider, template):
    client.force_login(mate)
    page = client.get("/jobs/templates/").content.decode()
    assert 'data-template="train"' in page and "job-template-delete" not in page
    assert client.post(f"/jobs/templates/{template.pk}/delete/").status_code == 403
    client.force_login(outsider)
    assert 'data-template="train"' not in client.get("/jobs/templates/").content.decode()
    assert client.post(f"/jobs/templates/{template.pk}/delete/").status_code == 404
    client.force_login(owner)
    assert client.post(f"/jobs/templates/{template.pk}/delete/").status_code == 302
    assert not JobTemplate.objects.exists()


def test_a_job_is_saved_as_a_template_from_its_page(client, owner, outsider, fake_backend):
    from jobs import services

    job = services.job_submit(
        user=owner, data={"name": "j", "framework": "batch", "command": "run 20", "roles": {"worker": {"replicas": 1}}}
    )
    client.force_login(owner)
    assert "save-as-template" in client.get(f"/jobs/{job.public_id}/").content.decode()
    response = client.post(
        f"/jobs/{job.public_id}/save-as-template/",
        {"name": "mine", "fields": "workers = roles.worker.replicas\nepochs = command: 20"},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    assert JobTemplate.objects.get(name="mine").fields["epochs"]["default"] == "20"
    client.force_login(outsider)
    assert client.get(f"/jobs/{job.public_id}/save-as-template/").status_code == 404
