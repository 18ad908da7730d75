"""Tokens made before hashing (DRF's authtoken table, keys in clear) become hashed ApiTokens and keep working.

The authtoken app is no longer installed, so its table is read with SQL when it is there; each key is
hashed into teams_apitoken and the clear rows are deleted. Nothing is lost going backwards but the
hashes, which cannot be turned back into keys: reversing leaves the tokens as they are.
"""

import datetime

from django.db import migrations
from django.utils import timezone
from django.utils.dateparse import parse_datetime

LEGACY_TABLE = "authtoken_token"


def hash_legacy_tokens(apps, schema_editor):
    from teams.tokens import digest_of, prefix_of

    connection = schema_editor.connection
    if LEGACY_TABLE not in connection.introspection.table_names():
        return
    ApiToken = apps.get_model("teams", "ApiToken")
    table = schema_editor.quote_name(LEGACY_TABLE)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {schema_editor.quote_name('key')}, user_id, created FROM {table}")  # noqa: S608
        rows = cursor.fetchall()
    for key, user_id, created in rows:
        digest = digest_of(key)
        if ApiToken.objects.filter(digest=digest).exists():
            continue
        token = ApiToken.objects.create(
            user_id=user_id, name="API token (from before hashing)", prefix=prefix_of(key), digest=digest
        )
        # created_at is auto_now_add: keep the old token's creation time (read raw: naive UTC, or text on SQLite).
        if isinstance(created, str):
            created = parse_datetime(created)
        if created is not None and timezone.is_naive(created):
            created = timezone.make_aware(created, datetime.timezone.utc)
        if created is not None:
            ApiToken.objects.filter(pk=token.pk).update(created_at=created)
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {table}")  # noqa: S608


class Migration(migrations.Migration):
    dependencies = [("teams", "0002_api_tokens")]

    operations = [migrations.RunPython(hash_legacy_tokens, migrations.RunPython.noop)]
