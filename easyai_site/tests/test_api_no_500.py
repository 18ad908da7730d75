"""Every input that once gave a 500 gives a 400 (or a 404 for a bad id in a path) and records nothing."""

from __future__ import annotations

import json
import time

import pytest

from jobs.models import Experiment, Job
from notebooks.models import Notebook, TensorBoard


@pytest.fixture
def spec(fake_backend):
    def make(**changes):
        return {
            "name": "probe",
            "framework": "batch",
            "command": "true",
            "roles": {"main": {"replicas": 1, "cpu": "1", "memory": "1Gi"}},
            **changes,
        }

    return make


def post_json(client, url: str, text: str):
    return client.generic("POST", url, text.encode("utf-8", "surrogatepass"), content_type="application/json")


def nested(depth: int) -> str:
    return '{"name": "x", "env": ' + "[" * depth + "]" * depth + "}"


# --- the job spec ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [40, 1_000, 100_000])
def test_a_deeply_nested_spec_is_refused(api, owner, spec, depth):
    response = post_json(api(owner), "/api/v1/jobs/", nested(depth))
    assert response.status_code == 400
    assert "nested too deeply" in json.dumps(response.json())
    assert not Job.objects.exists()


def test_text_that_utf8_cannot_carry_is_refused_before_the_job_is_recorded(api, owner, spec):
    # json.dumps writes the lone surrogate as the escape "\ud800", as a client would send it.
    text = json.dumps(spec(env={"TOKEN": "\ud800"}))
    assert "\\ud800" in text
    response = post_json(api(owner), "/api/v1/jobs/", text)
    assert response.status_code == 400
    assert response.json() == {"env.TOKEN": ["contains a character that is not Unicode text (a lone surrogate)"]}
    assert not Job.objects.exists()
    # A key, and the YAML door, alike.
    response = post_json(api(owner), "/api/v1/jobs/", json.dumps(spec(env={"A\udfff": "x"})))
    assert response.status_code == 400 and not Job.objects.exists()
    yaml_text = 'name: probe\nframework: batch\ncommand: "\\ud800"\nroles: {main: {}}\n'
    response = api(owner).generic("POST", "/api/v1/jobs/", yaml_text.encode(), content_type="application/yaml")
    assert response.status_code == 400 and not Job.objects.exists()


def test_a_key_given_twice_in_a_json_spec_is_refused_as_in_yaml(api, owner, spec):
    text = json.dumps(spec()).replace('"name": "probe"', '"name": "probe", "name": "other"')
    response = post_json(api(owner), "/api/v1/jobs/", text)
    assert response.status_code == 400
    assert "found the key 'name' twice" in response.json()["spec"][0]
    assert not Job.objects.exists()


def test_nan_is_not_a_number_in_a_json_spec(api, owner, spec):
    text = json.dumps(spec(scheduling={"oversell": 2.0})).replace("2.0", "NaN")
    response = post_json(api(owner), "/api/v1/jobs/", text)
    assert response.status_code == 400 and not Job.objects.exists()


def test_a_spec_of_many_unknown_keys_answers_quickly_with_a_bounded_list(api, owner, spec):
    doc = spec(**{f"k{i}": 1 for i in range(90_000)})
    text = json.dumps(doc, separators=(",", ":"))
    assert len(text) < 1_000_000  # under the spec's size limit: the unknown keys themselves are the load
    started = time.monotonic()
    response = post_json(api(owner), "/api/v1/jobs/", text)
    assert time.monotonic() - started < 2
    assert response.status_code == 400
    errors = response.json()
    assert len(errors) <= 201 and "89950 more unknown fields" in errors["spec"]
    assert not Job.objects.exists()


def test_env_is_capped_in_variables_and_in_size(api, owner, spec):
    client = api(owner)
    many = post_json(client, "/api/v1/jobs/", json.dumps(spec(env={f"K{i}": "v" for i in range(60_000)})))
    assert many.status_code == 400 and many.json() == {"env": ["at most 1000 variables, not 60000"]}
    long = post_json(client, "/api/v1/jobs/", json.dumps(spec(roles={"main": {"env": {"BIG": "x" * 200_000}}})))
    assert long.status_code == 400 and list(long.json()) == ["roles.main.env.BIG"]
    assert not Job.objects.exists()
    fine = post_json(client, "/api/v1/jobs/?dry_run=1", json.dumps(spec(env={f"K{i}": "v" for i in range(1000)})))
    assert fine.status_code == 200


# --- every other JSON body ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        '{"name": ' + "[" * 2_000 + "]" * 2_000 + "}",  # deeper than Python's own recursion limit
        '{"name": ' + "[" * 40 + "]" * 40 + "}",
        '{"name": "\\ud800"}',
        '{"name": "one", "name": "two"}',
        '{"name": NaN}',
    ],
    ids=["recursion", "nesting", "surrogate", "duplicate", "nan"],
)
def test_the_api_json_parser_refuses_what_it_cannot_keep(api, owner, text):
    response = post_json(api(owner), "/api/v1/experiments/", text)
    assert response.status_code == 400
    assert response.json()["detail"].startswith("JSON parse error")
    assert not Experiment.objects.exists()


# --- notebooks and TensorBoards ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/notebooks/{id}/"),
        ("DELETE", "/api/v1/notebooks/{id}/"),
        ("POST", "/api/v1/notebooks/{id}/stop/"),
        ("POST", "/api/v1/notebooks/{id}/start/"),
        ("POST", "/api/v1/notebooks/{id}/renew/"),
        ("GET", "/api/v1/tensorboards/{id}/"),
    ],
)
@pytest.mark.parametrize("bad_id", ["abc", "null,null", "1e3", "-1", "9" * 30, "%C2%B2"])
def test_an_id_that_is_not_a_row_number_is_404(api, owner, method, path, bad_id):
    response = api(owner).generic(method, path.format(id=bad_id))
    assert response.status_code == 404


@pytest.fixture
def notebook(fake_backend, owner, team) -> Notebook:
    return Notebook.objects.create(name="scratch", team=team, owner=owner, cluster=fake_backend.cluster)


def test_a_lease_of_two_billion_hours_is_refused_and_records_nothing(api, owner, notebook, team):
    client = api(owner)
    before = Notebook.objects.get(pk=notebook.pk)
    renew = client.post(f"/api/v1/notebooks/{notebook.pk}/renew/", {"lease_hours": 2_147_483_647}, format="json")
    assert renew.status_code == 400 and list(renew.json()) == ["lease_hours"]
    after = Notebook.objects.get(pk=notebook.pk)
    assert (after.lease_hours, after.expires_at) == (before.lease_hours, before.expires_at)
    create = client.post(
        "/api/v1/notebooks/", {"name": "big", "team": team.slug, "lease_hours": 2**31 - 1}, format="json"
    )
    assert create.status_code == 400 and "lease_hours" in create.json()
    assert list(Notebook.objects.values_list("name", flat=True)) == ["scratch"]


def test_tensorboard_job_lists_are_bounded(api, owner):
    response = api(owner).post("/api/v1/tensorboards/", {"jobs": ["j-00000000"] * 101}, format="json")
    assert response.status_code == 400 and not TensorBoard.objects.exists()
