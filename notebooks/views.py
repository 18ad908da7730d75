"""Pages: the notebooks list with its create form and actions, the opening page, TensorBoard.

Views parse input, ask ``notebooks.selectors`` or call ``notebooks.services``,
and render; every object comes through ``teams.permissions`` (404 to outsiders,
403 to team-mates asking for what only the owner or a team admin may do).
"""

from __future__ import annotations

import re

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from endpoints import origin as endpoint_origin
from jobs.page_helpers import errors_of
from jobs.state import ACTIVE
from notebooks import selectors, services
from notebooks.forms import NotebookForm, RenewForm
from notebooks.models import NOTEBOOK_TASK, TENSORBOARD_TASK, Notebook, NotebookState
from teams import permissions
from teams.permissions import Action

PAGE_SIZE = 50
# A refused renewal is shown at its field on the list page it redirects to (post/redirect/get,
# so the list's links, paging and reloads keep working): the session carries it there once.
RENEW_REFUSAL_KEY = "notebook_renew_refusal"


def _current_team(request: HttpRequest):
    team = getattr(request, "team", None)
    return team if team else None


def _notebook(request: HttpRequest, pk: int, action: Action = Action.VIEW) -> Notebook:
    return permissions.get_or_404(selectors.notebooks_visible(request.user), request.user, action, pk=pk)


def _owned(request: HttpRequest, pk: int) -> Notebook:
    notebook = _notebook(request, pk)
    if not selectors.can_open_notebook(request.user, notebook):
        raise PermissionDenied(_("A notebook is personal: only its owner may open, start or renew it."))
    return notebook


@login_required
@require_http_methods(["GET", "POST"])
def notebook_list(request: HttpRequest) -> HttpResponse:
    team = _current_team(request)
    form = NotebookForm(request.POST or None, max_lease=team.notebook_max_lease_hours if team else None)
    if request.method == "POST" and form.is_valid():
        try:
            notebook = services.notebook_create(user=request.user, team=team, **form.cleaned_data)
        except ValidationError as exc:
            for field, errors in errors_of(exc).items():
                form.add_error(field if field in form.fields else None, errors)
        else:
            messages.success(request, _("Notebook %(name)s is starting.") % {"name": notebook.name})
            return redirect("notebook-list")
    scope = request.GET.get("team")
    queryset = selectors.notebooks_visible(request.user)
    if scope is None and team is not None:
        queryset = queryset.filter(team=team)
    elif scope and scope != "all":
        queryset = queryset.filter(team__slug=scope)
    page = Paginator(queryset, PAGE_SIZE).get_page(request.GET.get("page"))
    refusal = request.session.pop(RENEW_REFUSAL_KEY, None) if request.method == "GET" else None
    for notebook in page.object_list:
        notebook.can_open = selectors.can_open_notebook(request.user, notebook)
        notebook.can_manage = selectors.can_manage_notebook(request.user, notebook)
        if notebook.can_open and notebook.state != NotebookState.STOPPED:
            notebook.renew_form = _renew_form(notebook, refusal)
            if refusal and refusal.get("pk") == notebook.pk:
                refusal = None
    if refusal:  # the notebook is not on this page (another team shown, or stopped since): say it here
        messages.error(request, "; ".join(m for msgs in refusal.get("errors", {}).values() for m in msgs))
    context = {"form": form, "page": page, "team": team, "all_teams": scope == "all"}
    return render(request, "notebooks/notebook_list.html", context, status=400 if form.errors else 200)


def _renew_form(notebook: Notebook, refusal: dict | None) -> RenewForm:
    if not refusal or refusal.get("pk") != notebook.pk:
        return RenewForm(notebook=notebook)
    form = RenewForm({"lease_hours": refusal.get("lease_hours", "")}, notebook=notebook)
    form.full_clean()  # the form's own checks may find the same problem again: each is shown once
    for field, errors in refusal.get("errors", {}).items():
        target = field if field in form.fields else None
        shown = form.errors.get(target or "__all__", [])
        new = [error for error in errors if error not in shown]
        if new:
            form.add_error(target, new)
    form.mark_invalid()
    return form


@login_required
@require_GET
def notebook_open(request: HttpRequest, pk: int) -> HttpResponse:
    """The notebook's own page once it answers; until then a page that waits for it."""
    notebook = _owned(request, pk)
    if notebook.state == NotebookState.RUNNING:
        # Straight to the endpoint origin, where the browser signs in through the portal (endpoints/origin.py).
        return redirect(
            endpoint_origin.endpoint_url(notebook.job.public_id, NOTEBOOK_TASK, notebook.endpoint_name, notebook.path)
        )
    if notebook.state == NotebookState.STOPPED:
        messages.warning(request, _("Notebook %(name)s is not running: start it first.") % {"name": notebook.name})
        return redirect("notebook-list")
    return render(request, "notebooks/starting.html", {"what": notebook.name, "job": notebook.job}, status=202)


