"""The one permission chokepoint: pages, API, admin actions and consumers all ask here.

The rules:
- platform admins (staff) see and change everything;
- members of a team see all of the team's resources;
- owners manage (stop, delete, open a shell in) their own resources;
- team admins manage every resource of their team and administer the team;
- anyone may be granted view or change on one object with django-guardian
  (sharing with someone outside the team); global permissions never stand in
  for object grants (``accept_global_perms=False``); only the owner, a team
  admin or a platform admin may grant or revoke (``Action.SHARE``), and a
  change grant always comes with a view grant (teams.services.object_share);
- what an object serves (its endpoints) is opened by whoever may view it (``Action.OPEN``), except a personal
  object (a notebook, as its app registers), which its owner alone opens, and by an object's own audience
  where its app registers one (a public app: anyone; an app shared with named users: them too);
- everyone else does not see the object at all: faces answer 404, not 403, so
  existence does not leak.

A "resource" is any model with ``team`` and ``owner`` foreign keys (experiments,
jobs, notebooks, ...).
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum

from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import PermissionDenied
from django.db.models import Model, Q, QuerySet
from django.http import Http404
from django.utils.translation import gettext as _
from guardian.models import GroupObjectPermission, UserObjectPermission

from teams.models import Membership, Team


class Action(StrEnum):
    VIEW = "view"  # read the resource, its logs and outputs
    CHANGE = "change"  # stop, delete, rerun, open a shell: the owner, a team admin or a change grant
    SHARE = "share"  # grant or revoke others' view and change: the owner or a team admin, never a grant
    # reach what it serves (its endpoints): whoever may view it; a personal one (a notebook) its owner alone,
    # not team-mates, not team admins, not platform admins, not a grant
    OPEN = "open"


_personal: list[Callable[[Model], bool]] = []


def register_personal(check: Callable[[Model], bool]) -> None:
    """An app says which of its objects are personal (in its AppConfig.ready()): only their owner opens them."""
    _personal.append(check)


def is_personal(obj: Model) -> bool:
    return any(check(obj) for check in _personal)


_audiences: list[Callable[[Model, object], bool]] = []


def register_audience(check: Callable[[Model, object], bool]) -> None:
    """An app says who else may open one of its objects (in its AppConfig.ready()): ``check(obj, user)`` is
    True for a public object (anonymous visitors included) or a user it is shared with for opening only."""
    _audiences.append(check)


def in_audience(obj: Model, user) -> bool:
    return any(check(obj, user) for check in _audiences)


def _is_user(user) -> bool:
    return bool(user is not None and user.is_authenticated and user.is_active)


def is_platform_admin(user) -> bool:
    return _is_user(user) and user.is_staff


def _roles(user) -> dict[int, str]:
    """team id -> role, read once per user object (a request's user lives as long as the request)."""
    cache = getattr(user, "_easyai_roles", None)
    if cache is None:
        cache = dict(Membership.objects.filter(user=user).order_by().values_list("team_id", "role"))
        user._easyai_roles = cache
    return cache


def team_role(user, team: Team | int) -> str | None:
    """The user's role in the team (``admin`` or ``member``), or None."""
    if not _is_user(user):
        return None
    return _roles(user).get(team.pk if isinstance(team, Team) else team)


def forget_roles(user) -> None:
    """Drop the per-user caches after memberships or grants change."""
    for name in ("_easyai_roles", "_easyai_grants"):
        if hasattr(user, name):
            delattr(user, name)


# --- teams ------------------------------------------------------------------------


def can_create_team(user) -> bool:
    """May create a team (and so become its admin): platform admins, or everyone when EASYAI_TEAM_CREATORS says so.

    Creating a team is the way to submit work without being invited, so it is closed by default.
    """
    if is_platform_admin(user):
        return True
    return _is_user(user) and settings.EASYAI_TEAM_CREATORS == "everyone"


def can_view_team(user, team: Team) -> bool:
    return is_platform_admin(user) or team_role(user, team) is not None


def can_admin_team(user, team: Team) -> bool:
    return is_platform_admin(user) or team_role(user, team) == Membership.Role.ADMIN


def can_use_team(user, team: Team) -> bool:
    """May submit work into the team: members and admins (platform admins too)."""
    return can_view_team(user, team)


def visible_teams(user, queryset: QuerySet[Team] | None = None) -> QuerySet[Team]:
    queryset = Team.objects.all() if queryset is None else queryset
    if is_platform_admin(user):
        return queryset
    if not _is_user(user):
        return queryset.none()
    return queryset.filter(pk__in=Membership.objects.filter(user=user).values("team_id"))


def get_team_or_404(user, slug: str, *, admin: bool = False) -> Team:
    """The team if the user may see it; 404 otherwise; 403 when seen but not administered."""
    team = visible_teams(user).filter(slug=slug).first()
    if team is None:
        raise Http404(_("No such team."))
    if admin and not can_admin_team(user, team):
        raise PermissionDenied(_("Only the team's admins may do this."))
    return team


# --- team resources -----------------------------------------------------------------


def _perm(model: type[Model], action: Action) -> str:
    return f"{model._meta.app_label}.{action.value}_{model._meta.model_name}"


def _granted_ids(user, queryset: QuerySet, action: Action) -> list:
    """Primary keys of the objects granted to the user (or their groups) one by one, read from guardian's tables.

    Read directly rather than with get_objects_for_user, whose CAST(id AS text) IN (...) scans every row
    of the resource's table; the grants themselves are few.
    """
    model = queryset.model
    grants = getattr(user, "_easyai_grants", None)
    if grants is None:
        grants = user._easyai_grants = {}
    key = (model._meta.label, action.value)
    if key in grants:
        return grants[key]
    content_type = ContentType.objects.get_for_model(model)
    codename = f"{action.value}_{model._meta.model_name}"
    user_grants = UserObjectPermission.objects.filter(
        user=user, content_type=content_type, permission__codename=codename
    ).values_list("object_pk", flat=True)
    group_grants = GroupObjectPermission.objects.filter(
        group__user=user, content_type=content_type, permission__codename=codename
    ).values_list("object_pk", flat=True)
    field = model._meta.pk
    grants[key] = sorted({field.to_python(pk) for pk in user_grants.union(group_grants)})
    return grants[key]


def restrict(queryset: QuerySet, user, action: Action = Action.VIEW) -> QuerySet:
    """The objects of the queryset this user may act on."""
    if action == Action.OPEN:
        raise ValueError("Action.OPEN is asked of one object at a time: can(user, obj, Action.OPEN)")
    if is_platform_admin(user):
        return queryset
    if not _is_user(user):
        return queryset.none()
    # Team ids and object grants are read first (two small queries): a plain IN list lets the database
    # use its (team, ...) indexes, where an OR with a subquery over the grants made it scan every row.
    roles = _roles(user)
    if action == Action.VIEW:
        mine = Q(team_id__in=sorted(roles))
    else:
        admin_teams = sorted(team_id for team_id, role in roles.items() if role == Membership.Role.ADMIN)
        mine = Q(owner=user) | Q(team_id__in=admin_teams)
    if action == Action.SHARE:
        # A grant lets its holder use the object, not pass it on.
        return queryset.filter(mine)
    granted = _granted_ids(user, queryset, action)
    return queryset.filter(mine | Q(pk__in=granted) if granted else mine)


def can(user, obj: Model, action: Action = Action.VIEW) -> bool:
    """May the user act on this one object?"""
    if action == Action.OPEN:
        if is_personal(obj):
            return _is_user(user) and obj.owner_id == user.pk
        if in_audience(obj, user):
            return True
        action = Action.VIEW
    if is_platform_admin(user):
        return True
    if not _is_user(user):
        return False
    if action in (Action.CHANGE, Action.SHARE) and obj.owner_id == user.pk:
        return True  # the owner's own: no role to read
    role = team_role(user, obj.team_id)
    if action == Action.VIEW and role is not None:
        return True
    if action in (Action.CHANGE, Action.SHARE) and role == Membership.Role.ADMIN:
        return True
    if action == Action.SHARE:
        return False
    return user.has_perm(_perm(type(obj), action), obj)


def get_or_404(queryset: QuerySet, user, action: Action = Action.VIEW, **lookup) -> Model:
    """One object: 404 when the user may not see it, 403 when seen but the action is not allowed."""
    obj = restrict(queryset, user, Action.VIEW).filter(**lookup).first()
    if obj is None:
        raise Http404(_("Not found."))
    if action != Action.VIEW and not can(user, obj, action):
        raise PermissionDenied(_("Only the owner or a team admin may do this."))
    return obj


def grants_on(obj: Model) -> dict[str, list[str]]:
    """Username -> the actions granted to that user on this one object (group grants not included)."""
    content_type = ContentType.objects.get_for_model(type(obj))
    rows = (
        UserObjectPermission.objects.filter(content_type=content_type, object_pk=str(obj.pk))
        .values_list("user__username", "permission__codename")
        .order_by("user__username", "permission__codename")
    )
    suffix = f"_{type(obj)._meta.model_name}"
    grants: dict[str, list[str]] = {}
    for username, codename in rows:
        action = codename.removesuffix(suffix)
        if action in (Action.VIEW, Action.CHANGE):
            grants.setdefault(username, []).append(action)
    return grants
