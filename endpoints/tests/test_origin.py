"""Endpoints on their own origin, tried as an attacker would: tickets, the credential cookie, cross-site requests.

The portal is http://127.0.0.1:<port> and the endpoint origin http://localhost:<port> here: one test server,
told apart by host name, as two names of one daphne are in production.
"""

from __future__ import annotations

import http.client
import json
import re
import time
from pathlib import Path
from unittest import mock

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import Client
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from endpoints import origin as endpoint_origin
from jobs.models import Job
from teams.models import Membership
from testing.wait import wait_until
from testing.web import token_for

REPO = Path(__file__).resolve().parents[2]
SCRIPT_TAG = re.compile(r"<script\b([^>]*)>", re.IGNORECASE)
EVENT_HANDLER = re.compile(r"<[^>]*\son[a-z]+\s*=", re.IGNORECASE)


def request(port: int, host: str, path: str, *, method: str = "GET", body: bytes | None = None, **headers: str):
    """One request with this Host (no redirect followed): status, headers, body."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request(
            method, path, body=body, headers={"Host": host, **{k.replace("_", "-"): v for k, v in headers.items()}}
        )
        response = connection.getresponse()
        return response.status, response.headers, response.read()
    finally:
        connection.close()


def session_of(user) -> str:
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


def credential_from(response_headers) -> str:
    (cookie,) = [c for c in response_headers.get_all("Set-Cookie") or [] if c.startswith("easyai_endpoint=")]
    return cookie.split(";", 1)[0].split("=", 1)[1]


def cookie_from(response_headers, name: str) -> str:
    (cookie,) = [c for c in response_headers.get_all("Set-Cookie") or [] if c.startswith(f"{name}=")]
    return cookie.split(";", 1)[0]


def ticket_through_the_portal(origins, user, path: str) -> tuple[str, str]:
    """What a browser does from a link on the portal: the portal sends it on; the endpoint origin, finding no
    cookie of its own, gives it a state and sends it to the portal; the portal (signed in) sends it back with a
    ticket for that state. Returns the ticket's URL on the endpoint origin (its path) and the state cookie."""
    session = f"sessionid={session_of(user)}"
    status, headers, _ = request(origins.port, origins.portal, path, Cookie=session)
    assert status == 302 and headers["Location"] == f"http://{origins.endpoints}{path}", (status, headers)
    status, headers, _ = request(origins.port, origins.endpoints, path, Accept="text/html")
    assert status == 302 and headers["Location"].startswith(f"http://{origins.portal}{path}"), (status, headers)
    state = cookie_from(headers, "easyai_state")
    assert "_easyai_state=" + state.split("=", 1)[1] in headers["Location"]
    status, headers, _ = request(origins.port, origins.portal, headers["Location"][len(f"http://{origins.portal}"):],
                                 Cookie=session)  # fmt: skip
    location = headers["Location"]
    assert status == 302 and location.startswith(f"http://{origins.endpoints}{path}"), (status, headers)
    assert "_easyai_ticket=" in location and "_easyai_state" not in location
    assert headers["Referrer-Policy"] == "no-referrer"
    return location[len(f"http://{origins.endpoints}") :], state


# --- settings, hosts, tickets ---------------------------------------------------------------------------


def test_the_endpoint_origin_must_not_share_the_portals_host(monkeypatch):
    from easyai_site import settings as site_settings

    monkeypatch.setattr(site_settings, "SITE_URL", "http://127.0.0.1:8000")
    monkeypatch.delenv("EASYAI_ENDPOINTS_URL", raising=False)
    assert site_settings._endpoints_url("EASYAI_ENDPOINTS_URL") == "http://localhost:8001"
    for bad in (
        "http://127.0.0.1:8001",
        "ftp://x.example.com",
        "https://x.example.com/path",
        "https://a.*.example.com",
    ):
        monkeypatch.setenv("EASYAI_ENDPOINTS_URL", bad)
        with pytest.raises(ImproperlyConfigured):
            site_settings._endpoints_url("EASYAI_ENDPOINTS_URL")
    monkeypatch.setattr(site_settings, "SITE_URL", "https://ai.example.com")
    monkeypatch.delenv("EASYAI_ENDPOINTS_URL")
    with pytest.raises(ImproperlyConfigured, match="EASYAI_ENDPOINTS_URL is required"):
        site_settings._endpoints_url("EASYAI_ENDPOINTS_URL")
    monkeypatch.setenv("EASYAI_ENDPOINTS_URL", "https://*.ai.example.com")
    with pytest.raises(ImproperlyConfigured, match="shares its host"):
        site_settings._endpoints_url("EASYAI_ENDPOINTS_URL")
    monkeypatch.setenv("EASYAI_ENDPOINTS_URL", "https://*.endpoints.example.net")
    assert site_settings._endpoints_url("EASYAI_ENDPOINTS_URL") == "https://*.endpoints.example.net"


