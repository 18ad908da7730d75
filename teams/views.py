"""Pages: sign-in and sign-up, profile and token, team home and management."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import authenticate, login
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import LoginView
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST

from teams import dashboard, selectors, services
from teams.forms import (
    MemberAddForm,
    MemberRoleForm,
    SignInForm,
    SignupForm,
    TeamCreateForm,
    TeamSettingsForm,
    TokenCreateForm,
    add_service_errors,
)
from teams.models import ApiToken, Team
from teams.permissions import can_admin_team, can_create_team, get_team_or_404, team_role, visible_teams


@login_required
def home(request: HttpRequest) -> HttpResponse:
    team = request.team or None
    context: dict = {"team": team}
    if team is not None:
        context["members"] = selectors.members_of(team)
        context["quotas"] = selectors.quotas_of(team)
        context["is_team_admin"] = can_admin_team(request.user, team)
        # The dashboard: what the apps above show for the team (running jobs, usage, clusters, notebooks...).
        panels = dashboard.panels_for(request, team)
        context["main_panels"] = [panel for panel in panels if panel.column == dashboard.MAIN]
        context["side_panels"] = [panel for panel in panels if panel.column == dashboard.SIDE]
    return render(request, "teams/home.html", context)


@login_required
@require_POST
def team_switch(request: HttpRequest) -> HttpResponse:
    slug = request.POST.get("team", "")
    team = visible_teams(request.user).filter(slug=slug).first()
    if team is None:
        raise Http404(_("No such team."))
    services.profile_set_current_team(user=request.user, team=team)
    next_url = request.POST.get("next") or "/"
    return redirect(next_url if next_url.startswith("/") and not next_url.startswith("//") else "/")


# --- teams ---------------------------------------------------------------------------


@login_required
def team_list(request: HttpRequest) -> HttpResponse:
    teams = list(selectors.teams_for_list(request.user))
    for team in teams:
        team.my_role = team_role(request.user, team)
    return render(request, "teams/team_list.html", {"teams": teams})


@login_required
@require_http_methods(["GET", "POST"])
def team_create(request: HttpRequest) -> HttpResponse:
    if not can_create_team(request.user):
        raise PermissionDenied(_("Only platform admins may create teams; ask one to create yours or add you to one."))
    form = TeamCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            team = services.team_create(
                creator=request.user,
                name=form.cleaned_data["name"],
                slug=form.cleaned_data["slug"],
                description=form.cleaned_data["description"],
            )
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            messages.success(request, _("Team %(name)s created; you are its admin.") % {"name": team.name})
            return redirect("team-detail", slug=team.slug)
    status = 400 if request.method == "POST" else 200
    return render(request, "teams/team_create.html", {"form": form}, status=status)


def _render_team(
    request: HttpRequest,
    team: Team,
    *,
    status: int = 200,
    settings_form: TeamSettingsForm | None = None,
    add_form: MemberAddForm | None = None,
    row_errors: dict[str, list[str]] | None = None,
) -> HttpResponse:
    is_admin = can_admin_team(request.user, team)
    context = {
        "team": team,
        "members": selectors.members_of(team),
        "quotas": selectors.quotas_with_use(team),
        "is_team_admin": is_admin,
        "my_role": team_role(request.user, team),
        "row_errors": row_errors or {},
    }
    if is_admin:
        context["settings_form"] = settings_form or TeamSettingsForm(instance=team)
        context["add_form"] = add_form or MemberAddForm()
    return render(request, "teams/team_detail.html", context, status=status)


@login_required
def team_detail(request: HttpRequest, slug: str) -> HttpResponse:
    return _render_team(request, get_team_or_404(request.user, slug))


@login_required
@require_POST
def team_settings(request: HttpRequest, slug: str) -> HttpResponse:
    team = get_team_or_404(request.user, slug, admin=True)
    form = TeamSettingsForm(request.POST, instance=Team.objects.get(pk=team.pk))
    if form.is_valid():
        try:
            services.team_update(team=team, **form.cleaned_data)
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            messages.success(request, _("Team settings saved."))
            return redirect("team-detail", slug=team.slug)
    return _render_team(request, team, status=400, settings_form=form)


@login_required
@require_POST
def member_add(request: HttpRequest, slug: str) -> HttpResponse:
    team = get_team_or_404(request.user, slug, admin=True)
    form = MemberAddForm(request.POST)
    if form.is_valid():
        try:
            services.membership_add(team=team, **form.cleaned_data)
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            messages.success(request, _("%(username)s added.") % {"username": form.cleaned_data["username"]})
            return redirect("team-detail", slug=team.slug)
    return _render_team(request, team, status=400, add_form=form)


def _row_errors(username: str, exc: ValidationError) -> dict[str, list[str]]:
    return {username: exc.messages}


@login_required
@require_POST
def member_role(request: HttpRequest, slug: str, username: str) -> HttpResponse:
    team = get_team_or_404(request.user, slug, admin=True)
    form = MemberRoleForm(request.POST)
    if not form.is_valid():
        return _render_team(request, team, status=400, row_errors={username: list(form.errors["role"])})
    try:
        services.membership_change_role(team=team, username=username, role=form.cleaned_data["role"])
    except ValidationError as exc:
        return _render_team(request, team, status=400, row_errors=_row_errors(username, exc))
    messages.success(request, _("Role of %(username)s changed.") % {"username": username})
    return redirect("team-detail", slug=team.slug)


@login_required
@require_POST
def member_remove(request: HttpRequest, slug: str, username: str) -> HttpResponse:
    team = get_team_or_404(request.user, slug, admin=True)
    try:
        services.membership_remove(team=team, username=username)
    except ValidationError as exc:
        return _render_team(request, team, status=400, row_errors=_row_errors(username, exc))
    messages.success(request, _("%(username)s removed from the team.") % {"username": username})
    if username == request.user.username and not request.user.is_staff:
        return redirect("team-list")
    return redirect("team-detail", slug=team.slug)


# --- accounts ------------------------------------------------------------------------


class SignInView(LoginView):
    """The sign-in page: throttled per address and user name (teams.signin); over the limit it answers 429."""

    authentication_form = SignInForm
    redirect_authenticated_user = True

    def form_invalid(self, form: SignInForm) -> HttpResponse:
        response = super().form_invalid(form)
        if form.retry_after is not None:
            response.status_code = 429
            response["Retry-After"] = str(form.retry_after)
        return response


def _render_profile(request: HttpRequest, *, new_key: str = "", form: TokenCreateForm | None = None,
                    status: int = 200) -> HttpResponse:
    context = {
        "tokens": ApiToken.objects.filter(user=request.user).order_by("-created_at"),
        "new_key": new_key,
        "token_form": form or TokenCreateForm(),
        "memberships": selectors.memberships_of(request.user),
        "now": timezone.now(),
    }
    response = render(request, "teams/profile.html", context, status=status)
    if new_key:
        # The key is in this answer only: no cache may keep it.
        response["Cache-Control"] = "no-store"
    return response


@login_required
def profile(request: HttpRequest) -> HttpResponse:
    return _render_profile(request)


@login_required
@require_POST
def token_create(request: HttpRequest) -> HttpResponse:
    form = TokenCreateForm(request.POST)
    if not form.is_valid():
        return _render_profile(request, form=form, status=400)
    days = form.cleaned_data["expires_in_days"]
    try:
        _token, key = services.token_create(
            user=request.user,
            name=form.cleaned_data["name"],
            expires_at=timezone.now() + timedelta(days=days) if days else None,
        )
    except ValidationError as exc:
        add_service_errors(form, exc)
        return _render_profile(request, form=form, status=400)
    # Rendered, not redirected: the key is shown in this page once and kept nowhere (not in the session either).
    return _render_profile(request, new_key=key)


@login_required
@require_POST
def token_revoke(request: HttpRequest, token_id: int) -> HttpResponse:
    try:
        services.token_revoke(user=request.user, token_id=token_id)
    except ValidationError:
        raise Http404(_("There is no such token.")) from None
    messages.success(request, _("The token was revoked; it no longer works."))
    return redirect("profile")


@require_http_methods(["GET", "POST"])
def signup(request: HttpRequest) -> HttpResponse:
    if not settings.EASYAI_SIGNUP_ENABLED:
        raise Http404(_("Sign-up is turned off."))
    if request.user.is_authenticated:
        return redirect("home")
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            user = services.user_signup(
                username=form.cleaned_data["username"],
                email=form.cleaned_data["email"],
                password=form.cleaned_data["password1"],
            )
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            if not user.is_active:
                messages.info(request, _("Your account was created; a platform admin must approve it before you sign in."))
                return redirect("login")
            # authenticate() picks the configured backend that accepts the new account;
            # with only LDAP/OIDC configured there is none, and the user signs in later.
            user = authenticate(
                request, username=form.cleaned_data["username"], password=form.cleaned_data["password1"]
            )
            if user is None:
                messages.info(request, _("Your account was created; sign in to continue."))
                return redirect("login")
            login(request, user)
            messages.success(request, _("Welcome to EasyAI. Create a team or ask a team admin to add you."))
            return redirect("home")
    status = 400 if request.method == "POST" else 200
    return render(request, "registration/signup.html", {"form": form}, status=status)
