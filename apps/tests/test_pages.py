"""The apps pages as signed-in people see them: the list (who sees which app), publishing one, an app's page
(read-only to a team-mate, 404 to an outsider), its buttons, the publish and settings forms and their field
errors, and secrets that never come back in a page; the admin's list and stop action."""

from __future__ import annotations

import html
import re

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from apps import services
from apps.models import App, AppRevision, AppState, AppStatus, Visibility
from apps.tests.conftest import put_files
from jobs.models import Job
from jobs.state import ACTIVE

pytestmark = pytest.mark.django_db

STREAMLIT_APP = {"app.py": "import streamlit as st\nst.write('hello')\n", "util.py": "X = 1\n"}
SECRET_VALUE = "s3cr3t-value-never-shown"
PAGE = "/apps/vision/hello/"


def client_for(user=None) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


def text_of(fragment: str) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", fragment)).split())


def element(page: str, element_id: str) -> str:
    """The markup of the element with this id (up to its closing tag)."""
    found = re.search(rf'<(\w+)[^>]*\bid="{re.escape(element_id)}"[^>]*>', page)
    assert found, f"no #{element_id} on the page"
    tag = found.group(1)
    depth, position = 1, found.end()
    for match in re.finditer(rf"<(/?){tag}\b[^>]*>", page[position:]):
        depth += -1 if match.group(1) else 1
        if depth == 0:
            return page[found.start() : position + match.end()]
    raise AssertionError(f"#{element_id} is not closed")


def field_errors(page: str, form_id: str) -> dict[str, list[str]]:
    """The errors shown under each field of a form: {field name: [messages]}."""
    shown: dict[str, list[str]] = {}
    for block in re.split(r'(?=<div class="mb-3">)', element(page, form_id)):
        name = re.search(r'name="([^"]+)"', block)
        problems = [text_of(m) for m in re.findall(r'<div class="field-error"[^>]*>(.*?)</div>', block, re.S)]
        if name and problems:
            shown[name.group(1)] = problems
    return shown


def flash(page: str) -> str:
    return text_of(" ".join(re.findall(r'<div class="alert[^"]*"[^>]*>(.*?)</div>', page, re.S)))


def snapshot() -> dict[str, list[dict]]:
    return {table.__name__: list(table.objects.order_by("pk").values()) for table in (App, AppRevision, Job)}


def deploy(user, team, name: str = "hello", **fields) -> App:
    folder = put_files(user, f"apps/{name}", STREAMLIT_APP)
    fields.setdefault("secrets", {"API_KEY": SECRET_VALUE})
    return services.app_deploy(
        user=user, team=team, name=name, kind="streamlit", entry="app.py", source=folder, **fields
    )


@pytest.fixture
def app(people, team, fake_backend) -> App:
    return deploy(people["owner"], team, env={"GREETING": "hi"})


def fresh(app: App) -> App:
    return App.objects.select_related("job", "revision").prefetch_related("job__tasks").get(pk=app.pk)


# --- who sees what ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("who", "listed", "detail"),
    [
        ("owner", True, 200),
        ("mate", True, 200),
        ("team_admin", True, 200),
        ("outsider", False, 404),
        ("staff", True, 200),
    ],
)
def test_who_sees_the_app_in_the_list_and_its_page(people, app, who, listed, detail):
    client = client_for(people[who])
    listing = client.get("/apps/?team=all")
    assert listing.status_code == 200
    assert ('id="app-vision-hello"' in listing.content.decode()) is listed
    assert client.get(PAGE).status_code == detail


def test_anonymous_people_are_sent_to_sign_in(app):
    for url in ("/apps/", "/apps/new/", PAGE):
        response = client_for(None).get(url)
        assert response.status_code == 302 and response.url.startswith("/accounts/login/"), url


def test_the_list_card_shows_kind_state_url_and_owner(people, app):
    page = client_for(people["mate"]).get("/apps/").content.decode()
    card = element(page, "app-vision-hello")
    assert 'data-app-state="starting"' in card and "text-bg-info" in card
    assert f'href="{app.url}"' in card and 'target="_blank"' in card
    text = text_of(card)
    assert "Streamlit" in text and "owner" in text and "vision" in text


