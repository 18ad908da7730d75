"""The cluster admin: kubeconfig stored encrypted and never shown; check connection against the fake server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import yaml
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from clusters.admin import kubeconfig_status
from clusters.models import Cluster
from clusters.tests.fakekube import FakeKube, make_cluster, running_fake

pytestmark = pytest.mark.django_db


@pytest.fixture
def fake_kube() -> Iterator[FakeKube]:
    yield from running_fake()


@pytest.fixture
def admin_client(client, django_user_model):
    user = django_user_model.objects.create_superuser("root", "root@example.com", "pw-123456789")
    client.force_login(user)
    return client


def add_form(**fields):
    data = {"name": "gpu-a", "kind": "kubernetes", "enabled": "on", "description": "", "settings": "{}",
            "namespace_prefix": "easyai-", "nfs_server": "", "nfs_path": "", "gpu_resource_name": "nvidia.com/gpu",
            "scheduler": "default", "image_pull_secrets": "[]", "ingress_host": ""}  # fmt: skip
    data.update(fields)
    return data


def test_pasted_kubeconfig_is_stored_encrypted_and_never_shown(admin_client, fake_kube):
    secret = yaml.safe_dump(fake_kube.kubeconfig())
    response = admin_client.post(reverse("admin:clusters_cluster_add"), add_form(kubeconfig_text=secret))
    assert response.status_code == 302, response.content
    cluster = Cluster.objects.get(name="gpu-a")
    stored = Cluster.objects.filter(pk=cluster.pk).values_list("kubeconfig_encrypted", flat=True).get()
    assert stored and fake_kube.token not in stored and "clusters:" not in stored
    assert yaml.safe_load(cluster.kubeconfig) == fake_kube.kubeconfig()
    page = admin_client.get(reverse("admin:clusters_cluster_change", args=[cluster.pk])).content.decode()
    assert fake_kube.token not in page and stored not in page
    assert f"set (server {fake_kube.url})" in page


def test_uploaded_kubeconfig_is_stored_and_an_empty_edit_keeps_it(admin_client, fake_kube):
    upload = SimpleUploadedFile("config", yaml.safe_dump(fake_kube.kubeconfig()).encode())
    admin_client.post(reverse("admin:clusters_cluster_add"), add_form(kubeconfig_file=upload))
    cluster = Cluster.objects.get(name="gpu-a")
    before = cluster.kubeconfig_encrypted
    assert before
    response = admin_client.post(reverse("admin:clusters_cluster_change", args=[cluster.pk]),
                                 add_form(nfs_server="nfs.example.org", nfs_path="/export"))  # fmt: skip
    assert response.status_code == 302
    cluster.refresh_from_db()
    assert cluster.kubeconfig_encrypted == before and cluster.nfs_server == "nfs.example.org"


def test_a_kubernetes_cluster_needs_a_kubeconfig_or_in_cluster(admin_client):
    response = admin_client.post(reverse("admin:clusters_cluster_add"), add_form())
    assert response.status_code == 200 and b"needs a kubeconfig" in response.content
    response = admin_client.post(reverse("admin:clusters_cluster_add"), add_form(kubeconfig_text="just: text"))
    assert b"clusters, users and contexts" in response.content
    assert not Cluster.objects.exists()
    response = admin_client.post(reverse("admin:clusters_cluster_add"), add_form(in_cluster="on"))
    assert response.status_code == 302


def test_local_clusters_share_the_admin(admin_client):
    Cluster.objects.create(name="laptop", kind=Cluster.Kind.LOCAL, settings={"gpu": 0})
    page = admin_client.get(reverse("admin:clusters_cluster_changelist")).content.decode()
    assert "laptop" in page
    assert kubeconfig_status(Cluster.objects.get(name="laptop")) == "not set"


def test_check_connection_reports_version_and_crds(admin_client, fake_kube):
    cluster = make_cluster(fake_kube)
    response = admin_client.post(reverse("admin:clusters_cluster_changelist"),
                                 {"action": "check_connection", "_selected_action": [cluster.pk]}, follow=True)  # fmt: skip
    text = response.content.decode()
    assert "Kubernetes v1.29.4" in text and "pytorchjobs.kubeflow.org" in text and "jobs.batch.volcano.sh" in text
    assert "KServe: not installed" in text
    cluster.refresh_from_db()
    assert cluster.healthy and cluster.server_version == "v1.29.4" and cluster.health_checked_at
    assert "pytorchjobs.kubeflow.org" in cluster.health_message


def test_check_connection_warns_outside_the_tested_versions(admin_client, fake_kube):
    fake_kube.version = "v1.33.1"
    cluster = make_cluster(fake_kube)
    response = admin_client.post(reverse("admin:clusters_cluster_changelist"),
                                 {"action": "check_connection", "_selected_action": [cluster.pk]}, follow=True)  # fmt: skip
    assert "outside the tested range 1.18–1.30" in response.content.decode()


def test_check_connection_records_a_refusal(admin_client, fake_kube):
    cluster = make_cluster(fake_kube)
    fake_kube.token = "revoked"
    admin_client.post(reverse("admin:clusters_cluster_changelist"),
                      {"action": "check_connection", "_selected_action": [cluster.pk]})  # fmt: skip
    cluster.refresh_from_db()
    assert not cluster.healthy and "401" in cluster.health_message
    page = admin_client.get(reverse("admin:clusters_cluster_changelist")).content.decode()
    assert "icon-no.svg" in page  # health shown in the list
