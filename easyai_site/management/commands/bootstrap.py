"""First-run set-up: a platform admin, a first team and the local cluster, when there are none."""

import os
import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from clusters.models import Cluster
from teams.models import Membership, Team


class Command(BaseCommand):
    help = "Create the first admin (printing how to sign in), a default team and the local cluster."

    @transaction.atomic
    def handle(self, *args, **options):
        User = get_user_model()
        password_file = settings.VAR_DIR / "admin-password.txt"
        admin = User.objects.filter(is_superuser=True).order_by("pk").first()
        if admin is None:
            username = os.environ.get("EASYAI_ADMIN_USER", "admin")
            password = os.environ.get("EASYAI_ADMIN_PASSWORD") or secrets.token_urlsafe(12)
            admin = User.objects.create_superuser(username, os.environ.get("EASYAI_ADMIN_EMAIL", ""), password)
            password_file.write_text(password + "\n")
            password_file.chmod(0o600)
            self.stdout.write(self.style.SUCCESS(f"Created the platform admin {username!r}."))
        if not Cluster.objects.exists():
            Cluster.objects.create(name="local", kind=Cluster.Kind.LOCAL, is_default=True,
                                   description="Processes on this host")
            self.stdout.write("Created the local cluster (the default).")
        if not Team.objects.exists():
            team = Team.objects.create(name="Default", slug="default", description="The first team.")
            Membership.objects.create(team=team, user=admin, role=Membership.Role.ADMIN)
            self.stdout.write("Created the team 'default' with the admin as its team admin.")
        password = password_file.read_text().strip() if password_file.exists() else "(the password you set)"
        self.stdout.write(
            self.style.SUCCESS(
                f"Sign in at {settings.SITE_URL}/ as {admin.username!r} with password {password!r}"
                f" (kept in {password_file})."
            )
        )