def test_the_list_of_the_current_team_leaves_other_teams_apps_out(people, app, other_team, fake_backend):
    outsider = people["outsider"]
    deploy(outsider, other_team, name="elsewhere")
    page = client_for(outsider).get("/apps/").content.decode()
    assert 'id="app-speech-elsewhere"' in page and 'id="app-vision-hello"' not in page
    staff_all = client_for(people["staff"]).get("/apps/?team=all").content.decode()
    assert 'id="app-speech-elsewhere"' in staff_all and 'id="app-vision-hello"' in staff_all


def test_the_list_reads_a_fixed_number_of_queries(people, team, fake_backend):
    owner = people["owner"]
    deploy(owner, team, name="one")
    client = client_for(owner)
    client.get("/apps/")
    with CaptureQueriesContext(connection) as few:
        client.get("/apps/")
    for name in ("two", "three", "four"):
        deploy(owner, team, name=name)
    with CaptureQueriesContext(connection) as more:
        page = client.get("/apps/").content.decode()
    assert page.count('class="card h-100 app-card"') == 4
    assert len(more) == len(few)


def test_the_nav_links_to_the_apps_page(people, app):
    page = client_for(people["mate"]).get("/").content.decode()
    assert '<a class="nav-link" href="/apps/">Apps</a>' in page


# --- an app's page ----------------------------------------------------------------------------------------


def test_the_owner_sees_the_facts_revisions_log_and_forms(people, app):
    page = client_for(people["owner"]).get(PAGE).content.decode()
    facts = text_of(element(page, "app-facts"))
    assert app.url in facts and "app.py" in facts and "owner" in facts and "GREETING=hi" in facts
    assert "API_KEY" in text_of(element(page, "app-secrets"))
    revision = text_of(element(page, "revision-1"))
    assert "apps/hello" in revision and "2" in revision.split() and app.revision.digest[:12] in revision
    job = fresh(app).job
    assert f'data-log-socket="/ws/jobs/{job.public_id}/tasks/app-0/log/"' in page
    assert "easyai/logs.js" in page and "<script>" not in page  # the page's scripts are static files
    for form in ("app-actions", "app-publish", "app-settings"):
        assert f'id="{form}"' in page


def test_a_team_mate_sees_the_page_read_only(people, app):
    page = client_for(people["mate"]).get(PAGE).content.decode()
    assert 'id="app-facts"' in page and 'id="revisions"' in page
    for form in ("app-actions", "app-publish", "app-settings"):
        assert f'id="{form}"' not in page


def test_a_failed_apps_message_is_shown_whole(people, app):
    App.objects.filter(pk=app.pk).update(message="It did not answer.\nTraceback line 1\nline 2")
    page = client_for(people["owner"]).get(PAGE).content.decode()
    assert "<pre" in element(page, "app-message") and "Traceback line 1\nline 2" in element(page, "app-message")


# --- the buttons --------------------------------------------------------------------------------------------


def test_the_owners_buttons_stop_start_restart_and_delete(people, app, fake_backend):
    client = client_for(people["owner"])
    response = client.post(f"{PAGE}stop/", follow=True)
    assert response.status_code == 200 and "stopped" in flash(response.content.decode())
    stopped = fresh(app)
    assert stopped.status == AppStatus.STOPPED and stopped.state == AppState.STOPPED

    again = client.post(f"{PAGE}stop/", follow=True)  # refused: a message, not a server error
    assert again.status_code == 200 and "already stopped" in flash(again.content.decode())

    client.post(f"{PAGE}start/")
    started = fresh(app)
    assert started.status == AppStatus.ACTIVE and started.job.state in ACTIVE and started.job_id != stopped.job_id

    client.post(f"{PAGE}restart/")
    restarted = fresh(app)
    assert restarted.job_id != started.job_id and restarted.job.state in ACTIVE
    assert Job.objects.get(pk=started.job_id).state not in ACTIVE

    response = client.post(f"{PAGE}delete/")
    assert response.status_code == 302 and response.url == "/apps/"
    assert not App.objects.filter(pk=app.pk).exists()


