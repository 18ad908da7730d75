"""Team webhooks turned against the platform's own network, tried as a team admin would.

A webhook goes over http(s) to a public address only, unless a platform admin allows a network
(EASYAI_WEBHOOK_ALLOWED_NETWORKS); the check runs when the URL is saved (page, API, admin) and again
when a notification is sent, on the one resolution the connection then uses; redirects are not followed.
"""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.test import Client

from jobs.models import Job, JobEvent
from jobs.notify import send_for_event
from teams import webhooks
from teams.models import Team

REFUSED = [
    "http://127.0.0.1/hook",
    "http://127.1.2.3:8000/hook",
    "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
    "http://[::1]/hook",
    "http://[::ffff:127.0.0.1]/hook",
    "http://[fe80::1]/hook",
    "http://10.0.0.1/hook",
    "http://192.168.1.1/hook",
    "http://100.64.0.1/hook",
    "http://0.0.0.0/hook",
    "http://2130706433/hook",  # 127.0.0.1 written as one number
    "http://localhost:8000/admin/",
    "ftp://files.example.com/hook",
    "file:///etc/passwd",
    "gopher://127.0.0.1:6379/_FLUSHALL",
    "https://user:secret@hooks.example.com/x",
]


@pytest.fixture
def resolver(monkeypatch):
    """Names of the test's choosing resolve where the test says (and count how often they are resolved)."""
    real = socket.getaddrinfo
    table: dict[str, list[str]] = {}
    calls: list[str] = []

    def fake(host, port, *args, **kwargs):
        if host in table:
            calls.append(host)
            address = table[host].pop(0) if len(table[host]) > 1 else table[host][0]
            family = socket.AF_INET6 if ":" in address else socket.AF_INET
            return [(family, socket.SOCK_STREAM, 6, "", (address, port or 80))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    return table, calls


class _Receiver(BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_POST(self):
        self.hits.append(self.path)
        length = int(self.headers.get("Content-Length", "0"))
        self.rfile.read(length)
        if self.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "/target")
        else:
            self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def receiver():
    _Receiver.hits = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    yield server.server_address[1], _Receiver.hits
    server.shutdown()


@pytest.mark.parametrize("url", REFUSED)
def test_a_team_admin_cannot_point_the_webhook_inside(people, api, team, url):
    response = api(people["team_admin"]).patch("/api/v1/teams/vision/", {"webhook_url": url}, format="json")
    assert response.status_code == 400, response.content
    assert list(response.json()) == ["webhook_url"]
    assert Team.objects.get(pk=team.pk).webhook_url == ""


def test_the_settings_page_names_the_field(people, page, team):
    response = page(people["team_admin"]).post(
        "/teams/vision/settings/",
        {"name": "Vision", "webhook_url": "http://169.254.169.254/latest/", "notebook_max_lease_hours": "1"},
    )
    assert response.status_code == 400
    content = response.content.decode()
    assert 'id="id_webhook_url_error"' in content and "169.254.169.254" in content
    assert Team.objects.get(pk=team.pk).webhook_url == ""


def test_the_admin_refuses_it_too(people, team):
    operator = people["staff"]
    operator.is_superuser = True
    operator.save()
    client = Client()
    client.force_login(operator)
    response = client.post(
        f"/admin/teams/team/{team.pk}/change/",
        {
            "name": "Vision",
            "webhook_url": "http://[::1]:6379/",
            "notebook_max_lease_hours": "72",
            "memberships-TOTAL_FORMS": "0",
            "memberships-INITIAL_FORMS": "0",
            "quotas-TOTAL_FORMS": "0",
            "quotas-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 200  # the form again, with the error
    assert "webhook" in response.content.decode().lower() and "::1" in response.content.decode()
    assert Team.objects.get(pk=team.pk).webhook_url == ""


def test_a_name_that_resolves_to_loopback_is_refused(people, api, team, resolver):
    table, _calls = resolver
    table["hooks.attacker.test"] = ["127.0.0.1"]
    response = api(people["team_admin"]).patch(
        "/api/v1/teams/vision/", {"webhook_url": "https://hooks.attacker.test/x"}, format="json"
    )
    assert response.status_code == 400
    assert "127.0.0.1" in response.json()["webhook_url"][0]


def test_a_public_address_is_accepted_and_an_allowed_network_too(people, api, team, resolver, settings):
    table, _calls = resolver
    table["hooks.partner.test"] = ["203.0.114.10"]
    client = api(people["team_admin"])
    assert client.patch(
        "/api/v1/teams/vision/", {"webhook_url": "https://hooks.partner.test/x"}, format="json"
    ).status_code == 200
    assert client.patch("/api/v1/teams/vision/", {"webhook_url": "http://10.1.2.3/x"}, format="json").status_code == 400
    settings.EASYAI_WEBHOOK_ALLOWED_NETWORKS = ["10.0.0.0/8"]  # a platform admin allows the office network
    assert client.patch("/api/v1/teams/vision/", {"webhook_url": "http://10.1.2.3/x"}, format="json").status_code == 200
    assert Team.objects.get(pk=team.pk).webhook_url == "http://10.1.2.3/x"


def _event(team: Team, owner, fake_backend) -> JobEvent:
    job = Job.objects.create(name="resnet", team=team, owner=owner, cluster=fake_backend.cluster, framework="batch",
                             spec={})
    return JobEvent.objects.create(job=job, from_state="pending", to_state="running", reason="observed")


def test_dns_rebinding_after_the_save_is_caught_when_sending(owner, team, fake_backend, resolver, receiver, settings):
    port, hits = receiver
    table, _calls = resolver
    settings.EASYAI_NOTIFY_WEBHOOKS = True
    table["hooks.rebind.test"] = ["203.0.114.10"]
    team.webhook_url = f"http://hooks.rebind.test:{port}/hook"
    team.full_clean()  # public when saved
    team.save()
    table["hooks.rebind.test"] = ["127.0.0.1"]  # and loopback when sent
    assert send_for_event(_event(team, owner, fake_backend).pk)["webhook"] is False
    assert hits == []
    with pytest.raises(webhooks.WebhookRefusedError, match="127.0.0.1"):
        webhooks.post_json(team.webhook_url, b"{}")


def test_the_name_is_resolved_once_and_the_connection_goes_to_that_address(resolver, receiver, settings):
    port, hits = receiver
    table, calls = resolver
    settings.EASYAI_WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    # First answer: the allowed loopback receiver; any later look-up would answer the metadata service.
    table["hooks.flip.test"] = ["127.0.0.1", "169.254.169.254"]
    assert webhooks.post_json(f"http://hooks.flip.test:{port}/hook", json.dumps({"a": 1}).encode()) == 204
    assert hits == ["/hook"] and calls == ["hooks.flip.test"]


def test_a_redirect_is_not_followed(owner, team, fake_backend, receiver, settings):
    port, hits = receiver
    settings.EASYAI_NOTIFY_WEBHOOKS = True
    settings.EASYAI_WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.1/32"]  # the test's receiver is on loopback
    team.webhook_url = f"http://127.0.0.1:{port}/redirect"
    team.save()
    assert send_for_event(_event(team, owner, fake_backend).pk)["webhook"] is False
    assert hits == ["/redirect"]  # never /target


def test_sending_refuses_what_saving_would(settings):
    for url in ("http://127.0.0.1/x", "http://169.254.169.254/", "http://[::1]/", "ftp://example.com/"):
        with pytest.raises(webhooks.WebhookRefusedError):
            webhooks.post_json(url, b"{}")
