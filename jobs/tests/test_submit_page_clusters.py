"""The submit page's cluster choice: an unhealthy cluster is marked as such, with the reason it was refused."""

from __future__ import annotations

import html
import re

from django.test import Client

from clusters.backends.kubernetes.health import check_connection
from clusters.models import Cluster
from testing.fakekube import make_cluster


def submit_page(user) -> str:
    client = Client()
    client.force_login(user)
    response = client.get("/jobs/new/")
    assert response.status_code == 200
    return response.content.decode()


def cluster_options(page: str) -> dict[str, str]:
    """value -> label of each choice of the cluster select."""
    select = re.search(r'<select name="cluster"[^>]*>(.*?)</select>', page, re.S)
    assert select, "no cluster select on the page"
    return {
        value: html.unescape(label.strip())
        for value, label in re.findall(r'<option value="([^"]*)"[^>]*>(.*?)</option>', select.group(1), re.S)
    }


def health_warning(page: str) -> str | None:
    found = re.search(
        r'<div class="alert alert-warning[^"]*" id="cluster-health"[^>]*>(.*?)</div>\s*</div>', page, re.S
    )
    if not found:
        return None
    return html.unescape(re.sub(r"<[^>]+>", "", re.sub(r"</(li|div)>", " ", found.group(1))))


def test_a_cluster_that_refused_us_is_marked_unhealthy_with_its_reason(owner, fake_backend, fake_kube):
    cluster = make_cluster(fake_kube)
    fake_kube.token = "revoked"
    assert not check_connection(cluster).ok  # the real client, refused with 401 by the fake API server
    cluster.refresh_from_db()
    assert not cluster.healthy and "401" in cluster.health_message

    page = submit_page(owner)
    options = cluster_options(page)
    assert options["gpu-a"].startswith("gpu-a — unhealthy: ") and "401" in options["gpu-a"]
    assert options["fake"] == "fake (default)"
    warning = health_warning(page)
    assert warning is not None and "gpu-a" in warning and "stay queued" in warning
    assert " ".join(cluster.health_message.split()) in " ".join(warning.split())
    assert 'aria-describedby="cluster-health"' in page


def test_healthy_clusters_carry_no_warning(owner, fake_backend):
    Cluster.objects.create(name="gpu-b", kind=Cluster.Kind.KUBERNETES, in_cluster=True)
    page = submit_page(owner)
    assert cluster_options(page) == {"": "the default cluster", "fake": "fake (default)", "gpu-b": "gpu-b"}
    assert health_warning(page) is None and 'id="cluster-health"' not in page


def test_a_long_reason_is_cut_in_the_choice_but_whole_in_the_warning(owner, fake_backend):
    reason = "403 Forbidden: " + "serviceaccount easyai cannot list pytorchjobs in the cluster scope " * 3
    Cluster.objects.create(name="gpu-c", kind=Cluster.Kind.KUBERNETES, in_cluster=True, healthy=False,
                           health_message=reason)  # fmt: skip
    Cluster.objects.create(name="gpu-d", kind=Cluster.Kind.KUBERNETES, in_cluster=True, healthy=False)
    Cluster.objects.create(name="gpu-off", kind=Cluster.Kind.KUBERNETES, in_cluster=True, enabled=False, healthy=False)
    page = submit_page(owner)
    options = cluster_options(page)
    assert options["gpu-c"].endswith("…") and len(options["gpu-c"]) < len(reason)
    assert options["gpu-d"] == "gpu-d — unhealthy"
    assert "gpu-off" not in options
    warning = " ".join(health_warning(page).split())
    assert " ".join(reason.split()) in warning and "gpu-d: no reason recorded" in warning
    assert "gpu-off" not in warning


def test_the_warning_stays_when_the_page_comes_back_with_errors(owner, fake_backend):
    Cluster.objects.create(name="gpu-e", kind=Cluster.Kind.KUBERNETES, in_cluster=True, healthy=False,
                           health_message="401 Unauthorized")  # fmt: skip
    client = Client()
    client.force_login(owner)
    response = client.post("/jobs/new/", {"source": "form", "name": "Bad Name", "framework": "pytorch",
                                          "cluster": "gpu-e", "action": "validate"})  # fmt: skip
    assert response.status_code == 400
    page = response.content.decode()
    assert cluster_options(page)["gpu-e"] == "gpu-e — unhealthy: 401 Unauthorized"
    assert "gpu-e" in health_warning(page)
