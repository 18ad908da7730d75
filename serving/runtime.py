"""Where revisions run, and how the portal learns which of them serve.

- **Local backend**: a revision is a single-task job of the jobs app (framework ``serving``) running the model
  server (``python -m easyai_modelserver``) over the version's files, mounted read-only at
  ``$registered_model_dir``. Its readiness is the jobs app's endpoint readiness (``/v2/health/ready``); the
  portal's proxy (``serving/proxy.py``) splits the traffic between the serving revisions by weight.
- **Kubernetes**: one KServe InferenceService per service; KServe keeps the revisions and splits the traffic
  (``canaryTrafficPercent``). The portal applies the description and reads the status back in one list call
  per cluster.

``settle`` is the one writer of which revision serves: a revision that answers replaces the one before it,
and one that never answers (its job ended, or the start timeout passed) takes no traffic, the service keeps
what served, and its message says why.
"""

from __future__ import annotations

import functools
import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django_q.tasks import async_task

from clusters.backends.base import BackendError, BackendRejected, ServiceDescription, ServingBackend
from clusters.backends.contract.quantity import parse_cpu, parse_memory
from clusters.models import Cluster
from jobs import readiness
from jobs import services as job_services
from jobs.models import Job
from jobs.state import ACTIVE, FINAL, JobState
from serving.models import InferenceService, ModelAlias, ModelVersion, Revision, RevisionState
from serving.specs import PREDICTOR_TASK, revision_spec
from serving.store import model_store

log = logging.getLogger(__name__)

RESTARTS_PER_HOUR = 3  # a serving revision that dies is replaced at most this often


def in_site_language(step):
    """What a step writes for everyone to read (a revision's or service's message) is in the site's language,
    whichever request or worker runs it."""

    @functools.wraps(step)
    def run(*args, **kwargs):
        with translation.override(settings.LANGUAGE_CODE):
            return step(*args, **kwargs)

    return run


def enqueue(name: str, *args) -> None:
    async_task(name, *args, q_options={"task_name": f"{name}:{':'.join(str(a) for a in args)}"[:100]})


def enqueue_start(revision_pk: int) -> None:
    enqueue("serving.tasks.revision_start", revision_pk)


def is_local(cluster: Cluster) -> bool:
    return cluster.kind == Cluster.Kind.LOCAL


def target_version(service: InferenceService) -> ModelVersion | None:
    """The version the service is set to serve: its fixed version, or its alias's now."""
    if service.alias:
        alias = ModelAlias.objects.filter(model_id=service.model_id, name=service.alias).select_related("version")
        found = alias.first()
        return found.version if found else None
    return service.version


# --- starting and retiring ----------------------------------------------------------------------------------


@in_site_language
def start(revision_pk: int) -> None:
    """Start a revision: its job locally (the version's files made readable on this host first), or apply the
    InferenceService on Kubernetes. Idempotent: a redelivered task finds the job already there."""
    revision = (
        Revision.objects.select_related("service__team", "service__cluster", "service__owner", "version__model__team")
        .filter(pk=revision_pk)
        .first()
    )
    if revision is None or revision.state != RevisionState.STARTING:
        return
    service = revision.service
    if not is_local(service.cluster):
        try:
            apply(service.pk)
        except BackendError as exc:  # the cluster failed for a moment: the next sync pass applies it again
            log.warning("service %s could not be applied yet: %s", service, exc)
        return
    if revision.job_id:
        return
    model_store().local_dir(revision.version.prefix)  # an object store's files are fetched to this host once
    try:
        job = job_services.job_submit(
            user=service.owner,
            data=revision_spec(service=service, version=revision.version, number=revision.number),
            internal=True,
        )
    except Exception as exc:  # a quota refusal, a cluster gone: the revision fails and says why
        message = "; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items()) if hasattr(
            exc, "message_dict"
        ) else str(exc)
        Revision.objects.filter(pk=revision.pk, state=RevisionState.STARTING).update(
            state=RevisionState.FAILED, message=message[:2000], ended_at=timezone.now()
        )
        settle(service.pk)
        return
    Revision.objects.filter(pk=revision.pk).update(job=job)