def test_the_endpoint_origin_is_told_apart_by_host_name_and_a_wildcard_gives_each_endpoint_its_host(settings):
    settings.EASYAI_ENDPOINTS_URL = "http://localhost:8001"
    assert endpoint_origin.serves("localhost:8001") and endpoint_origin.serves("localhost:8000")  # cookies ignore ports
    assert not endpoint_origin.serves("127.0.0.1:8001") and not endpoint_origin.serves("")
    assert endpoint_origin.host_fits("localhost:8001", "j-abcdefgh", "main-0", "web")

    settings.EASYAI_ENDPOINTS_URL = "https://*.endpoints.example.net"
    url = endpoint_origin.endpoint_url("j-abcdefgh", "main-0", "web", "/endpoints/j-abcdefgh/main-0/web/x?y=1")
    assert url == "https://j-abcdefgh--main-0--web.endpoints.example.net/endpoints/j-abcdefgh/main-0/web/x?y=1"
    assert endpoint_origin.serves("j-abcdefgh--main-0--web.endpoints.example.net")
    assert not endpoint_origin.serves("endpoints.example.net") and not endpoint_origin.serves("ai.example.net")
    assert endpoint_origin.host_fits("j-abcdefgh--main-0--web.endpoints.example.net", "j-abcdefgh", "main-0", "web")
    assert not endpoint_origin.host_fits("j-other000--main-0--web.endpoints.example.net", "j-abcdefgh", "main-0", "web")
    long_label = endpoint_origin.host_label("j-abcdefgh", "worker-12", "a" * 60)
    assert len(long_label) <= 63 and long_label.startswith("j-abcdefgh--")
    assert endpoint_origin.origin().source == "https://*.endpoints.example.net"


def test_a_ticket_opens_one_endpoint_in_one_browser_once_and_only_briefly(db, owner):
    key, state = "j-abcdefgh/main-0/web", endpoint_origin.state_new()
    ticket = endpoint_origin.ticket_issue(owner, "j-abcdefgh", "main-0", "web", state)
    with pytest.raises(endpoint_origin.Refused, match="another endpoint"):
        endpoint_origin.ticket_redeem(ticket, "j-abcdefgh/main-0/other", [state])
    with pytest.raises(endpoint_origin.Refused, match="not valid"):
        endpoint_origin.ticket_redeem(ticket[:-2] + "xx", key, [state])
    for states in ([], [""], [endpoint_origin.state_new()]):  # a browser that did not ask for it
        with pytest.raises(endpoint_origin.Refused, match="another browser"):
            endpoint_origin.ticket_redeem(ticket, key, states)
    credential = endpoint_origin.credential_issue(endpoint_origin.ticket_redeem(ticket, key, ["other", state]))
    with pytest.raises(endpoint_origin.Refused, match="used already"):
        endpoint_origin.ticket_redeem(ticket, key, [state])
    with pytest.raises(endpoint_origin.Refused, match="not valid"):
        endpoint_origin.ticket_redeem(credential, key, [state])  # a cookie is no ticket
    assert endpoint_origin.credential_read(ticket, key) is None  # nor a ticket a cookie
    assert endpoint_origin.credential_read(credential, "j-abcdefgh/main-0/other") is None
    assert endpoint_origin.user_of(endpoint_origin.credential_read(credential, key)) == owner
    owner.set_password("changed-since")
    owner.save()
    assert endpoint_origin.user_of(endpoint_origin.credential_read(credential, key)) is None

    with mock.patch("time.time", return_value=time.time() - endpoint_origin.TICKET_MAX_AGE_S - 5):
        old = endpoint_origin.ticket_issue(owner, "j-abcdefgh", "main-0", "web", state)
    with pytest.raises(endpoint_origin.Refused, match="expired"):
        endpoint_origin.ticket_redeem(old, key, [state])


# --- the portal's pages -----------------------------------------------------------------------------------


