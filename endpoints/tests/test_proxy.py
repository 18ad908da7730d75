"""A job's own web endpoint: reported by the backends, recorded on its task, served by the portal's proxy."""

from __future__ import annotations

import http.client
import json
import re
import time

import pytest

from clusters.backends.base import TaskDescription
from clusters.backends.kubernetes import manifests, observe
from clusters.backends.local import contract
from endpoints.proxy import Target, rewrite_location, rewrite_set_cookie
from testing.web import fetch, token_for, wait_answering


@pytest.mark.slow
def test_a_jobs_endpoint_is_proxied_with_headers_redirects_cookies_and_streams(asgi_server, web_job, people):
    owner, port = people["owner"], asgi_server.port
    address = web_job.tasks.get().endpoints["web"]
    assert re.fullmatch(r"127\.0\.0\.1:\d+", address) and address != "127.0.0.1:8080"
    base = f"/endpoints/{web_job.public_id}/main-0/web/"
    token = token_for(owner)
    seen = json.loads(
        # A token in the query is no credential on the endpoint origin (only the header is), and goes no further.
        wait_answering(port, base + "echo?token=" + token + "&keep=1", owner)
    )
    assert seen["path"] == base + "echo?keep=1"
    headers = {k.lower(): v for k, v in seen["headers"]}
    assert "authorization" not in headers  # the portal's token is the portal's
    assert (
        headers["host"] == f"localhost:{port}"
    )  # the client's (the endpoint origin's), as Jupyter's origin checks need
    assert headers["x-forwarded-prefix"] == base.rstrip("/") and headers["x-forwarded-for"] == "127.0.0.1"
    assert headers["x-forwarded-proto"] == "http"

    status, _h, body = fetch(port, base + "echo", user=owner, Cookie="sessionid=abc; csrftoken=def; app=1")
    assert status == 200
    assert {k.lower(): v for k, v in json.loads(body)["headers"]}["cookie"] == "app=1"

    # A redirect to the upstream's own address comes back under the prefix; its cookies cannot touch the portal's.
    status, response, _ = fetch(port, base + "go", user=owner)
    assert status == 302 and response["Location"] == base + "echo"
    cookies = response.get_all("Set-Cookie")
    assert cookies == [f"app=1; HttpOnly; Path={base}"], cookies

    # Request bodies stream to the upstream (20 MiB, chunked here, without a length), and responses back.
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    blob = b"x" * (1 << 20)
    connection.request(
        "POST",
        base + "count",
        body=iter([blob] * 20),
        headers={"Authorization": f"Token {token}", "Host": f"localhost:{port}"},
        encode_chunked=True,
    )
    assert json.loads(connection.getresponse().read()) == {"received": 20 << 20}
    connection.close()

    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    started = time.monotonic()
    connection.request("GET", base + "slow", headers={"Authorization": f"Token {token}", "Host": f"localhost:{port}"})
    response = connection.getresponse()
    assert response.read1(100) == b"first\n"  # here while the upstream still pauses before its second chunk
    first_at = time.monotonic() - started
    assert response.read() == b"second\n"
    connection.close()
    assert first_at < 1.2, first_at

    # Anyone who may see the job may open its endpoints; outsiders do not learn it exists.
    assert fetch(port, base + "echo", user=people["mate"])[0] == 200
    assert fetch(port, base + "echo", user=people["outsider"])[0] == 404
    assert fetch(port, f"/endpoints/{web_job.public_id}/main-0/nope/", user=owner)[0] == 404
    assert fetch(port, f"/endpoints/{web_job.public_id}/main-9/web/", user=owner)[0] == 404
    status, response, _ = fetch(port, base.rstrip("/"), user=owner)
    assert status == 308 and response["Location"] == base


