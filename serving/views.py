"""Pages: models (list, a model's versions with lineage, metrics side by side, aliases and their history,
register) and inference services (list, create, a service's revisions, traffic and Try it).

Views parse input, ask ``serving.selectors`` or call ``serving.services``, and render; 404 for whoever may
not see the object. ``/serving/…`` on the portal only sends the caller on to the endpoint origin.
"""

from __future__ import annotations

import json

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.encoding import escape_uri_path
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_POST

from endpoints import origin as endpoint_origin
from jobs.models import Job
from serving import selectors, services
from serving.api import grpc_of, traffic_split
from serving.forms import CanaryForm, RegisterForm, ServiceForm
from serving.models import FORMAT_CHOICES, InferenceService, serving_origin
from serving.proxy import service_key
from teams import permissions
from teams.exceptions import ActionRefused
from teams.permissions import Action


class _PermanentRedirect(HttpResponseRedirect):
    status_code = 308  # the method and body go along


@csrf_exempt  # it changes nothing: every method is only sent on
def serving_redirect(request: HttpRequest, team: str, name: str, rest: str = "") -> HttpResponse:
    """``/serving/…`` asked of the portal: the same path on the endpoint origin (308, method and body kept).

    A signed-in browser's GET that the serving origin sent here with its state (it had no credential for the
    service) goes back with a ticket for this one service, once the permission module says it may view it.
    """
    raw_query = request.META.get("QUERY_STRING", "")
    state = endpoint_origin.state_in(raw_query)
    # The path quoted again (request.path is decoded): an encoded '?' or '#' in it stays part of the path there.
    query = endpoint_origin.without_ticket(raw_query)
    target = serving_origin() + escape_uri_path(request.path) + (f"?{query}" if query else "")
    if request.method != "GET" or not state or "HTTP_AUTHORIZATION" in request.META:
        return _PermanentRedirect(target)
    if not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    service = selectors.services_visible(request.user).filter(team__slug=team, name=name).first()
    if service is None:
        raise Http404(_("Not found."))
    ticket = endpoint_origin.ticket_for_key(request.user, service_key(team, name), state)
    response = HttpResponseRedirect(endpoint_origin.with_ticket(target, ticket))
    response["Referrer-Policy"] = "no-referrer"
    response["Cache-Control"] = "no-store"
    return response


def _current_team(request: HttpRequest):
    """The user's current team, or None. ``request.team`` is a lazy object, never None itself: one that wraps
    None (a user in no team, a platform admin who chose none) cannot be compared or filtered on."""
    team = getattr(request, "team", None)
    return team if team else None


def _say_refused(request: HttpRequest, exc: Exception) -> None:
    """A service's refusal as messages on the page it redirects to: each field's problem, or the reason."""
    if isinstance(exc, ValidationError) and hasattr(exc, "error_dict"):
        for field, problems in exc.message_dict.items():
            messages.error(request, f"{field}: {' '.join(problems)}")
    else:
        messages.error(request, " ".join(getattr(exc, "messages", [str(exc)])))


def _team_scope(request: HttpRequest):
    """(the team whose objects are listed or None for all of mine, whether all were asked)."""
    if request.GET.get("team") == "all":
        return None, True
    return _current_team(request), False


# --- models -----------------------------------------------------------------------------------------------------


@login_required
def model_list(request: HttpRequest) -> HttpResponse:
    team, all_teams = _team_scope(request)
    queryset = selectors.models_visible(request.user).prefetch_related("aliases__version")
    if team is not None:
        queryset = queryset.filter(team=team)
    return render(
        request,
        "serving/model_list.html",
        {"models": queryset[:500], "team": team, "all_teams": all_teams},
    )


def _model(request: HttpRequest, team: str, name: str):
    model = selectors.model_detail(request.user, team, name)
    if model is None:
        raise Http404(_("Not found."))
    return model


@login_required
def model_detail(request: HttpRequest, team: str, name: str) -> HttpResponse:
    model = _model(request, team, name)
    versions = list(model.versions.all())
    metric_names = sorted({key for v in versions for key in (v.metrics or {})})
    aliases_of: dict[int, list[str]] = {}
    for alias in model.aliases.all():
        aliases_of.setdefault(alias.version_id, []).append(alias.name)
    rows = [
        {
            "version": v,
            "aliases": sorted(aliases_of.get(v.pk, [])),
            "metrics": [v.metrics.get(m) if isinstance(v.metrics, dict) else None for m in metric_names],
        }
        for v in versions
    ]
    users = InferenceService.objects.filter(model=model).select_related("team")
    return render(
        request,
        "serving/model_detail.html",
        {
            "model": model,
            "rows": rows,
            "metric_names": metric_names,
            "aliases": list(model.aliases.all()),
            "moves": list(model.alias_moves.all()[:100]),
            "services": users,
            "can_change": permissions.can(request.user, model, Action.CHANGE),
        },
    )


@login_required
@require_POST
def model_alias(request: HttpRequest, team: str, name: str) -> HttpResponse:
    model = _model(request, team, name)
    try:
        services.alias_set(
            user=request.user, model=model, alias=request.POST.get("alias", ""), number=request.POST.get("version")
        )
        messages.success(request, _("Alias %(alias)s moved.") % {"alias": request.POST.get("alias", "")})
    except (ValidationError, ActionRefused) as exc:
        _say_refused(request, exc)
    return redirect("model-detail", team=team, name=name)


