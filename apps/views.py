"""Pages: the apps list, the publish form, an app's page (its revisions, its run's live log, its buttons and
settings).

Views parse input, ask ``apps.selectors`` or call ``apps.services``, and render; an outsider gets 404 (the
selector does not return the app), a team-mate sees the page without its forms, and a refusal of a service
(its state, its permission) comes back as a message on the page, never as a server error.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps import selectors, services
from apps.forms import AppForm, PublishForm, SettingsForm
from apps.models import APP_TASK, App, AppKind
from teams import permissions
from teams.exceptions import ActionRefused
from teams.permissions import Action

LIST_LIMIT = 500


def _current_team(request: HttpRequest):
    """The user's current team, or None (``request.team`` is a lazy object that may wrap None)."""
    team = getattr(request, "team", None)
    return team if team else None


def _problems(exc: ValidationError) -> dict[str, list[str]]:
    if hasattr(exc, "error_dict"):
        return exc.message_dict
    return {"__all__": exc.messages}


def _say_refused(request: HttpRequest, exc: Exception) -> None:
    """A refusal as a message on the page the view redirects to."""
    if isinstance(exc, ValidationError):
        for field, problems in _problems(exc).items():
            text = " ".join(problems)
            messages.error(request, text if field == "__all__" else f"{field}: {text}")
    else:
        messages.error(request, " ".join(getattr(exc, "messages", None) or [str(exc)]))


def _app(request: HttpRequest, team: str, name: str) -> App:
    app = selectors.app_detail(request.user, team, name)
    if app is None:
        raise Http404(_("Not found."))
    return app


def _files_url() -> str:
    try:
        return reverse("file-browser")
    except Exception:  # the site may run without the files pages
        return ""


@login_required
@require_GET
def app_list(request: HttpRequest) -> HttpResponse:
    team = _current_team(request)
    scope = request.GET.get("team")
    queryset = selectors.apps_visible(request.user)
    if scope is None and team is not None:
        queryset = queryset.filter(team=team)
    elif scope and scope != "all":
        queryset = queryset.filter(team__slug=scope)
    context = {"apps": list(queryset[:LIST_LIMIT]), "team": team, "all_teams": scope == "all"}
    return render(request, "apps/app_list.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def app_create(request: HttpRequest) -> HttpResponse:
    team = _current_team(request)
    form = AppForm(request.POST or None, files_url=_files_url())
    if request.method == "POST" and form.is_valid():
        try:
            app = services.app_deploy(user=request.user, team=team, **form.service_arguments())
        except ValidationError as exc:
            form.add_problems(_problems(exc))
        else:
            messages.success(request, _("App %(name)s is starting.") % {"name": app.name})
            return redirect("app-detail", team=app.team.slug, name=app.name)
    status = 400 if form.errors else 200
    return render(request, "apps/app_create.html", {"form": form, "team": team}, status=status)


def _render_detail(
    request: HttpRequest,
    app: App,
    publish_form: PublishForm | None = None,
    settings_form: SettingsForm | None = None,
    status: int = 200,
) -> HttpResponse:
    can_change = permissions.can(request.user, app, Action.CHANGE)
    current = app.revision
    job = app.job
    tasks = [task for task in job.tasks.all() if task.name == APP_TASK] if job is not None else []
    context = {
        "app": app,
        "revisions": list(app.revisions.all()[:100]),
        "shared_with": sorted(user.username for user in app.shared_with.all()),
        "can_change": can_change,
        "job": job,
        "tasks": tasks,
    }
    if can_change:
        context["publish_form"] = publish_form or PublishForm(
            custom=app.kind == AppKind.CUSTOM,
            current_source=current.source if current else "",
            current_entry=current.entry if current else "",
        )
        context["settings_form"] = settings_form or SettingsForm(app=app)
        context["files_url"] = _files_url()
    return render(request, "apps/app_detail.html", context, status=status)


@login_required
@require_GET
def app_detail(request: HttpRequest, team: str, name: str) -> HttpResponse:
    return _render_detail(request, _app(request, team, name))


@login_required
@require_POST
def app_publish(request: HttpRequest, team: str, name: str) -> HttpResponse:
    app = _app(request, team, name)
    current = app.revision
    form = PublishForm(
        request.POST,
        custom=app.kind == AppKind.CUSTOM,
        current_source=current.source if current else "",
        current_entry=current.entry if current else "",
    )
    if form.is_valid():
        try:
            revision = services.app_publish(user=request.user, app=app, **form.service_arguments())
        except PermissionDenied as exc:
            _say_refused(request, exc)
            return redirect("app-detail", team=team, name=name)
        except ValidationError as exc:
            form.add_problems(_problems(exc))
        else:
            messages.success(request, _("Revision %(n)s is starting.") % {"n": revision.number})
            return redirect("app-detail", team=team, name=name)
    return _render_detail(request, _app(request, team, name), publish_form=form, status=400)


@login_required
@require_POST
def app_settings(request: HttpRequest, team: str, name: str) -> HttpResponse:
    app = _app(request, team, name)
    form = SettingsForm(request.POST, app=app)
    if form.is_valid():
        changes = form.changes()
        if not changes:
            messages.info(request, _("Nothing changed."))
            return redirect("app-detail", team=team, name=name)
        try:
            services.app_update(user=request.user, app=app, **changes)
        except PermissionDenied as exc:
            _say_refused(request, exc)
            return redirect("app-detail", team=team, name=name)
        except ValidationError as exc:
            form.add_problems(_problems(exc))
        else:
            messages.success(request, _("The app's settings were saved."))
            return redirect("app-detail", team=team, name=name)
    return _render_detail(request, _app(request, team, name), settings_form=form, status=400)


# Messages marked here, translated when shown (in the language of the request).
_ACTIONS = {
    "start": (services.app_start, gettext_noop("App %(name)s is starting.")),
    "stop": (services.app_stop, gettext_noop("App %(name)s stopped.")),
    "restart": (services.app_restart, gettext_noop("App %(name)s is restarting.")),
    "delete": (services.app_delete, gettext_noop("App %(name)s deleted.")),
}


@login_required
@require_POST
def app_action(request: HttpRequest, team: str, name: str, action: str) -> HttpResponse:
    app = _app(request, team, name)
    if action not in _ACTIONS:
        raise Http404(_("Not found."))
    act, done = _ACTIONS[action]
    try:
        act(user=request.user, app=app)
    except (ActionRefused, PermissionDenied, ValidationError) as exc:
        _say_refused(request, exc)
    else:
        messages.success(request, _(done) % {"name": app.name})
        if action == "delete":
            return redirect("app-list")
    return redirect("app-detail", team=team, name=name)
