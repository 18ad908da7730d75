"""Which models may be shared one object at a time: a registry each app fills in its ``AppConfig.ready()``.

teams names no other app's model: the jobs app registers its jobs and experiments, the notebooks app its
notebooks, and any later app its own. The API (``teams/sharing_api.py``), the grants themselves
(``teams.services.object_share``) and the clean-up of a deleted object's grants all read this registry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django.db.models import Model, QuerySet
from django.db.models.signals import post_delete


@dataclass(frozen=True)
class Shareable:
    kind: str  # what the API calls it: "job", "experiment", "notebook"
    model: type[Model]
    lookup: str  # the field the API's "id" names
    id_pattern: str  # a well-formed id, checked before any query
    rows: Callable[[], QuerySet] | None = None  # the rows that may be shared; default all of the model's

    def queryset(self) -> QuerySet:
        return (self.rows() if self.rows is not None else self.model.objects.all()).select_related("team")


_registry: dict[str, Shareable] = {}


def register(
    kind: str,
    model: type[Model],
    *,
    lookup: str = "pk",
    id_pattern: str = r"[0-9]{1,18}",
    rows: Callable[[], QuerySet] | None = None,
) -> None:
    """Make a model's objects shareable under ``kind``; its deleted rows' grants are dropped with them."""
    _registry[kind] = Shareable(kind, model, lookup, id_pattern, rows)
    post_delete.connect(drop_object_grants, sender=model, dispatch_uid=f"drop-object-grants-{model._meta.label}")


def shareable(kind: str) -> Shareable:
    return _registry[kind]


def kinds() -> list[str]:
    """The registered kinds, sorted (the API's choices)."""
    return sorted(_registry)


def drop_object_grants(sender, instance, **kwargs) -> None:
    """A deleted object's guardian grants go with it: they name it only by id, which a new row may reuse."""
    from django.contrib.contenttypes.models import ContentType
    from guardian.models import GroupObjectPermission, UserObjectPermission

    content_type = ContentType.objects.get_for_model(sender)
    for grants in (UserObjectPermission, GroupObjectPermission):
        grants.objects.filter(content_type=content_type, object_pk=str(instance.pk)).delete()