def retire(revision: Revision, *, message: str = "", failed: bool = False) -> None:
    """A revision takes no more traffic: its job stops (locally). Called inside the caller's transaction."""
    now = timezone.now()
    state = RevisionState.FAILED if failed else RevisionState.RETIRED
    if revision.state in (RevisionState.FAILED, RevisionState.RETIRED):
        return
    Revision.objects.filter(pk=revision.pk).update(state=state, message=message[:2000], ended_at=now)
    revision.state = state
    if revision.job_id:
        job_pk = revision.job_id
        transaction.on_commit(lambda: _stop_job(job_pk))


def _stop_job(job_pk: int) -> None:
    job = Job.objects.filter(pk=job_pk).first()
    if job is not None and job.state in ACTIVE:
        try:
            job_services.job_stop(job=job, message="The inference service no longer serves this revision.")
        except Exception:  # already ended meanwhile
            log.info("revision job %s ended before its stop", job.public_id)


# --- what a local revision is doing ------------------------------------------------------------------------


def _last_line(job: Job) -> str:
    try:
        data, _offset = job.cluster.backend().read_log(job.public_id, PREDICTOR_TASK)
    except Exception:
        return ""
    lines = [line.strip() for line in data[-4096:].decode(errors="replace").splitlines() if line.strip()]
    return lines[-1][:500] if lines else ""


def local_status(revision: Revision, now) -> tuple[str, str]:
    """(ready | starting | failed, why) for a local revision, from its job and task."""
    job = revision.job
    timeout = timedelta(seconds=settings.EASYAI_SERVING_START_TIMEOUT)
    if job is None:
        if now - revision.created_at > timeout:
            return "failed", _("Its job was never submitted.")
        return "starting", ""
    if job.state in FINAL:
        why = _last_line(job) or job.message or job.get_state_display()
        return "failed", why
    if job.state == JobState.RUNNING:
        tasks = list(job.tasks.all())
        if tasks and all("http" in (t.ready_endpoints or []) for t in tasks):
            return "ready", ""  # every replica answers
    if revision.state == RevisionState.STARTING and now - revision.created_at > timeout:
        why = _("It did not answer its readiness check within %(s)s seconds.") % {"s": int(timeout.total_seconds())}
        if job.state in (JobState.QUEUED, JobState.PENDING) and job.message:
            # e.g. the team's quota is used up
            why = _("%(why)s Its job is still waiting: %(message)s") % {"why": why, "message": job.message}
        return "failed", why
    return "starting", ""


# --- settling: which revision serves -------------------------------------------------------------------------


def _describe(revision: Revision) -> str:
    return _("revision %(number)s (version %(version)s)") % {
        "number": revision.number,
        "version": revision.version.number,
    }