@login_required
@require_POST
def notebook_stop(request: HttpRequest, pk: int) -> HttpResponse:
    notebook = _notebook(request, pk, Action.CHANGE)
    try:
        services.notebook_stop(notebook=notebook, actor=request.user)
    except services.NotebookActionRefused as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, _("Notebook %(name)s stopped.") % {"name": notebook.name})
    return redirect("notebook-list")


@login_required
@require_POST
def notebook_start(request: HttpRequest, pk: int) -> HttpResponse:
    notebook = _owned(request, pk)
    try:
        services.notebook_start(notebook=notebook, user=request.user)
    except services.NotebookActionRefused as exc:
        messages.error(request, str(exc))
    except ValidationError as exc:
        problems = "; ".join(f"{path}: {m}" for path, msgs in errors_of(exc).items() for m in msgs)
        messages.error(request, _("The notebook was not started: %(problems)s") % {"problems": problems})
    else:
        messages.success(request, _("Notebook %(name)s is starting.") % {"name": notebook.name})
    return redirect("notebook-list")


@login_required
@require_POST
def notebook_renew(request: HttpRequest, pk: int) -> HttpResponse:
    notebook = _owned(request, pk)
    form = RenewForm(request.POST, notebook=notebook)
    try:
        if not form.is_valid():
            raise ValidationError(form.errors.as_data())
        # Empty: the notebook's own lease length again, as the API's renew without lease_hours.
        notebook = services.notebook_renew(notebook=notebook, hours=form.cleaned_data["lease_hours"] or None)
    except services.NotebookActionRefused as exc:
        messages.error(request, str(exc))
    except ValidationError as exc:
        errors = {field: [str(m) for m in msgs] for field, msgs in errors_of(exc).items()}
        typed = request.POST.get("lease_hours", "")[:20]
        request.session[RENEW_REFUSAL_KEY] = {"pk": notebook.pk, "lease_hours": typed, "errors": errors}
    else:
        messages.success(
            request,
            _("Notebook %(name)s renewed until %(until)s.")
            % {"name": notebook.name, "until": notebook.expires_at.strftime("%Y-%m-%d %H:%M")},
        )
    return redirect("notebook-list")


@login_required
@require_POST
def notebook_delete(request: HttpRequest, pk: int) -> HttpResponse:
    notebook = _notebook(request, pk, Action.CHANGE)
    services.notebook_delete(notebook=notebook, actor=request.user)
    messages.success(
        request, _("Notebook %(name)s deleted; its files stay in the workspace.") % {"name": notebook.name}
    )
    return redirect("notebook-list")


# --- TensorBoard ------------------------------------------------------------------------------------


@login_required
@require_GET
def tensorboard_list(request: HttpRequest) -> HttpResponse:
    boards = list(selectors.tensorboards_visible(request.user).filter(job__state__in=ACTIVE))
    return render(request, "notebooks/tensorboard_list.html", {"boards": boards, "jobs": request.GET.get("jobs", "")})


@login_required
@require_POST
def tensorboard_open(request: HttpRequest) -> HttpResponse:
    """From a job's page (one job) or the compare form (several ids, separated by commas or spaces)."""
    ids = [part for part in re.split(r"[\s,]+", request.POST.get("jobs", "")) if part]
    try:
        board, _created = services.tensorboard_open(user=request.user, job_ids=ids)
    except ValidationError as exc:
        messages.error(request, "; ".join(m for msgs in errors_of(exc).values() for m in msgs))
        back = request.POST.get("back") or ""
        return redirect(back if back.startswith("/") and not back.startswith("//") else "tensorboard-list")
    return redirect("tensorboard-open", pk=board.pk)


@login_required
@require_GET
def tensorboard_wait(request: HttpRequest, pk: int) -> HttpResponse:
    board = permissions.get_or_404(selectors.tensorboards_visible(request.user), request.user, Action.VIEW, pk=pk)
    job = board.job
    if board.ready:
        return redirect(endpoint_origin.endpoint_url(job.public_id, TENSORBOARD_TASK, "tensorboard", board.path))
    if job.is_final:
        messages.warning(request, _("That TensorBoard has ended (%(reason)s): open it again.") % {"reason": job.reason})
        return redirect("tensorboard-list")
    return render(request, "notebooks/starting.html", {"what": "TensorBoard", "job": job}, status=202)
