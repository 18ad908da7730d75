"""First-run set-up: a platform admin, a first team and the local cluster, when there are none."""

import os
import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from clusters.models import Cluster
from jobs import templates
from jobs.models import JobTemplate
from teams.models import Membership, Team


class Command(BaseCommand):
    help = "Create the first admin (printing its password once), a default team and the local cluster."

    @transaction.atomic
    def handle(self, *args, **options):
        User = get_user_model()
        # Earlier versions kept the password in var/admin-password.txt, where anything running as the
        # portal's user could read it: shown one last time, then removed.
        legacy_file = settings.VAR_DIR / "admin-password.txt"
        admin = User.objects.filter(is_superuser=True).order_by("pk").first()
        password = ""
        if admin is None:
            username = os.environ.get("EASYAI_ADMIN_USER", "admin")
            password = os.environ.get("EASYAI_ADMIN_PASSWORD") or secrets.token_urlsafe(12)
            admin = User.objects.create_superuser(username, os.environ.get("EASYAI_ADMIN_EMAIL", ""), password)
            self.stdout.write(self.style.SUCCESS(f"Created the platform admin {username!r}."))
        elif legacy_file.exists():
            password = legacy_file.read_text().strip()
        if legacy_file.exists():
            legacy_file.unlink()
        if not Cluster.objects.exists():
            Cluster.objects.create(
                name="local", kind=Cluster.Kind.LOCAL, is_default=True, description="Processes on this host"
            )
            self.stdout.write("Created the local cluster (the default).")
        if not Team.objects.exists():
            team = Team.objects.create(name="Default", slug="default", description="The first team.")
            Membership.objects.create(team=team, user=admin, role=Membership.Role.ADMIN)
            self.stdout.write("Created the team 'default' with the admin as its team admin.")
        if not JobTemplate.objects.filter(team__isnull=True).exists():
            loaded = templates.load_platform_templates()  # the shipped job templates, one per framework
            self.stdout.write(f"Loaded {len(loaded)} job templates (examples/templates).")
        if password:
            self.stdout.write(
                self.style.SUCCESS(
                    f"Sign in at {settings.SITE_URL}/ as {admin.username!r} with password {password!r}.\n"
                    "This password is shown only this once and kept nowhere: note it now"
                    f" (`manage.py changepassword {admin.username}` sets a new one)."
                )
            )
        else:
            self.stdout.write(
                f"Sign in at {settings.SITE_URL}/ as {admin.username!r} (the password was shown when the account was"
                f" created; `manage.py changepassword {admin.username}` sets a new one)."
            )