@in_site_language
def settle(service_pk: int, observed: dict | None = None) -> None:
    """Move the service's revisions on from what their jobs (locally) or the cluster (``observed``) say."""
    with transaction.atomic():
        service = (
            InferenceService.objects.select_for_update()
            .select_related("cluster", "team", "primary__version", "canary__version", "next__version")
            .filter(pk=service_pk)
            .first()
        )
        if service is None:
            return
        now = timezone.now()
        local = is_local(service.cluster)
        fields: set[str] = set()
        revisions = {
            role: Revision.objects.select_related("version", "job__cluster").prefetch_related("job__tasks").get(pk=rev.pk)
            for role in ("primary", "canary", "next")
            if (rev := getattr(service, role)) is not None
        }
        for role, revision in revisions.items():
            setattr(service, role, revision)  # one object per revision: what this pass learns, the rest sees
            if local:
                status, why = local_status(revision, now)
            else:
                status, why = (observed or {}).get(role, ("starting", ""))
                timeout = timedelta(seconds=settings.EASYAI_SERVING_START_TIMEOUT)
                if status == "starting" and revision.state == RevisionState.STARTING and now - revision.created_at > timeout:
                    status, why = "failed", _("KServe did not make it ready within %(s)s seconds.") % {
                        "s": int(timeout.total_seconds())
                    }
            if status == "ready" and revision.state == RevisionState.STARTING:
                Revision.objects.filter(pk=revision.pk).update(state=RevisionState.READY, ready_at=now)
                revision.state = RevisionState.READY
            elif status == "failed":
                served = revision.state == RevisionState.READY
                retire(revision, message=why, failed=not served)
                setattr(service, role, None)
                fields.add(role)
                what = _describe(revision)
                if served:
                    service.message = _("%(what)s stopped: %(why)s") % {"what": what, "why": why}
                elif role == "canary":
                    service.message = _("The canary, %(what)s, failed to load and took no traffic: %(why)s") % {
                        "what": what,
                        "why": why,
                    }
                else:
                    service.message = _("%(what)s failed to load and took no traffic: %(why)s") % {
                        "what": what,
                        "why": why,
                    }
                fields.add("message")
        # A replacement that answers takes over; the one it replaces stops.
        nxt = service.next
        if nxt is not None and nxt.state == RevisionState.READY:
            if service.primary is not None:
                retire(service.primary, message=_("Replaced by revision %(n)s.") % {"n": nxt.number})
            service.primary, service.next = nxt, None
            service.message = ""
            fields |= {"primary", "next", "message"}
        if service.primary is None and service.next is None and local:
            _restart_if_due(service, now)
        if fields:
            service.save(update_fields=sorted(fields))
        if service.message and service.primary is not None and "message" in fields and not service.next:
            keeps = _("%(what)s keeps serving.") % {"what": _describe(service.primary)}
            if keeps not in service.message:
                InferenceService.objects.filter(pk=service.pk).update(message=f"{service.message} {keeps}")


def _restart_if_due(service: InferenceService, now) -> None:
    """Nothing serves and nothing starts: start the target version again, a few times an hour at most."""
    recent = service.revisions.filter(created_at__gte=now - timedelta(hours=1)).count()
    version = target_version(service)
    if version is None or recent >= RESTARTS_PER_HOUR:
        return
    last = service.revisions.order_by("-number").first()
    if last is not None and last.state == RevisionState.FAILED and last.ready_at is None and last.version_id == version.pk:
        return  # it failed to load: starting it again would fail again; a new version or an update starts one
    number = (last.number if last else 0) + 1
    revision = Revision.objects.create(service=service, number=number, version=version)
    service.next = revision
    InferenceService.objects.filter(pk=service.pk).update(next=revision)
    transaction.on_commit(lambda: enqueue_start(revision.pk))


def sync_cluster(cluster: Cluster) -> int:
    """Settle every service of a cluster: locally from its jobs (after the jobs' own pass), on Kubernetes from
    one ``observe_services`` call."""
    services = list(InferenceService.objects.filter(cluster=cluster).values_list("pk", flat=True))
    if not services:
        return 0
    if is_local(cluster):
        for pk in services:
            settle(pk)
        return len(services)
    backend = cluster.backend()
    if not isinstance(backend, ServingBackend):
        return 0
    try:
        seen = backend.observe_services()
    except BackendError as exc:
        log.warning("serving sync of cluster %s failed: %s", cluster.name, exc)
        return 0
    for service in InferenceService.objects.filter(pk__in=services).select_related("team", "next", "canary"):
        observation = seen.get((service.team.slug, service.name))
        if observation is None and (service.next_id or service.canary_id or service.primary_id):
            # Not on the cluster (a create that failed for a moment, or removed by hand): applied again.
            try:
                apply(service.pk)
            except BackendError as exc:
                log.warning("service %s could not be applied: %s", service, exc)
        if observation is not None:
            InferenceService.objects.filter(pk=service.pk).update(
                cluster_url=observation.url[:500],
                address=observation.address[:500],
                grpc_address=observation.grpc_address[:500],
            )
        settle(service.pk, observed=_observed_roles(service, observation))
    return len(services)


