"""The files app's one table: resumable uploads in progress (see ``files/uploads.py``)."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models


class Upload(models.Model):
    """A large file arriving in chunks: where it goes, how much has come, and until when it may go on.

    The bytes wait in the storage root's hidden staging area (``uploads.staged_path``) until the last
    chunk, when they are checked and moved into place in one rename.
    """

    class State(models.TextChoices):
        RECEIVING = "receiving"  # chunks are accepted at ``offset``
        COMPLETE = "complete"  # placed at ``space:path``; kept until it expires, so a retried last chunk learns it

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="uploads")
    space = models.CharField(max_length=32)
    path = models.CharField(max_length=4096)
    size = models.BigIntegerField()
    sha256 = models.CharField(max_length=64, blank=True)  # what the uploader says the file's digest is
    offset = models.BigIntegerField(default=0)
    state = models.CharField(max_length=16, choices=State.choices, default=State.RECEIVING)
    created = models.DateTimeField(auto_now_add=True)
    expires = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(offset__gte=0, offset__lte=models.F("size")), name="upload_offset_within_size"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.space}:{self.path} ({self.offset}/{self.size})"
