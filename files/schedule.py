"""The files app's periodic work for the site's clock: resumable uploads past their expiry are swept.

A sweep is enqueued at most every SWEEP_EVERY_S (a cache mark, so several clocks enqueue one); offered to the
clock by ``FilesConfig.ready()``. Uploads are also swept whenever one is created, and an expired one is removed
when it is asked for, so the clock only keeps the staging area small when nobody uploads.
"""

from __future__ import annotations

from django.core.cache import cache

SWEEP_EVERY_S = 600


def enqueue_due(last: dict) -> None:
    if not cache.add("easyai:uploads-expire", 1, timeout=SWEEP_EVERY_S):
        return
    from django_q.tasks import async_task

    async_task("files.tasks.uploads_expire")