@login_required
@require_http_methods(["GET", "POST"])
def model_register(request: HttpRequest) -> HttpResponse:
    """Register a job's model folder (the button on a job's outputs page), or push a zip archive."""
    job = None
    job_id = request.GET.get("job") or request.POST.get("job") or ""
    if job_id:
        job = (
            permissions.restrict(Job.objects.select_related("team", "owner", "experiment"), request.user)
            .filter(public_id=job_id)
            .first()
        )
        if job is None:
            raise Http404(_("Not found."))
    initial = {"path": request.GET.get("path") or "model_dir", "name": (job.name if job else "")}
    form = RegisterForm(request.POST or None, request.FILES or None, initial=initial, with_job=job is not None)
    errors: dict = {}
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            if job is not None:
                version = services.version_register(
                    user=request.user,
                    job=job,
                    name=data["name"],
                    path=data["path"],
                    model_format=data["format"],
                    metrics=data["metrics"] or None,
                    description=data["description"],
                )
            else:
                version = services.version_push(
                    user=request.user,
                    team=_current_team(request),
                    name=data["name"],
                    archive=data["archive"],
                    model_format=data["format"],
                    metrics=data["metrics"] or None,
                    description=data["description"],
                )
        except ValidationError as exc:
            errors = exc.message_dict
        except ActionRefused as exc:
            errors = {"name": [str(exc)]}
        else:
            messages.success(
                request, _("Registered %(model)s version %(n)s.") % {"model": version.model.name, "n": version.number}
            )
            return redirect("model-detail", team=version.model.team.slug, name=version.model.name)
    status = 400 if request.method == "POST" else 200
    return render(
        request,
        "serving/model_register.html",
        {"form": form, "job": job, "errors": errors or form.problems(), "formats": FORMAT_CHOICES},
        status=status,
    )


# --- services ---------------------------------------------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def service_list(request: HttpRequest) -> HttpResponse:
    team, all_teams = _team_scope(request)
    form = ServiceForm(request.POST or None, initial={"model": request.GET.get("model", "")})
    errors: dict = {}
    if request.method == "POST" and form.is_valid():
        try:
            service = services.service_create(user=request.user, team=_current_team(request), **form.cleaned_data)
        except ValidationError as exc:
            errors = exc.message_dict
        else:
            messages.success(request, _("Service %(name)s is starting.") % {"name": service.name})
            return redirect("service-detail", team=service.team.slug, name=service.name)
    queryset = selectors.services_visible(request.user)
    if team is not None:
        queryset = queryset.filter(team=team)
    return render(
        request,
        "serving/service_list.html",
        {
            "services": queryset[:500],
            "team": team,
            "all_teams": all_teams,
            "form": form,
            "errors": errors or (form.problems() if request.method == "POST" else {}),
        },
        status=400 if request.method == "POST" else 200,
    )


def _service(request: HttpRequest, team: str, name: str) -> InferenceService:
    service = selectors.service_detail(request.user, team, name)
    if service is None:
        raise Http404(_("Not found."))
    return service


@login_required
def service_detail(request: HttpRequest, team: str, name: str) -> HttpResponse:
    service = _service(request, team, name)
    example = {"instances": [[0.0, 0.0]]}
    return render(
        request,
        "serving/service_detail.html",
        {
            "service": service,
            "revisions": list(service.revisions.all()[:50]),
            "traffic": traffic_split(service),
            "grpc": grpc_of(service),
            "versions": list(service.model.versions.order_by("-number").values_list("number", flat=True)[:200]),
            "can_change": permissions.can(request.user, service, Action.CHANGE),
            "canary_form": CanaryForm(),
            "example": json.dumps(example),
            "try_url": reverse("api-service-try", kwargs={"team": team, "name": name}),
        },
    )


@login_required
@require_POST
def service_action(request: HttpRequest, team: str, name: str, action: str) -> HttpResponse:
    service = _service(request, team, name)
    try:
        if action == "canary":
            form = CanaryForm(request.POST)
            if not form.is_valid():
                raise ValidationError(form.problems())
            services.service_canary(user=request.user, service=service, **form.cleaned_data)
            messages.success(request, _("The canary is starting."))
        elif action == "promote":
            services.service_promote(user=request.user, service=service)
            messages.success(request, _("The canary now takes all the traffic."))
        elif action == "rollback":
            services.service_rollback(user=request.user, service=service)
            messages.success(request, _("Rolled back."))
        elif action == "version":
            services.service_update(user=request.user, service=service, version=request.POST.get("version"))
            messages.success(request, _("A new revision is starting; the current one serves until it answers."))
        elif action == "delete":
            services.service_delete(user=request.user, service=service)
            messages.success(request, _("Service %(name)s deleted.") % {"name": name})
            return redirect("service-list")
        else:
            raise Http404(_("Not found."))
    except (ValidationError, ActionRefused) as exc:
        _say_refused(request, exc)
    return redirect("service-detail", team=team, name=name)
