"""What the job page shows of TensorBoard (the job page's view stays the jobs app's)."""

from __future__ import annotations

from django import template

from jobs.models import Job
from notebooks.tensorboard import has_summaries

register = template.Library()


@register.simple_tag
def job_has_summaries(job: Job) -> bool:
    """Whether "Open TensorBoard" makes sense for this job: some task wrote summaries."""
    return has_summaries(job)
