"""What notebooks add to the endpoint proxy (registered in NotebooksConfig.ready()): a notebook is personal,
who may open a TensorBoard beyond seeing its job, and the activity that keeps an idle TensorBoard alive."""

from __future__ import annotations

from typing import Any

from django.core.cache import cache

from endpoints.proxy import Refused
from jobs.models import Job
from notebooks.models import Notebook, TensorBoard
from notebooks.services import access_key
from teams import permissions


def is_personal(obj: Any) -> bool:
    """A notebook, and its job: only its owner opens them (teams.permissions.Action.OPEN)."""
    return isinstance(obj, Notebook) or (isinstance(obj, Job) and obj.framework == "notebook")


def notebook_access(user: Any, job: Job, name: str) -> bool:
    """Code-server is served without the path prefix (only its owner gets here: a notebook is personal)."""
    return name == "vscode" and Notebook.objects.filter(job=job, kind=Notebook.Kind.VSCODE).exists()


def tensorboard_access(user: Any, job: Job, name: str) -> bool:
    """Whoever may see its job and every job it shows."""
    board = TensorBoard.objects.filter(job=job).first()
    if board is not None:
        shown = list(board.sources.values_list("pk", flat=True))
        if permissions.restrict(Job.objects.filter(pk__in=shown), user).count() != len(shown):
            raise Refused(404, f"No job {job.public_id} that you may see.")
    return False


async def note_access(sender: Any, *, job_id: str, when: float, **kwargs: Any) -> None:
    """The scheduler stops a TensorBoard nobody opened for a while."""
    await cache.aset(access_key(job_id), when, timeout=7 * 86400)