def test_portal_pages_send_a_content_security_policy_without_inline_scripts(client, owner):
    client.force_login(owner)
    response = client.get("/jobs/")
    assert response.status_code == 200
    policy = dict(part.strip().split(" ", 1) for part in response["Content-Security-Policy"].split(";"))
    assert policy["script-src"] == "'self'"  # no 'unsafe-inline', no 'unsafe-eval'
    assert policy["object-src"] == "'none'" and policy["frame-ancestors"] == "'none'"
    assert "http://localhost:8001" in policy["form-action"]  # opening a TensorBoard posts, then redirects there
    assert client.get("/accounts/login/")["Content-Security-Policy"]
    assert client.get("/api/docs/")["Content-Security-Policy"]


def test_the_portals_templates_hold_no_inline_script_the_policy_would_block():
    found = []
    for template in sorted((REPO / "templates").rglob("*.html")):
        text = template.read_text()
        found += [
            f"{template.name}: <script{m.group(1)}>" for m in SCRIPT_TAG.finditer(text) if "src=" not in m.group(1)
        ]
        found += [f"{template.name}: {m.group(0)}" for m in EVENT_HANDLER.finditer(text)]
    assert found == []


def test_hsts_is_sent_over_https_without_debug(client, settings):
    settings.DEBUG = False
    settings.SECURE_HSTS_SECONDS = 31536000
    assert client.get("/accounts/login/", secure=True)["Strict-Transport-Security"] == "max-age=31536000"
    assert "Strict-Transport-Security" not in client.get("/accounts/login/")


