"""The serving pages as a signed-in user sees them: the models list, a model's page (versions with their metrics
side by side, aliases and their history, lineage), registering from a job's outputs, the services list and its
create form, a service's page (URL, traffic, revisions, Try it) and its action buttons; who may see what (an
outsider gets 404, anonymous people are sent to sign in); ``/serving/…`` on the portal sent on to the endpoint
origin."""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from clusters.backends.contract import storage
from jobs.models import Job
from serving import services
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

pytestmark = pytest.mark.django_db

WHO = ["anonymous", "outsider", "owner", "mate", "team_admin", "staff"]
LOGIN = "login"  # pages send anonymous people to the sign-in page
MODEL_PAGE = "/models/vision/iris/"
SERVICE_PAGE = "/services/vision/iris-svc/"


def client_for(user=None) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


def person(people, who):
    return None if who == "anonymous" else people[who]


def snapshot() -> dict[str, list[dict]]:
    """Every row the serving app keeps, and the jobs: what a refused form must leave as it was."""
    tables = (RegisteredModel, ModelVersion, ModelAlias, AliasMove, PullToken, InferenceService, Revision, Job)
    return {table.__name__: list(table.objects.order_by("pk").values()) for table in tables}


def text_of(fragment: str) -> str:
    """A piece of a page as a reader sees it: tags gone, entities decoded, white space collapsed."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", fragment)).split())


def element(page: str, element_id: str) -> str:
    """The markup of the element with this id (up to its closing tag, for the tags these pages nest simply)."""
    found = re.search(rf'<(\w+)[^>]*\bid="{re.escape(element_id)}"[^>]*>', page)
    assert found, f"no #{element_id} on the page"
    tag = found.group(1)
    depth, position = 1, found.end()
    for match in re.finditer(rf"<(/?){tag}\b[^>]*>", page[position:]):
        depth += -1 if match.group(1) else 1
        if depth == 0:
            return page[found.start() : position + match.end()]
    raise AssertionError(f"#{element_id} is not closed")


def cells(row: str) -> list[str]:
    return [text_of(cell) for cell in re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", row, re.S)]


def field_errors(page: str, form_id: str) -> dict[str, list[str]]:
    """The errors shown under each field of a form: {field name: [messages]}."""
    form = element(page, form_id)
    shown: dict[str, list[str]] = {}
    for block in re.split(r'(?=<div class="mb-)', form):
        name = re.search(r'name="([^"]+)"', block)
        messages = [text_of(m) for m in re.findall(r'<div class="field-error[^"]*">(.*?)</div>', block, re.S)]
        if name and messages:
            shown[name.group(1)] = messages
    return shown


def flash(page: str) -> str:
    return text_of(" ".join(re.findall(r'<div class="alert[^"]*"[^>]*>(.*?)</div>', page, re.S)))


def ready(revision: Revision) -> None:
    """The revision answered its readiness check (what the sync pass records from its job)."""
    Revision.objects.filter(pk=revision.pk).update(state=RevisionState.READY, ready_at=timezone.now())


def serving(service: InferenceService) -> InferenceService:
    """Its starting revision answered and took the traffic."""
    ready(service.next)
    InferenceService.objects.filter(pk=service.pk).update(primary=service.next, next=None)
    return InferenceService.objects.get(pk=service.pk)


# --- who may see what -------------------------------------------------------------------------------------

PAGES = [
    ("/models/", {"anonymous": LOGIN, "*": 200}),
    (MODEL_PAGE, {"anonymous": LOGIN, "outsider": 404, "*": 200}),
    ("/models/register/", {"anonymous": LOGIN, "*": 200}),
    ("/models/register/?job={job}", {"anonymous": LOGIN, "outsider": 404, "*": 200}),
    ("/services/", {"anonymous": LOGIN, "*": 200}),
    (SERVICE_PAGE, {"anonymous": LOGIN, "outsider": 404, "*": 200}),
]


def status_of(response) -> int | str:
    if response.status_code == 302 and response.url.startswith("/accounts/login/"):
        return LOGIN
    return response.status_code


@pytest.mark.parametrize("who", WHO)
def test_who_sees_which_page(people, service, finished_job, who):
    client = client_for(person(people, who))
    seen = {url: status_of(client.get(url.format(job=finished_job.public_id))) for url, _expected in PAGES}
    assert seen == {url: expected.get(who, expected["*"]) for url, expected in PAGES}


ACTIONS = [
    (f"{MODEL_PAGE}alias/", {"alias": "production", "version": "2"}),
    (f"{SERVICE_PAGE}canary/", {"version": "2", "percent": "10"}),
    (f"{SERVICE_PAGE}promote/", {}),
    (f"{SERVICE_PAGE}rollback/", {}),
    (f"{SERVICE_PAGE}version/", {"version": "2"}),
    (f"{SERVICE_PAGE}delete/", {}),
]


@pytest.mark.parametrize(("who", "expected"), [("anonymous", LOGIN), ("outsider", 404)])
def test_the_action_buttons_are_404_to_an_outsider_and_send_anonymous_to_sign_in(people, service, who, expected):
    client = client_for(person(people, who))
    before = snapshot()
    seen = {url: status_of(client.post(url, body)) for url, body in ACTIONS}
    assert seen == {url: expected for url, _body in ACTIONS}
    assert snapshot() == before


def test_a_team_mate_sees_no_action_buttons_and_their_posts_are_refused_changing_nothing(people, service):
    client = client_for(people["mate"])
    page = client.get(SERVICE_PAGE).content.decode()
    assert 'id="service-actions"' not in page and 'id="alias-form"' not in client.get(MODEL_PAGE).content.decode()
    before = snapshot()
    for url, body in ACTIONS:
        response = client.post(url, body, follow=True)
        assert response.status_code == 200, url
        assert "Only the owner or a team admin may do this." in flash(response.content.decode()), url
    assert snapshot() == before


def test_an_anonymous_visitor_is_sent_to_sign_in_and_back(people, service):
    response = client_for(None).get(SERVICE_PAGE)
    assert response.status_code == 302
    assert response.url == f"/accounts/login/?next={SERVICE_PAGE}"


def test_someone_in_no_team_sees_empty_lists_and_is_told_to_join_one(make_user, service):
    client = client_for(make_user("loner"))
    models_page, services_page = client.get("/models/"), client.get("/services/")
    assert models_page.status_code == services_page.status_code == 200
    assert 'id="no-models"' in models_page.content.decode() and 'id="no-services"' in services_page.content.decode()
    before = snapshot()
    refused = client.post("/services/", GOOD_SERVICE)
    assert refused.status_code == 400 and "team: No team that you belong to" in flash(refused.content.decode())
    assert snapshot() == before


def test_a_platform_admin_in_no_team_sees_every_teams_models_and_services(people, service):
    client = client_for(people["staff"])
    assert 'id="model-vision-iris"' in client.get("/models/").content.decode()
    assert 'id="service-vision-iris-svc"' in client.get("/services/").content.decode()


# --- the models ---------------------------------------------------------------------------------------------


def test_the_models_list_shows_versions_aliases_and_owner(people, iris):
    page = client_for(people["mate"]).get("/models/").content.decode()
    row = cells(element(page, "model-vision-iris"))
    assert row[0].startswith("iris") and row[1:5] == ["vision", "2", "production → 1", "owner"]
    assert 'href="/models/vision/iris/"' in element(page, "model-vision-iris")


def test_the_models_list_of_a_team_without_models_says_how_to_make_one(people, iris):
    page = client_for(people["outsider"]).get("/models/").content.decode()
    assert 'id="model-table"' not in page and "Register as a model" in text_of(element(page, "no-models"))


def _more_models(count: int, start: int, owner, finished_job) -> None:
    for n in range(start, start + count):
        version = services.version_register(user=owner, job=finished_job, name=f"m{n}", model_format="sklearn")
        services.alias_set(user=owner, model=version.model, alias="production", number=1)


def _page_queries(client, url: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200
    return len(queries)


def test_the_models_list_runs_the_same_queries_for_2_models_as_for_12(people, finished_job):
    client = client_for(people["mate"])
    _more_models(2, 0, people["owner"], finished_job)
    client.get("/models/")  # per-process caches (content types, the session) out of the count
    two = _page_queries(client, "/models/")
    _more_models(10, 2, people["owner"], finished_job)
    assert client.get("/models/").content.decode().count('<tr id="model-') == 12
    assert _page_queries(client, "/models/") == two


def test_a_models_page_shows_its_versions_with_metrics_side_by_side(people, iris, finished_job):
    page = client_for(people["mate"]).get(MODEL_PAGE).content.decode()
    table = element(page, "version-table")
    assert re.findall(r'<th class="metric">([^<]*)</th>', table) == ["accuracy", "f1"]
    header = cells(re.search(r"<thead.*?</thead>", table, re.S).group(0))
    accuracy, f1 = header.index("accuracy"), header.index("f1")
    newest, first = cells(element(page, "version-2")), cells(element(page, "version-1"))
    assert (newest[0], newest[accuracy], newest[f1]) == ("2", "0.5", "0.4")
    assert first[0] == "1" and first[f1] == "—"
    assert float(first[accuracy]) == pytest.approx(ModelVersion.objects.get(number=1).metrics["accuracy"])
    assert first[1] == "production" and newest[1] == ""  # its aliases
    assert first[2] == "scikit-learn"
    # Lineage: the source job (a link to it), its folder, the experiment.
    lineage = first[header.index("Lineage")]
    assert lineage.startswith(f"job {finished_job.public_id}") and "experiment iris" in lineage
    link = re.search(
        rf'<a[^>]*href="/jobs/{finished_job.public_id}/"[^>]*>{finished_job.public_id}</a>/model_dir', page
    )
    assert link, "no link to the source job"
    # Its files, each a download.
    assert 'href="/api/v1/models/vision/iris/versions/1/files/model.joblib"' in element(page, "version-1")
    assert 'href="/api/v1/models/vision/iris/versions/1/download/"' in element(page, "version-1")


def test_a_models_page_shows_its_aliases_and_their_history(people, iris):
    services.alias_set(user=people["team_admin"], model=iris, alias="production", number=2)
    page = client_for(people["mate"]).get(MODEL_PAGE).content.decode()
    assert text_of(element(page, "aliases")) == "production → version 2"
    history = [cells(row) for row in re.findall(r"<tr>.*?</tr>", element(page, "alias-history"), re.S)]
    assert [row[:3] for row in history] == [["production", "1 → 2", "teamadmin"], ["production", "— → 1", "owner"]]


def test_the_owner_moves_an_alias_from_the_models_page(people, iris):
    client = client_for(people["owner"])
    assert 'id="alias-form"' in client.get(MODEL_PAGE).content.decode()
    response = client.post(f"{MODEL_PAGE}alias/", {"alias": "production", "version": "2"}, follow=True)
    assert response.redirect_chain == [(MODEL_PAGE, 302)]
    assert "Alias production moved." in flash(response.content.decode())
    assert ModelAlias.objects.get(name="production").version.number == 2
    before = snapshot()
    refused = client.post(f"{MODEL_PAGE}alias/", {"alias": "production", "version": "9"}, follow=True)
    assert "version: The model has no version 9." in flash(refused.content.decode())
    assert snapshot() == before


# --- registering from a job ---------------------------------------------------------------------------------


def test_a_jobs_outputs_page_offers_to_register_its_model_dir(people, finished_job):
    job = finished_job.public_id
    page = client_for(people["mate"]).get(f"/jobs/{job}/outputs/").content.decode()
    links = re.findall(r'<a class="[^"]*register-model"[^>]*href="([^"]+)"[^>]*>([^<]*)</a>', page)
    assert [(html.unescape(href), text) for href, text in links] == [
        (f"/models/register/?job={job}&path=model_dir", "Register as a model")
    ]
    # In model_dir's own listing and below it, for that folder; not in another output's.
    best = storage.output_dir(Path(settings.EASYAI_STORAGE_ROOT), job, "model_dir") / "best"
    best.mkdir()
    (storage.output_dir(Path(settings.EASYAI_STORAGE_ROOT), job, "log_dir")).mkdir(parents=True)
    for path, expected in (("model_dir", "model_dir"), ("model_dir/best", "model_dir/best"), ("log_dir", None)):
        listing = client_for(people["mate"]).get(f"/jobs/{job}/outputs/", {"path": path}).content.decode()
        hrefs = re.findall(r'<a class="[^"]*register-model"[^>]*href="([^"]+)"', listing)
        assert [html.unescape(h) for h in hrefs] == (
            [f"/models/register/?job={job}&path={expected}"] if expected else []
        )


def test_the_outputs_page_works_without_the_serving_app_and_offers_no_button(people, finished_job, settings):
    from types import ModuleType

    from easyai_site import urls

    def included(pattern) -> str:
        return getattr(getattr(pattern, "urlconf_name", None), "__name__", "")

    without_serving = [p for p in urls.urlpatterns if included(p) != "serving.urls"]
    assert len(without_serving) == len(urls.urlpatterns) - 1
    site = ModuleType("site_without_serving")
    site.urlpatterns = without_serving
    settings.ROOT_URLCONF = site
    client = client_for(people["owner"])
    for path in ("", "model_dir"):
        response = client.get(f"/jobs/{finished_job.public_id}/outputs/", {"path": path} if path else {})
        assert response.status_code == 200
        assert "model.joblib" in response.content.decode() or not path
        assert "register-model" not in response.content.decode()


def test_no_register_button_before_the_job_wrote_its_model_dir(people, fake_backend, team):
    from jobs import services as job_services

    job = job_services.job_submit(
        user=people["owner"],
        data={"name": "fresh", "team": team.slug, "framework": "batch", "command": "true", "roles": {"main": {}}},
    )
    page = client_for(people["owner"]).get(f"/jobs/{job.public_id}/outputs/").content.decode()
    assert "register-model" not in page and "Register as a model" not in page


def test_the_register_button_leads_to_the_form_and_registers_the_folder(people, finished_job):
    client = client_for(people["mate"])
    job = finished_job.public_id
    outputs = client.get(f"/jobs/{job}/outputs/").content.decode()
    href = html.unescape(re.search(r'<a class="[^"]*register-model"[^>]*href="([^"]+)"', outputs).group(1))
    form = client.get(href)
    assert form.status_code == 200
    page = form.content.decode()
    assert text_of(re.search(r"<h1.*?</h1>", page, re.S).group(0)) == f"Register a model from {job}"
    register = element(page, "register-form")
    assert f'<input type="hidden" name="job" value="{job}">' in register
    assert re.search(r'name="name"[^>]*value="iris-train"', register)  # the job's name, to start from
    assert re.search(r'name="path"[^>]*value="model_dir"', register)
    assert 'name="archive"' not in register
    assert '<option value="sklearn">scikit-learn</option>' in register
    response = client.post(
        href, {"job": job, "name": "iris", "path": "model_dir", "format": "sklearn", "metrics": '{"f1": 0.9}'}
    )
    assert response.status_code == 302 and response.url == MODEL_PAGE
    version = ModelVersion.objects.get()
    assert (version.number, version.model.owner, version.registered_by) == (1, people["mate"], people["mate"])
    assert version.source_job == finished_job and version.metrics["f1"] == 0.9 and "accuracy" in version.metrics
    shown = client.get(MODEL_PAGE).content.decode()
    assert "Registered iris version 1." in flash(shown)
    # From a subfolder's listing, the form starts at that folder.
    below = client.get(f"/models/register/?job={job}&path=model_dir/best").content.decode()
    assert re.search(r'name="path"[^>]*value="model_dir/best"', element(below, "register-form"))


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"format": "pickle-jar"}, "format", "Select a valid choice."),
        ({"format": "onnx"}, "path", "no onnx model files"),  # the folder holds no ONNX model
        ({"path": "../../etc"}, "path", ""),
        ({"path": "log_dir"}, "path", "model_dir"),
        ({"name": "Not A Name"}, "name", "Lowercase letters"),
        ({"metrics": "not json"}, "metrics", "JSON"),
        ({"name": ""}, "name", "required"),
    ],
)
def test_a_bad_registration_shows_the_error_at_its_field_and_records_nothing(
    people, iris, finished_job, body, field, message
):
    before = snapshot()
    url = f"/models/register/?job={finished_job.public_id}"
    data = {"job": finished_job.public_id, "name": "iris", "path": "model_dir", "format": "sklearn", **body}
    response = client_for(people["owner"]).post(url, data)
    assert response.status_code == 400
    errors = field_errors(response.content.decode(), "register-form")
    assert list(errors) == [field], errors
    assert message in " ".join(errors[field])
    assert snapshot() == before


def test_a_job_of_another_team_cannot_be_registered(people, finished_job):
    before = snapshot()
    client = client_for(people["outsider"])
    url = f"/models/register/?job={finished_job.public_id}"
    assert client.get(url).status_code == 404
    assert client.post(url, {"job": finished_job.public_id, "name": "iris", "format": "sklearn"}).status_code == 404
    assert snapshot() == before


def test_a_zip_archive_is_pushed_from_the_register_page(people, iris, finished_job):
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("model.joblib", _model_bytes(finished_job))
    upload = io.BytesIO(buffer.getvalue())
    upload.name = "iris.zip"
    client = client_for(people["mate"])
    page = client.get("/models/register/").content.decode()
    assert 'name="archive"' in page and 'name="path"' not in page
    response = client.post("/models/register/", {"name": "iris", "format": "sklearn", "archive": upload})
    assert response.status_code == 302 and response.url == MODEL_PAGE
    assert ModelVersion.objects.get(number=3).source_job is None
    missing = client.post("/models/register/", {"name": "iris", "format": "sklearn"})
    assert missing.status_code == 400 and list(field_errors(missing.content.decode(), "register-form")) == ["archive"]


def _model_bytes(job) -> bytes:
    return (
        storage.output_dir(Path(settings.EASYAI_STORAGE_ROOT), job.public_id, "model_dir") / "model.joblib"
    ).read_bytes()


# --- the services -------------------------------------------------------------------------------------------


def test_the_services_list_shows_state_model_and_traffic(people, service):
    serving(service)
    services.service_canary(user=people["owner"], service=service, version=2, percent=20)
    ready(Revision.objects.get(number=2))
    page = client_for(people["mate"]).get("/services/").content.decode()
    row = cells(element(page, "service-vision-iris-svc"))
    assert row[0] == "iris-svc vision · fake"
    assert row[1] == "ready"
    assert row[2] == "iris v1"
    assert row[3] == "v1 · canary v2 20%"
    assert 'href="/services/vision/iris-svc/"' in element(page, "service-vision-iris-svc")


def _more_services(count: int, start: int, owner, team) -> None:
    for n in range(start, start + count):
        follow = {"alias": "production"} if n % 2 else {"version": 2}
        service = services.service_create(user=owner, team=team, name=f"s{n}", model="iris", **follow)
        if n % 2 == 0:
            serving(service)
            services.service_canary(user=owner, service=service, version=1, percent=10)


def test_the_services_list_runs_the_same_queries_for_2_services_as_for_12(people, iris, team):
    client = client_for(people["mate"])
    _more_services(2, 0, people["owner"], team)
    client.get("/services/")
    two = _page_queries(client, "/services/")
    _more_services(10, 2, people["owner"], team)
    assert client.get("/services/").content.decode().count('<tr id="service-') == 12
    assert _page_queries(client, "/services/") == two


def test_a_service_is_created_from_the_list_page(people, iris, fake_backend, django_capture_on_commit_callbacks):
    client = client_for(people["mate"])
    page = client.get("/services/?model=iris").content.decode()
    assert re.search(r'name="model"[^>]*value="iris"', element(page, "service-form"))  # "Serve it" from a model
    assert 'id="no-services"' in page
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/services/",
            {
                "name": "iris-svc",
                "model": "iris",
                "version": "2",
                "cpu": "1",
                "memory": "1Gi",
                "gpu": "0",
                "min_replicas": "1",
                "max_replicas": "1",
            },  # fmt: skip
        )
    assert response.status_code == 302 and response.url == SERVICE_PAGE
    service = InferenceService.objects.get()
    assert (service.owner, service.version.number, service.memory, service.public) == (people["mate"], 2, "1Gi", False)
    assert Revision.objects.get().job.public_id in fake_backend.jobs
    assert "Service iris-svc is starting." in flash(client.get(SERVICE_PAGE).content.decode())


GOOD_SERVICE = {
    "name": "x",
    "model": "iris",
    "cpu": "1",
    "memory": "1Gi",
    "gpu": "0",
    "min_replicas": "1",
    "max_replicas": "1",
}


@pytest.mark.parametrize(
    ("change", "errors"),
    [
        ({"name": "Bad Name"}, {"name": "Lowercase letters"}),
        ({"name": "iris-svc"}, {"name": "already has a service"}),
        ({"model": "nomodel"}, {"model": "no model named"}),
        ({"version": "9"}, {"version": "no version 9"}),
        ({"alias": "staging"}, {"alias": "no alias"}),
        ({"cpu": "lots", "memory": "much"}, {"cpu": "CPU quantity", "memory": "memory quantity"}),
        ({"min_replicas": "3", "max_replicas": "2"}, {"max_replicas": "At least min_replicas"}),
        ({"public": "on"}, {"public": "Only a team admin"}),
        ({"cluster": "nowhere"}, {"cluster": "No such cluster"}),
        ({"name": ""}, {"name": "required"}),
    ],
)
def test_a_bad_service_shows_its_errors_at_their_fields_and_records_nothing(people, service, change, errors):
    before = snapshot()
    response = client_for(people["owner"]).post("/services/", {**GOOD_SERVICE, **change})
    assert response.status_code == 400
    shown = field_errors(response.content.decode(), "service-form")
    assert sorted(shown) == sorted(errors), shown
    for field, words in errors.items():
        assert words in " ".join(shown[field]), shown
    assert snapshot() == before
    # The form keeps what was typed.
    if change.get("name"):
        assert re.search(
            rf'name="name"[^>]*value="{re.escape(html.escape(change["name"]))}"', response.content.decode()
        )


def test_a_team_admin_makes_a_public_service_from_the_list_page(people, iris):
    response = client_for(people["team_admin"]).post("/services/", {**GOOD_SERVICE, "name": "open", "public": "on"})
    assert response.status_code == 302
    assert InferenceService.objects.get(name="open").public is True


def test_a_services_page_shows_its_url_traffic_revisions_and_try_it(people, service, settings):
    settings.EASYAI_ENDPOINTS_URL = "https://endpoints.example.com"
    page = client_for(people["mate"]).get(SERVICE_PAGE).content.decode()
    assert text_of(element(page, "service-url")) == "https://endpoints.example.com/serving/vision/iris-svc/"
    assert 'data-state="starting"' in page
    assert text_of(element(page, "traffic")) == "No revision answers yet."
    assert cells(element(page, "revision-1"))[:3] == ["1", "1", "starting"]
    served = serving(service)
    services.service_canary(user=people["owner"], service=served, version=2, percent=20)
    ready(Revision.objects.get(number=2))
    page = client_for(people["mate"]).get(SERVICE_PAGE).content.decode()
    traffic = [cells(row) for row in re.findall(r"<tr>.*?</tr>", element(page, "traffic"), re.S)]
    assert traffic == [["revision 1", "version 1", "primary", "80 %"], ["revision 2", "version 2", "canary", "20 %"]]
    assert [cells(element(page, f"revision-{n}"))[:3] for n in (2, 1)] == [["2", "2", "ready"], ["1", "1", "ready"]]
    assert page.index('id="revision-2"') < page.index('id="revision-1"')  # newest first
    try_form = element(page, "try-form")
    assert 'data-url="/api/v1/services/vision/iris-svc/try/"' in try_form
    assert 'name="csrfmiddlewaretoken"' in try_form and 'name="body"' in try_form and 'name="protocol"' in try_form
    assert '<script src="/static/easyai/serving.js"></script>' in page
    assert "https://endpoints.example.com/serving/vision/iris-svc/v1/models/iris-svc:predict" in text_of(
        element(page, "how-to-call")
    )


def test_the_owner_starts_a_canary_promotes_it_rolls_back_and_deletes_the_service(people, service):
    client = client_for(people["owner"])
    serving(service)
    page = client.get(SERVICE_PAGE).content.decode()
    actions = element(page, "service-actions")
    assert re.search(r'<button class="[^"]*" type="submit" disabled>Promote canary</button>', actions)  # no canary yet
    response = client.post(f"{SERVICE_PAGE}canary/", {"version": "2", "percent": "20"}, follow=True)
    assert response.redirect_chain == [(SERVICE_PAGE, 302)]
    assert "The canary is starting." in flash(response.content.decode())
    fresh = InferenceService.objects.get()
    assert (fresh.canary_version.number, fresh.canary_percent, fresh.canary.number) == (2, 20, 2)
    # Promote before it answers: refused, said, nothing changes.
    before = snapshot()
    refused = client.post(f"{SERVICE_PAGE}promote/", follow=True)
    assert "does not answer yet" in flash(refused.content.decode())
    assert snapshot() == before
    ready(fresh.canary)
    promoted = client.post(f"{SERVICE_PAGE}promote/", follow=True)
    assert "The canary now takes all the traffic." in flash(promoted.content.decode())
    fresh = InferenceService.objects.get()
    assert (fresh.primary.number, fresh.version.number, fresh.canary) == (2, 2, None)
    rolled = client.post(f"{SERVICE_PAGE}rollback/", follow=True)
    assert "Rolled back." in flash(rolled.content.decode())
    fresh = InferenceService.objects.get()
    assert (fresh.version.number, fresh.next.number, fresh.next.version.number) == (1, 3, 1)
    deleted = client.post(f"{SERVICE_PAGE}delete/", follow=True)
    assert deleted.redirect_chain == [("/services/", 302)]
    assert "Service iris-svc deleted." in flash(deleted.content.decode())
    assert not InferenceService.objects.exists()


def test_a_team_admin_rolls_out_another_version_from_the_page(people, service):
    serving(service)
    response = client_for(people["team_admin"]).post(f"{SERVICE_PAGE}version/", {"version": "2"}, follow=True)
    assert "A new revision is starting" in flash(response.content.decode())
    fresh = InferenceService.objects.get()
    assert (fresh.version.number, fresh.primary.version.number, fresh.next.version.number) == (2, 1, 2)


@pytest.mark.parametrize(
    ("url", "body", "said"),
    [
        (f"{SERVICE_PAGE}canary/", {"version": "2", "percent": "101"}, "percent: A whole percentage from 0 to 100."),
        (f"{SERVICE_PAGE}canary/", {"version": "9", "percent": "10"}, "version: The model has no version 9."),
        (f"{SERVICE_PAGE}canary/", {"version": "", "percent": "10"}, "version: This field is required."),
        (f"{SERVICE_PAGE}promote/", {}, "The service has no canary to promote."),
        (f"{SERVICE_PAGE}rollback/", {}, "No earlier version served"),
        (f"{SERVICE_PAGE}version/", {"version": "9"}, "version: The model has no version 9."),
    ],
)
def test_a_refused_action_says_why_on_the_page_and_changes_nothing(people, service, url, body, said):
    before = snapshot()
    response = client_for(people["owner"]).post(url, body, follow=True)
    assert response.redirect_chain == [(SERVICE_PAGE, 302)]
    assert said in flash(response.content.decode())
    assert snapshot() == before


# --- /serving/ on the portal ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("endpoints_url", "origin"),
    [
        ("https://endpoints.example.com", "https://endpoints.example.com"),
        ("https://*.endpoints.example.com:8443", "https://serving.endpoints.example.com:8443"),
    ],  # fmt: skip
)
def test_serving_on_the_portal_is_sent_on_to_the_endpoint_origin_with_308(settings, endpoints_url, origin):
    settings.EASYAI_ENDPOINTS_URL = endpoints_url
    client = Client()
    predict = "/serving/vision/iris-svc/v1/models/iris-svc:predict"
    response = client.post(predict, b'{"instances": [[1, 2, 3, 4]]}', content_type="application/json")
    assert response.status_code == 308 and response["Location"] == f"{origin}{predict}"
    response = client.get("/serving/vision/iris-svc/v2/health/ready?verbose=1")
    assert response.status_code == 308
    assert response["Location"] == f"{origin}/serving/vision/iris-svc/v2/health/ready?verbose=1"
    assert client.get("/serving/vision/iris-svc").status_code == 308


def test_serving_on_the_portal_keeps_an_encoded_path_as_it_was_sent(settings):
    settings.EASYAI_ENDPOINTS_URL = "https://endpoints.example.com"
    response = Client().get("/serving/vision/iris-svc/files/a%3Fb%23c%20d%2Fe?q=%2F1")
    assert response.status_code == 308
    assert response["Location"] == "https://endpoints.example.com/serving/vision/iris-svc/files/a%3Fb%23c%20d/e?q=%2F1"