def _observed_roles(service: InferenceService, observation) -> dict[str, tuple[str, str]]:
    """KServe's status as the roles' states: the newest revision is ready once it is the latest ready one."""
    if observation is None:
        return {}
    newest_ready = (
        observation.ready
        and observation.latest_created_revision
        and observation.latest_ready_revision == observation.latest_created_revision
    )
    failed = not observation.ready and observation.message and observation.latest_created_revision != (
        observation.latest_ready_revision or None
    )
    result: dict[str, tuple[str, str]] = {}
    newest = "canary" if service.canary_id else "next"
    if newest_ready:
        result[newest] = ("ready", "")
        if newest == "canary" and service.next_id:
            result["next"] = ("ready", "")
    elif failed:
        result[newest] = ("failed", observation.message)
    for role in list(result):
        if role == "canary" and not service.canary_id or role == "next" and not service.next_id:
            del result[role]
    return result


# --- Kubernetes ----------------------------------------------------------------------------------------------------


def description(service: InferenceService) -> ServiceDescription | None:
    """The InferenceService for the service's revisions: the newest version in the spec, and the canary's share."""
    canary = service.canary
    newest = canary or service.next or service.primary
    if newest is None:
        return None
    version = newest.version
    cluster = service.cluster
    store = model_store()
    uri = store.uri(version.prefix)
    if not uri.startswith("s3://"):
        claim = (cluster.settings or {}).get("storage_claim") or "easyai-storage"
        uri = f"pvc://{claim}/{uri}"
    mode = (cluster.settings or {}).get("kserve_deployment_mode") or settings.EASYAI_KSERVE_DEPLOYMENT_MODE
    return ServiceDescription(
        team=service.team.slug,
        name=service.name,
        model_format=version.format,
        storage_uri=uri,
        cpu_milli=parse_cpu(service.cpu),
        memory_bytes=parse_memory(service.memory),
        gpu=service.gpu,
        min_replicas=service.min_replicas,
        max_replicas=service.max_replicas,
        canary_percent=service.canary_percent if canary is not None else None,
        deployment_mode=mode,
        image=(cluster.settings or {}).get("custom_model_image", "") if version.format == "custom" else "",
        service_account=(cluster.settings or {}).get("model_service_account", "") if uri.startswith("s3://") else "",
        labels={"easyai.io/service": service.name, "easyai.io/model": version.model.name},
    )


@in_site_language
def apply(service_pk: int) -> None:
    """Bring the cluster's InferenceService to the service's revisions (Kubernetes; nothing to do locally)."""
    service = (
        InferenceService.objects.select_related(
            "team", "cluster", "primary__version__model__team", "canary__version__model__team", "next__version__model__team"
        )
        .filter(pk=service_pk)
        .first()
    )
    if service is None or is_local(service.cluster):
        return
    backend = service.cluster.backend()
    wanted = description(service)
    if wanted is None or not isinstance(backend, ServingBackend):
        return
    try:
        backend.apply_service(wanted)
    except BackendRejected as exc:
        newest = service.canary or service.next
        if newest is not None:
            with transaction.atomic():
                retire(newest, message=str(exc), failed=True)
                field = "canary" if service.canary_id == newest.pk else "next"
                InferenceService.objects.filter(pk=service.pk).update(
                    **{field: None}, message=_("The cluster refused %(what)s: %(why)s") % {
                        "what": _describe(newest),
                        "why": exc,
                    }
                )


def remove(cluster_pk: int, team: str, name: str) -> None:
    cluster = Cluster.objects.filter(pk=cluster_pk).first()
    if cluster is None or is_local(cluster):
        return
    backend = cluster.backend()
    if isinstance(backend, ServingBackend):
        backend.delete_service(team, name)


def revision_readiness(endpoint: readiness.Endpoint) -> readiness.Probe | None:
    """A local revision's model server is ready once KServe's V2 health check says so (its HTTP port)."""
    if endpoint.name != "http":
        return None  # the gRPC port answers once the HTTP one does: they start together
    return readiness.Probe(address=endpoint.address, path="/v2/health/ready")