# --- through a real server ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_browser_reaches_an_endpoint_by_a_ticket_and_a_cookie_of_its_own_never_the_portals(
    settings,
    origins,
    web_job: Job,
    people,
):
    port, mate = origins.port, people["mate"]
    base = f"/endpoints/{web_job.public_id}/main-0/web/"
    token = f"Token {token_for(mate)}"
    wait_until(
        lambda: request(port, origins.endpoints, base + "echo", Authorization=token)[0] == 200, 30, "the endpoint"
    )

    # Anonymous on the portal: sign in first. Signed in: on to the endpoint origin with a ticket.
    status, headers, _ = request(port, origins.portal, base + "echo?keep=1")
    assert status == 302 and headers["Location"].startswith("/accounts/login/?next=")
    entry, state = ticket_through_the_portal(origins, mate, base + "echo?keep=1")
    ticket = endpoint_origin.ticket_in(entry.split("?", 1)[1])

    # Another browser (a victim sent the link: a login CSRF) does not hold the state: it is not signed in.
    status, _, body = request(port, origins.endpoints, entry)
    assert status == 403 and b"another browser" in body
    # The one that asked exchanges it for its own cookie (HttpOnly, this endpoint's path) and a clean URL.
    status, headers, _ = request(port, origins.endpoints, entry, Cookie=state)
    assert status == 302 and headers["Location"] == base + "echo?keep=1"
    set_cookie = [c for c in headers.get_all("Set-Cookie") if c.startswith("easyai_endpoint=")][0]
    assert re.fullmatch(rf"easyai_endpoint=[^;]+; Path={base}; Max-Age=3600; HttpOnly; SameSite=Lax", set_cookie)
    assert cookie_from(headers, "easyai_state") == "easyai_state="  # spent
    credential = credential_from(headers)
    assert request(port, origins.endpoints, entry, Cookie=state)[0] == 403  # once only

    # The cookie opens the endpoint; the upstream sees neither it nor the portal's cookies.
    portal_session = session_of(mate)
    cookies = f"easyai_endpoint={credential}; sessionid={portal_session}; csrftoken=abc; app=1"
    status, _, body = request(port, origins.endpoints, base + "echo", Cookie=cookies)
    assert status == 200
    assert {k.lower(): v for k, v in json.loads(body)["headers"]}["cookie"] == "app=1"

    # The portal's session is no credential on the endpoint origin: a browser is sent to the portal for a ticket.
    status, headers, _ = request(port, origins.endpoints, base + "echo", Cookie=f"sessionid={portal_session}",
                                 Accept="text/html")  # fmt: skip
    assert status == 302 and headers["Location"].startswith(f"http://{origins.portal}{base}echo?_easyai_state=")
    assert request(port, origins.endpoints, base + "echo", Cookie=f"sessionid={portal_session}")[0] == 401

    # The ticket and the cookie are for this endpoint only, and a ticket is brief.
    other = f"/endpoints/{web_job.public_id}/main-0/other/"
    stolen, state = ticket_through_the_portal(origins, mate, base + "echo")
    status, _, body = request(port, origins.endpoints, f"{other}?{stolen.split('?', 1)[1]}", Cookie=state)
    assert status == 403 and b"another endpoint" in body
    assert request(port, origins.endpoints, other + "echo", Cookie=f"easyai_endpoint={credential}")[0] == 401
    with mock.patch("time.time", return_value=time.time() - 120):
        expired = endpoint_origin.ticket_issue(mate, web_job.public_id, "main-0", "web", state.split("=", 1)[1])
    status, _, body = request(port, origins.endpoints, f"{base}?{endpoint_origin.TICKET_PARAM}={expired}",
                              Cookie=state)  # fmt: skip
    assert status == 403 and b"expired" in body
    assert ticket  # the first one, long used

    # A state-changing request riding on the cookie must come from the endpoint's own pages.
    with_cookie = {"Cookie": f"easyai_endpoint={credential}", "Content_Type": "application/x-www-form-urlencoded"}
    for forged in (
        {"Sec_Fetch_Site": "cross-site"},
        {"Sec_Fetch_Site": "same-site"},
        {"Origin": f"http://{origins.portal}"},
        {"Origin": "null"},
    ):
        status, _, body = request(port, origins.endpoints, base + "count", method="POST", body=b"a=1",
                                  **with_cookie, **forged)  # fmt: skip
        assert status == 403 and b"refused" in body, forged
    for own in ({"Sec_Fetch_Site": "same-origin"}, {"Origin": f"http://{origins.endpoints}"}):
        status, _, body = request(port, origins.endpoints, base + "count", method="POST", body=b"a=1",
                                  **with_cookie, **own)  # fmt: skip
        assert status == 200 and json.loads(body) == {"received": 3}, own
    # A token is not ambient (a page cannot make a browser send it): its requests are not cross-site checked.
    status, _, _ = request(port, origins.endpoints, base + "count", method="POST", body=b"a=1",
                           Authorization=f"Token {token_for(mate)}", Sec_Fetch_Site="cross-site")  # fmt: skip
    assert status == 200

    # Websockets alike: the cookie opens one from the endpoint's own origin only.
    socket_url = f"ws://{origins.endpoints}{base}ws"
    with connect(socket_url, origin=f"http://{origins.endpoints}", additional_headers={"Cookie": with_cookie["Cookie"]},
                 open_timeout=10) as ws:  # fmt: skip
        ws.send("over the proxy")
        assert ws.recv(timeout=10) == "over the proxy"
    with pytest.raises(InvalidStatus):
        connect(socket_url, origin=f"http://{origins.portal}", additional_headers={"Cookie": with_cookie["Cookie"]},
                open_timeout=10)  # fmt: skip
    # ...and a page of the endpoint origin opens none of the portal's sockets, whatever cookies it has.
    with pytest.raises(InvalidStatus):
        connect(f"ws://{origins.portal}/ws/jobs/{web_job.public_id}/tasks/main-0/log/",
                origin=f"http://{origins.endpoints}", additional_headers={"Cookie": f"sessionid={portal_session}"},
                open_timeout=10)  # fmt: skip
    # The portal's origin serves no endpoint socket, even to the signed-in owner of the session.
    with pytest.raises(InvalidStatus):
        connect(f"ws://{origins.portal}{base}ws", origin=f"http://{origins.portal}",
                additional_headers={"Cookie": f"sessionid={portal_session}"}, open_timeout=10)  # fmt: skip

    # The portal's own URLs are not served on the endpoint origin, nor endpoints on the portal's.
    status, headers, _ = request(port, origins.endpoints, "/jobs/?x=1", Cookie=f"sessionid={portal_session}")
    assert status == 302 and headers["Location"] == f"http://{origins.portal}/jobs/?x=1"
    assert request(port, origins.endpoints, "/api/v1/teams/", method="POST", body=b"{}")[0] == 404
    status, headers, _ = request(port, origins.portal, base + "count", method="POST", body=b"a=1")
    assert status == 308 and headers["Location"] == f"http://{origins.endpoints}{base}count"
    status, headers, _ = request(port, origins.portal, base + "echo", Authorization=f"Token {token_for(mate)}")
    assert status == 308 and headers["Location"] == f"http://{origins.endpoints}{base}echo"

    # The cookie is re-checked against the permission module: a revoked membership bites within seconds, on new
    # requests and on a socket already open (closed with 4410, as the portal's own sockets are).
    settings.EASYAI_WS_RECHECK_SECONDS = 0.5
    with connect(socket_url, origin=f"http://{origins.endpoints}", additional_headers={"Cookie": with_cookie["Cookie"]},
                 open_timeout=10) as open_socket:  # fmt: skip
        open_socket.send("still here")
        assert open_socket.recv(timeout=10) == "still here"
        Membership.objects.filter(user=mate).delete()
        wait_until(lambda: request(port, origins.endpoints, base + "echo", Cookie=with_cookie["Cookie"])[0] == 404,
                   10, "the revoked cookie to be refused")  # fmt: skip
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                open_socket.recv(timeout=10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4410
    assert request(port, origins.portal, base + "echo", Cookie=f"sessionid={portal_session}")[0] == 404


@pytest.mark.slow
def test_an_outsider_gets_no_ticket_and_a_forged_one_opens_nothing(
    origins,
    web_job: Job,
    people,
):
    port, outsider = origins.port, people["outsider"]
    base = f"/endpoints/{web_job.public_id}/main-0/web/"
    status, headers, _ = request(port, origins.portal, base, Cookie=f"sessionid={session_of(outsider)}")
    assert status == 404 and "Location" not in headers
    # A ticket made for the outsider (as if the portal erred) still meets the permission module at the proxy.
    state = endpoint_origin.state_new()
    ticket = endpoint_origin.ticket_issue(outsider, web_job.public_id, "main-0", "web", state)
    status, headers, _ = request(port, origins.endpoints, f"{base}?{endpoint_origin.TICKET_PARAM}={ticket}",
                                 Cookie=f"easyai_state={state}")  # fmt: skip
    assert status == 302
    assert (
        request(port, origins.endpoints, base + "echo", Cookie=f"easyai_endpoint={credential_from(headers)}")[0] == 404
    )


@pytest.mark.slow
def test_under_a_wildcard_each_endpoint_has_a_host_of_its_own_and_its_ticket_and_cookie_stay_there(
    wildcard,
    web_job: Job,
    people,
):
    port, mate = wildcard.port, people["mate"]
    base = f"/endpoints/{web_job.public_id}/main-0/web/"
    own = f"{web_job.public_id}--main-0--web.localhost:{port}"
    neighbour = f"{web_job.public_id}--main-0--other.localhost:{port}"
    wildcard.endpoints = own
    wait_until(lambda: request(port, own, base + "echo", Authorization=f"Token {token_for(mate)}")[0] == 200,
               30, "the endpoint")  # fmt: skip

    entry, state = ticket_through_the_portal(wildcard, mate, base + "echo")
    # Its path on another endpoint's host is refused before the ticket is even looked at (and stays unused).
    assert request(port, neighbour, entry, Cookie=state)[0] == 404
    status, headers, _ = request(port, own, entry, Cookie=state)
    assert status == 302 and headers["Location"] == base + "echo"
    cookie = f"easyai_endpoint={credential_from(headers)}"
    status, _, body = request(port, own, base + "echo", Cookie=cookie)
    assert status == 200 and json.loads(body)["path"] == base + "echo"
    assert {k.lower(): v for k, v in json.loads(body)["headers"]}["host"] == own
    assert request(port, neighbour, base + "echo", Cookie=cookie)[0] == 404
    # The same-site neighbour cannot post on it either: Sec-Fetch-Site says same-site, not same-origin.
    status, _, _ = request(
        port, own, base + "count", method="POST", body=b"x", Cookie=cookie, Sec_Fetch_Site="same-site"
    )
    assert status == 403


def test_cookie_domains_that_would_reach_the_endpoint_origin_are_refused(settings):
    settings.EASYAI_ENDPOINTS_URL = "https://endpoints.example.net"
    assert endpoint_origin.cookie_domain_problem() == ""
    settings.SESSION_COOKIE_DOMAIN = ".example.net"
    assert "SESSION_COOKIE_DOMAIN" in endpoint_origin.cookie_domain_problem()
    settings.SESSION_COOKIE_DOMAIN = "ai.example.com"
    settings.CSRF_COOKIE_DOMAIN = "endpoints.example.net"
    assert "CSRF_COOKIE_DOMAIN" in endpoint_origin.cookie_domain_problem()
    settings.CSRF_COOKIE_DOMAIN = None
    settings.EASYAI_ENDPOINTS_URL = "https://*.endpoints.example.net"
    assert endpoint_origin.cookie_domain_problem() == ""
    settings.SESSION_COOKIE_DOMAIN = "j-abcdefgh--main-0--web.endpoints.example.net"
    assert endpoint_origin.cookie_domain_problem()
