"""Re-encrypt every value stored under the field key (kubeconfigs, apps' secrets) with a new key (clusters/crypto.py)."""

from __future__ import annotations

from typing import Any

from cryptography.fernet import Fernet
from django.apps import apps as django_apps
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from clusters import crypto


class Command(BaseCommand):
    help = (
        "Re-encrypt every cluster's kubeconfig (and every other value kept under the field key, such as apps' "
        "secrets) with a new field key. With the key in its file (the default) a "
        "new key is made (or --new-key is used) and replaces the file. With EASYAI_FIELD_KEY in the "
        "environment, put the new key first there (EASYAI_FIELD_KEY=new,old), restart, run this, then drop "
        "the old key."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--new-key", default="", help="the new Fernet key, as --new-key=KEY (a key may begin with -; default: a new one)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        new_key = options["new_key"].strip()
        if new_key:
            try:
                Fernet(new_key)
            except ValueError as exc:
                raise CommandError(f"--new-key is not a Fernet key: {exc}") from exc
        try:
            old_keys = crypto.current_keys()
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc)) from exc
        from_environment = crypto.keys_from_environment()
        if from_environment and new_key:
            raise CommandError(
                "EASYAI_FIELD_KEY is set in the environment, so this command cannot change the key: set "
                "EASYAI_FIELD_KEY=<new key>,<old key>, restart the portal and its workers, run this command "
                "without --new-key, then drop the old key."
            )
        unreadable = []
        for model, field in self._fields():
            for row in model.objects.exclude(**{field: ""}):
                try:
                    crypto.decrypt(getattr(row, field))
                except ImproperlyConfigured:
                    unreadable.append(f"{model._meta.verbose_name} {row}")
        if unreadable:
            raise CommandError(
                f"no key in use opens the encrypted values of {', '.join(unreadable)}: nothing was changed. "
                "Upload those kubeconfigs (or set those secrets) again in the admin, or set the key that opens "
                "them first."
            )
        if not from_environment:
            new_key = new_key or Fernet.generate_key().decode()
            # New key first, old ones kept: every process encrypts with the new key and still opens the old
            # rows until each is rewritten below.
            crypto.write_key_file([new_key, *[k for k in old_keys if k != new_key]])
        count = 0
        with transaction.atomic():
            for model, field in self._fields():
                for row in model.objects.select_for_update().exclude(**{field: ""}):
                    model.objects.filter(pk=row.pk).update(**{field: crypto.reencrypt(getattr(row, field))})
                    count += 1
        if not from_environment:
            crypto.write_key_file([new_key])
            self.stdout.write(f"Re-encrypted {count} value(s) with a new key, written to {crypto.key_file()}.")
        else:
            self.stdout.write(
                f"Re-encrypted {count} value(s) with the first key of EASYAI_FIELD_KEY; "
                "the other keys there may now be dropped."
            )

    @staticmethod
    def _fields() -> list[tuple[Any, str]]:
        return [(django_apps.get_model(label), field) for label, field in crypto.ENCRYPTED_FIELDS]
