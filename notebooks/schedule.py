"""The notebooks app's periodic work for the site's clock: leases, idle notebooks and TensorBoards.

A scan is enqueued at most every ~30 s (a cache mark, so several clocks enqueue one); offered to the
clock by ``NotebooksConfig.ready()``.
"""

from __future__ import annotations

from notebooks import workers


def enqueue_due(last: dict) -> None:
    workers.enqueue_due()
