"""Where two apps of the same level meet: the site's wiring (this app may import every app; they may not import
each other). Connected in ``EasyAISiteConfig.ready()``."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

from jobs.models import Job
from pipelines import actions
from serving.services import version_register
from teams import permissions


def register_model_step(*, user, config: dict[str, Any]) -> dict[str, Any]:
    """A pipeline's ``register_model`` step: the job's folder as the next version of the team's model."""
    job = permissions.restrict(Job.objects.all(), user).filter(public_id=config["from"]).first()
    if job is None:
        raise ValidationError({"from": [_("No job %(job)r that you can see.") % {"job": config["from"]}]})
    metrics = {}
    for name, value in (config.get("metrics") or {}).items():
        try:
            metrics[name] = float(value)
        except (TypeError, ValueError):
            raise ValidationError({f"metrics.{name}": [_("%(value)r is not a number.") % {"value": value}]}) from None
    version = version_register(
        user=user, job=job, name=config["name"], path=config.get("path") or "model_dir",
        model_format=config["format"], metrics=metrics, description=config.get("description") or "",
    )  # fmt: skip
    return {"model": version.model.name, "version": version.number}


def connect() -> None:
    actions.register("register_model", register_model_step)