def test_local_backend_gives_each_named_port_a_free_host_port_in_the_environment():
    task = TaskDescription("main", 0, 1, "main-0", "", ["true"], "/", {}, 1000, 1 << 30, 0, ports={"tensorboard": 6006})
    from clusters.backends.base import JobDescription

    job = JobDescription("j-abcdefgh", "x", "t", "o", "batch", "normal", [task])
    assert contract.task_env(job, task, {}, [], endpoints={"tensorboard": 41234})["EASYAI_PORT_TENSORBOARD"] == "41234"
    assert contract.task_env(job, task, {}, [])["EASYAI_PORT_TENSORBOARD"] == "6006"  # a dry run's plan


def test_kubernetes_renders_container_ports_and_reports_pod_ip_endpoints():
    task = TaskDescription(
        "notebook", 0, 1, "notebook-0", "img", ["jupyter"], "/", {}, 1000, 1 << 30, 0, ports={"jupyter": 8888}
    )
    from clusters.backends.base import JobDescription

    job = JobDescription("j-abcdefgh", "nb", "vision", "owner", "notebook", "normal", [task])
    from clusters.models import Cluster

    settings = Cluster(name="k", kind=Cluster.Kind.KUBERNETES, namespace_prefix="easyai-")
    (pod,) = manifests.render(job, settings)
    container = pod["spec"]["containers"][0]
    assert container["ports"] == [{"name": "jupyter", "containerPort": 8888, "protocol": "TCP"}]
    assert {"name": "EASYAI_PORT_JUPYTER", "value": "8888"} in container["env"]
    running = {"name": container["name"], "state": {"running": {}}}
    pod["status"] = {"phase": "Running", "podIP": "10.1.2.3", "containerStatuses": [running]}
    assert observe.task_observation(pod).endpoints == {"jupyter": "10.1.2.3:8888"}
    pod["status"]["phase"] = "Pending"
    assert observe.task_observation(pod).endpoints == {}


def test_location_and_cookie_rewriting():
    target = Target("127.0.0.1:5000", "j-abcdefgh", "/endpoints/j-abcdefgh/main-0/web/", False)
    assert rewrite_location("http://127.0.0.1:5000/endpoints/j-abcdefgh/main-0/web/a?b=1", target, "portal") == (
        "/endpoints/j-abcdefgh/main-0/web/a?b=1"
    )
    assert rewrite_location("/login", target, "portal") == "/endpoints/j-abcdefgh/main-0/web/login"
    assert rewrite_location("next", target, "portal") == "next"
    assert rewrite_location("https://example.com/x", target, "portal") == "https://example.com/x"
    assert rewrite_set_cookie("csrftoken=x; Path=/", target) is None
    assert rewrite_set_cookie("_xsrf=2|a; Path=/endpoints/j-abcdefgh/main-0/web/", target) == (
        "_xsrf=2|a; Path=/endpoints/j-abcdefgh/main-0/web/"
    )
    assert (
        rewrite_set_cookie("a=b; Path=/elsewhere; Secure", target)
        == "a=b; Secure; Path=/endpoints/j-abcdefgh/main-0/web/"
    )


@pytest.mark.slow
def test_a_revoked_api_token_is_refused_on_the_endpoint_origin_within_seconds(asgi_server, web_job, people):
    """The endpoint origin keeps a token's answer for a few seconds (AUTHORIZED_FOR_S) as it keeps its
    permission answers: a revoked token opens nothing once they have passed."""
    from endpoints.proxy import AUTHORIZED_FOR_S
    from teams.models import ApiToken
    from teams.services import token_revoke
    from testing.wait import wait_until

    owner, port = people["owner"], asgi_server.port
    base = f"/endpoints/{web_job.public_id}/main-0/web/"
    wait_answering(port, base + "echo", owner)
    key = token_for(owner)
    header = {"Authorization": f"Token {key}"}
    assert fetch(port, base + "echo", **header)[0] == 200
    token_revoke(user=owner, token_id=ApiToken.objects.get(user=owner).pk)
    wait_until(lambda: fetch(port, base + "echo", **header)[0] == 401, AUTHORIZED_FOR_S + 5, "the revoked token refused")
