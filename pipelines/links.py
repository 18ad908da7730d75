"""What the jobs pages show of a pipeline: a run's step jobs link back to their run in the jobs lists
(``jobs.origins``), and a step's job page says which run, step, item and attempt it is (``jobs.panels``)."""

from __future__ import annotations

from django.urls import NoReverseMatch, reverse
from django.utils.translation import gettext as _

from jobs.origins import Origin
from pipelines.models import StepJob


def run_url(public_id: str) -> str:
    try:
        return reverse("pipeline-run-detail", args=[public_id])
    except NoReverseMatch:  # the pages not wired (an API-only deployment): the API's view of it
        return f"/api/v1/pipeline-runs/{public_id}/"


def origins_of(job_pks: list[int]) -> dict[int, Origin]:
    rows = StepJob.objects.filter(job_id__in=job_pks).values_list(
        "job_id", "step__name", "step__run__public_id", "step__run__pipeline__name"
    )
    return {
        job_pk: Origin(_("pipeline %(pipeline)s · %(step)s") % {"pipeline": pipeline, "step": step}, run_url(run))
        for job_pk, step, run, pipeline in rows
    }


def job_panel(request, job) -> dict | None:
    row = (
        StepJob.objects.filter(job_id=job.pk)
        .select_related("step__run__pipeline", "step__run__version")
        .only(
            "item",
            "attempt",
            "step__name",
            "step__state",
            "step__items",
            "step__run__public_id",
            "step__run__state",
            "step__run__pipeline__name",
            "step__run__pipeline__id",
            "step__run__version__number",
        )  # fmt: skip
        .first()
    )
    if row is None:
        return None
    step, run = row.step, row.step.run
    return {
        "run": run,
        "run_url": run_url(run.public_id),
        "step": step,
        "item": row.item if step.items is not None else None,
        "attempt": row.attempt,
    }
