"""Who may call a service, and where each call goes: the service's serving revisions, by weight.

Read by the serving proxy (``serving/proxy.py``, on the endpoint origin) and by the portal's "Try it"
(``serving/api.py``), so both answer the same: 404 to whoever may not see the service, 401 to an anonymous
caller of a service that is not public, 503 while no revision answers.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from django.utils.translation import gettext as _

from endpoints.proxy import Refused
from serving.models import InferenceService, Revision, RevisionState
from teams import permissions


@dataclass(frozen=True)
class Upstream:
    base: str  # "http://127.0.0.1:41234" or KServe's address URL
    revision: int  # the revision's number, reported in X-EasyAI-Revision
    host: str = ""  # a Host header to send (KServe's address), or "" for the base's own


@dataclass(frozen=True)
class Route:
    service_pk: int
    primary: tuple[Upstream, ...]  # the serving revision's replicas that answer (one on Kubernetes: KServe's)
    canary: tuple[Upstream, ...]
    canary_percent: int

    def choose(self, draw: float | None = None) -> Upstream:
        """One call's upstream: the canary takes ``canary_percent`` of the calls while both answer; within a
        revision, any of its replicas."""
        if not self.canary:
            group = self.primary
        elif not self.primary:
            group = self.canary
        else:
            draw = random.random() * 100 if draw is None else draw
            group = self.canary if draw < self.canary_percent else self.primary
        return group[0] if len(group) == 1 else random.choice(group)


def _local_upstreams(revision: Revision | None) -> tuple[Upstream, ...]:
    """The replicas of a ready local revision whose model server answers."""
    if revision is None or revision.state != RevisionState.READY or revision.job is None:
        return ()
    return tuple(
        Upstream(base=f"http://{task.endpoints['http']}", revision=revision.number)
        for task in revision.job.tasks.all()
        if "http" in (task.ready_endpoints or []) and task.endpoints.get("http")
    )


def route_for(user, team: str, name: str) -> Route:
    """The route of ``/serving/{team}/{name}/`` for this caller, or Refused."""
    service = (
        InferenceService.objects.filter(team__slug=team, name=name)
        .select_related("team", "cluster", "primary__job", "canary__job")
        .prefetch_related("primary__job__tasks", "canary__job__tasks")
        .first()
    )
    anonymous = user is None or not user.is_authenticated
    if service is None or not service.public:
        if anonymous:
            raise Refused(401, _("Sign in: send an API token in the Authorization header (Token <key>)."))
        if service is None or not permissions.can(user, service, permissions.Action.VIEW):
            raise Refused(404, _("No such service."))
    if service.cluster.kind == "local":
        primary, canary = _local_upstreams(service.primary), _local_upstreams(service.canary)
    else:
        address = service.address.rstrip("/")
        primary = (Upstream(base=address, revision=service.primary.number),) if address and service.primary else ()
        canary = ()  # KServe splits the traffic itself
    if not primary and not canary:
        why = service.message or _("its first revision is starting")
        raise Refused(503, _("The service has no revision ready: %(why)s") % {"why": why})
    return Route(
        service_pk=service.pk,
        primary=primary,
        canary=canary,
        canary_percent=service.canary_percent if canary else 0,
    )
