"""Kubeconfigs re-encrypted with the field key of its own (no longer derived from SECRET_KEY)."""

from django.db import migrations


def reencrypt(apps, schema_editor):
    from django.core.exceptions import ImproperlyConfigured

    from clusters import crypto

    Cluster = apps.get_model("clusters", "Cluster")
    for cluster in Cluster.objects.exclude(kubeconfig_encrypted="").only("pk", "kubeconfig_encrypted"):
        if not crypto.needs_reencryption(cluster.kubeconfig_encrypted):
            continue
        try:
            token = crypto.reencrypt(cluster.kubeconfig_encrypted)
        except ImproperlyConfigured:
            continue  # no key opens it (already unreadable before): the admin shows it as such
        Cluster.objects.filter(pk=cluster.pk).update(kubeconfig_encrypted=token)


class Migration(migrations.Migration):
    dependencies = [("clusters", "0001_initial")]

    operations = [migrations.RunPython(reencrypt, migrations.RunPython.noop, elidable=True)]