def test_a_team_mates_posts_are_refused_and_change_nothing(people, app):
    client = client_for(people["mate"])
    before = snapshot()
    for url, body in [
        (f"{PAGE}stop/", {}),
        (f"{PAGE}restart/", {}),
        (f"{PAGE}delete/", {}),
        (f"{PAGE}publish/", {"source": "apps/hello"}),
        (f"{PAGE}settings/", {"visibility": "public", "cpu": "1", "memory": "2Gi", "gpu": "0", "idle_minutes": "30"}),
    ]:
        response = client.post(url, body, follow=True)
        assert response.status_code in (200, 403), url
        if response.status_code == 200:
            assert "Only the app's owner or a team admin may do this." in flash(response.content.decode()), url
    assert snapshot() == before


def test_an_outsiders_posts_are_404(people, app):
    client = client_for(people["outsider"])
    before = snapshot()
    for action in ("stop", "start", "restart", "delete", "publish", "settings"):
        assert client.post(f"{PAGE}{action}/").status_code == 404, action
    assert snapshot() == before


def test_a_team_admin_may_stop_a_members_app(people, app):
    client_for(people["team_admin"]).post(f"{PAGE}stop/")
    assert fresh(app).status == AppStatus.STOPPED


# --- publishing a revision ----------------------------------------------------------------------------------


def test_publishing_a_folder_without_the_entry_file_shows_the_error_and_creates_nothing(people, app):
    owner = people["owner"]
    put_files(owner, "apps/other", {"main.py": "print(1)\n"})
    before = snapshot()
    response = client_for(owner).post(f"{PAGE}publish/", {"source": "apps/other", "entry": ""})
    assert response.status_code == 400
    errors = field_errors(response.content.decode(), "app-publish")
    assert "entry" in errors and "app.py" in errors["entry"][0]
    assert snapshot() == before


def test_publishing_a_new_revision_runs_it(people, app):
    owner = people["owner"]
    put_files(owner, "apps/hello", {"app.py": "import streamlit as st\nst.write('v2')\n"})
    first_job = fresh(app).job_id
    response = client_for(owner).post(f"{PAGE}publish/", {"source": "", "entry": ""})
    assert response.status_code == 302
    published = fresh(app)
    assert published.revision.number == 2 and published.job_id != first_job and published.job.state in ACTIVE


# --- settings ----------------------------------------------------------------------------------------------


def _settings_of(app: App, **changes) -> dict:
    data = {
        "visibility": app.visibility, "shared_with": "", "idle_minutes": str(app.idle_minutes), "description": "",
        "cpu": app.cpu, "memory": app.memory, "gpu": str(app.gpu), "image": app.image,
        "env": "\n".join(f"{k}={v}" for k, v in app.env.items()), "secrets": "",
    }  # fmt: skip
    data.update(changes)
    return data


def test_saving_unchanged_settings_does_not_restart_the_app(people, app):
    job = fresh(app).job_id
    response = client_for(people["owner"]).post(f"{PAGE}settings/", _settings_of(app), follow=True)
    assert response.status_code == 200 and "Nothing changed." in flash(response.content.decode())
    assert fresh(app).job_id == job


def test_settings_change_visibility_sharing_and_secrets(people, app, make_user, wildcard_origin):
    make_user("guest")
    client = client_for(people["owner"])
    response = client.post(f"{PAGE}settings/", _settings_of(app, visibility="shared", shared_with="guest"))
    assert response.status_code == 302
    shared = fresh(app)
    assert shared.visibility == Visibility.SHARED and [u.username for u in shared.shared_with.all()] == ["guest"]

    job = shared.job_id
    client.post(
        f"{PAGE}settings/", _settings_of(shared, shared_with="guest", secrets="TOKEN=abc", unset_secrets="API_KEY")
    )
    changed = fresh(app)
    assert changed.secrets == {"TOKEN": "abc"} and changed.job_id != job  # a running app restarts


def test_settings_errors_are_shown_at_their_fields(people, app, wildcard_origin):
    before = snapshot()
    response = client_for(people["owner"]).post(
        f"{PAGE}settings/", _settings_of(app, visibility="shared", shared_with="nobody-here", env="PORT=1")
    )
    assert response.status_code == 400
    errors = field_errors(response.content.decode(), "app-settings")
    assert "nobody-here" in errors["shared_with"][0] and "PORT" in errors["env"][0]
    assert snapshot() == before


# --- secrets never come back -------------------------------------------------------------------------------


def superuser(staff):
    staff.is_superuser = True
    staff.save()
    return client_for(staff)


def test_secret_values_appear_in_no_page(people, app, staff):
    pages = []
    for who in ("owner", "mate", "team_admin", "staff"):
        client = client_for(people[who])
        pages += [client.get("/apps/").content, client.get("/apps/?team=all").content, client.get(PAGE).content]
    admin = superuser(staff)
    pages += [admin.get("/admin/apps/app/").content, admin.get(f"/admin/apps/app/{app.pk}/change/").content]
    # A refused form does not send a typed secret back either.
    refused = client_for(people["owner"]).post(
        f"{PAGE}settings/", _settings_of(app, secrets=f"OTHER={SECRET_VALUE}", env="PORT=1")
    )
    assert refused.status_code == 400
    pages.append(refused.content)
    created = client_for(people["owner"]).post(
        "/apps/new/", {"name": "Bad Name", "kind": "streamlit", "source": "apps/hello", "entry": "app.py",
                       "cpu": "1", "memory": "2Gi", "gpu": "0", "visibility": "team",
                       "secrets": f"KEY={SECRET_VALUE}"},
    )  # fmt: skip
    assert created.status_code == 400
    pages.append(created.content)
    for content in pages:
        assert SECRET_VALUE.encode() not in content
    assert b"API_KEY" in admin.get(f"/admin/apps/app/{app.pk}/change/").content


# --- the create form ---------------------------------------------------------------------------------------


def test_the_create_form_publishes_an_app(people, team, fake_backend):
    owner = people["owner"]
    put_files(owner, "apps/demo", STREAMLIT_APP)
    client = client_for(owner)
    form = client.get("/apps/new/").content.decode()
    assert 'href="/files/"' in element(form, "app-create")  # how to upload the folder's files
    response = client.post(
        "/apps/new/",
        {"name": "demo", "kind": "streamlit", "source": "apps/demo", "entry": "app.py", "cpu": "1", "memory": "2Gi",
         "gpu": "0", "visibility": "team", "env": "# greeting\nGREETING=hi", "secrets": "TOKEN=xyz",
         "idle_minutes": "15"},
    )  # fmt: skip
    assert response.status_code == 302 and response.url == "/apps/vision/demo/"
    app = App.objects.get(team=team, name="demo")
    assert app.owner == owner and app.env == {"GREETING": "hi"} and app.secrets == {"TOKEN": "xyz"}
    assert app.idle_minutes == 15 and app.revision.entry == "app.py" and app.job.state in ACTIVE


def test_the_create_form_shows_the_services_errors_at_their_fields(people, team, fake_backend, wildcard_origin):
    owner = people["owner"]
    put_files(owner, "apps/demo", {"main.py": "print(1)\n"})
    before = snapshot()
    response = client_for(owner).post(
        "/apps/new/",
        {"name": "demo", "kind": "streamlit", "source": "apps/demo", "entry": "app.py", "cpu": "lots",
         "memory": "2Gi", "gpu": "0", "visibility": "shared", "shared_with": "", "env": "not a line"},
    )  # fmt: skip
    assert response.status_code == 400
    errors = field_errors(response.content.decode(), "app-create")
    assert set(errors) >= {"env"}  # the form's own check first: KEY=VALUE lines
    response = client_for(owner).post(
        "/apps/new/",
        {"name": "demo", "kind": "streamlit", "source": "apps/demo", "entry": "app.py", "cpu": "lots",
         "memory": "2Gi", "gpu": "0", "visibility": "shared", "shared_with": ""},
    )  # fmt: skip
    errors = field_errors(response.content.decode(), "app-create")
    assert {"entry", "cpu", "shared_with"} <= set(errors)
    assert snapshot() == before


# --- the admin ---------------------------------------------------------------------------------------------


def test_the_admin_lists_apps_and_stops_them_through_the_service(people, app, staff):
    client = superuser(staff)
    listing = client.get("/admin/apps/app/")
    assert listing.status_code == 200 and "hello" in listing.content.decode()
    response = client.post("/admin/apps/app/", {"action": "stop_apps", "_selected_action": [app.pk]}, follow=True)
    assert response.status_code == 200 and "1 apps stopped." in response.content.decode()
    assert fresh(app).status == AppStatus.STOPPED
    assert client.get(f"/admin/apps/app/{app.pk}/change/").status_code == 200
