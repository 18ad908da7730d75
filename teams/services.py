"""Changes to teams, memberships, profiles, users and tokens (quotas: clusters.services).

Every function validates before it writes and raises Django's ValidationError
keyed by field name, so a refused change leaves every row as it was and each
face (page, API, admin) can show the error at the field.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, Group
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Model, QuerySet
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from guardian.shortcuts import assign_perm, remove_perm

from teams import tokens
from teams.models import ApiToken, Membership, Profile, Team
from teams.permissions import can_create_team, forget_roles
from teams.signals import team_changed

log = logging.getLogger(__name__)

# Fields of a team that its admins may change; the slug is the Kubernetes
# namespace on every cluster, so it never changes after creation.
TEAM_EDITABLE_FIELDS = ("name", "description", "webhook_url", "notebook_max_lease_hours")


def team_notify_changed(*, team_id: int) -> None:
    """Announce that a team or one of its quotas changed (``teams.signals.team_changed``), after commit."""
    if not team_changed.has_listeners(Team):
        return
    # robust: the team is already committed; a cluster that cannot be reached must
    # not turn a successful request into an error (the provisioning sync retries).
    transaction.on_commit(lambda: team_changed.send(sender=Team, team_id=team_id), robust=True)


# Slugs that would shadow a page (/teams/new/, /teams/switch/) or name a namespace
# Kubernetes itself uses, where a team's quota and role bindings must never land.
RESERVED_SLUGS = frozenset({"new", "switch", "default"})
RESERVED_SLUG_PREFIXES = ("kube-",)


def team_check_slug(slug: str) -> None:
    """Refuse a slug that is reserved for a page or for Kubernetes itself."""
    if slug in RESERVED_SLUGS or slug.startswith(RESERVED_SLUG_PREFIXES):
        raise ValidationError({"slug": _("This slug is reserved; choose another.")})


def _check_role(role: object) -> str:
    if role not in Membership.Role.values:
        raise ValidationError({"role": _("Choose one of: %(roles)s.") % {"roles": ", ".join(Membership.Role.values)}})
    return str(role)


def _lock_team(team: Team) -> Team:
    # Membership changes of one team are serialised on the team row, so two admins
    # demoting each other at once cannot leave the team without an admin.
    return Team.objects.select_for_update().get(pk=team.pk)


def _admin_count(team: Team) -> int:
    return Membership.objects.filter(team=team, role=Membership.Role.ADMIN).count()


@transaction.atomic
def team_create(
    *, creator: AbstractBaseUser, name: str, slug: str, description: str = "", join: bool = True, **fields: object
) -> Team:
    """Create a team; its creator (when ``join``) becomes its admin and works in it from now on.

    Who may create teams is a setting (EASYAI_TEAM_CREATORS, teams.permissions.can_create_team): pages,
    API and admin all come through here. ``fields`` are the other editable fields (webhook URL, lease).
    """
    if not can_create_team(creator):
        raise PermissionDenied(_("Only platform admins may create teams; ask one to create yours or add you to one."))
    unknown = sorted(set(fields) - set(TEAM_EDITABLE_FIELDS))
    if unknown:
        raise ValidationError({name: _("This field cannot be set.") for name in unknown})
    team = Team(name=name, slug=slug, description=description, **fields)
    team.full_clean()
    team_check_slug(team.slug)
    try:
        with transaction.atomic():
            team.save()
    except IntegrityError:
        # Another request took the slug between the check above and the insert.
        raise ValidationError({"slug": _("A team with this slug already exists.")}) from None
    if join:
        Membership.objects.create(team=team, user=creator, role=Membership.Role.ADMIN)
        forget_roles(creator)
        Profile.objects.update_or_create(user=creator, defaults={"current_team": team})
    team_notify_changed(team_id=team.pk)
    return team


@transaction.atomic
def team_update(*, team: Team, **fields: object) -> Team:
    """Change a team's name, description, webhook URL or notebook lease."""
    unknown = sorted(set(fields) - set(TEAM_EDITABLE_FIELDS))
    if unknown:
        raise ValidationError({name: _("This field cannot be changed.") for name in unknown})
    team = _lock_team(team)
    for name, value in fields.items():
        setattr(team, name, value)
    team.full_clean()
    team.save(update_fields=list(fields) or None)
    return team


def _check_source(source: object) -> str:
    if source not in Membership.Source.values:
        raise ValidationError(
            {"source": _("Choose one of: %(sources)s.") % {"sources": ", ".join(Membership.Source.values)}}
        )
    return str(source)


@transaction.atomic
def membership_add(
    *, team: Team, username: str, role: str = Membership.Role.MEMBER, source: str = Membership.Source.HAND
) -> Membership:
    """Add an existing user to the team with a role (``source``: by hand, or granted by a directory group)."""
    role = _check_role(role)
    source = _check_source(source)
    user = get_user_model().objects.filter(username=username, is_active=True).first()
    if user is None:
        raise ValidationError({"username": _("There is no user %(username)s.") % {"username": username}})
    team = _lock_team(team)
    if Membership.objects.filter(team=team, user=user).exists():
        raise ValidationError(
            {"username": _("%(username)s is already a member of this team.") % {"username": username}}
        )
    membership = Membership.objects.create(team=team, user=user, role=role, source=source)
    forget_roles(user)
    return membership


def _membership(team: Team, username: str) -> Membership:
    membership = Membership.objects.filter(team=team, user__username=username).select_related("user").first()
    if membership is None:
        raise ValidationError({"username": _("%(username)s is not a member of this team.") % {"username": username}})
    return membership


@transaction.atomic
def membership_change_role(
    *, team: Team, username: str, role: str, source: str = Membership.Source.HAND, only_source: str | None = None
) -> Membership:
    """Make a member an admin or an admin a member; the last admin stays an admin.

    A person's change makes the membership theirs (``source`` hand): directory sync leaves it alone from then
    on. ``only_source``: change it only while it still has that source (directory sync's compare-and-set).
    """
    role = _check_role(role)
    source = _check_source(source)
    team = _lock_team(team)
    membership = _membership(team, username)
    if only_source is not None and membership.source != only_source:
        raise ValidationError({"source": _("This membership was changed by hand; it is left as it is.")})
    if membership.role == role:
        return membership
    if membership.role == Membership.Role.ADMIN and _admin_count(team) <= 1:
        raise ValidationError({"role": _("The team's last admin cannot be demoted; make someone else admin first.")})
    membership.role = role
    membership.source = source
    membership.save(update_fields=["role", "source"])
    forget_roles(membership.user)
    return membership


@transaction.atomic
def membership_remove(*, team: Team, username: str, only_source: str | None = None) -> None:
    """Take a user out of the team; the last admin cannot be removed. ``only_source``: remove it only while it
    still has that source (directory sync never takes away a membership made by hand)."""
    team = _lock_team(team)
    membership = _membership(team, username)
    if only_source is not None and membership.source != only_source:
        raise ValidationError({"source": _("This membership was made by hand; it is left as it is.")})
    if membership.role == Membership.Role.ADMIN and _admin_count(team) <= 1:
        raise ValidationError(
            {"username": _("The team's last admin cannot be removed; make someone else admin first.")}
        )
    membership.delete()
    # A user whose current team is gone falls back to their first team (selectors.current_team_for).
    Profile.objects.filter(user=membership.user, current_team=team).update(current_team=None)
    forget_roles(membership.user)


@transaction.atomic
def memberships_remove(*, memberships: QuerySet[Membership]) -> None:
    """Take several memberships away, all or nothing: removing two admins of a team at once is refused at the
    second and the first comes back."""
    for membership in memberships.select_related("team", "user"):
        membership_remove(team=membership.team, username=membership.user.username)


@transaction.atomic
def users_delete(*, users: QuerySet) -> None:
    """Delete several accounts, all or nothing (each as user_delete)."""
    for user in users:
        user_delete(user=user)


@transaction.atomic
def user_delete(*, user: AbstractBaseUser) -> None:
    """Delete a user account; refused while they are the last admin of a team."""
    for membership in Membership.objects.filter(user=user, role=Membership.Role.ADMIN).select_related("team"):
        team = _lock_team(membership.team)
        if _admin_count(team) <= 1:
            raise ValidationError(
                {
                    "username": _("%(username)s is the last admin of team %(team)s; make someone else admin first.")
                    % {"username": user.get_username(), "team": team.slug}
                }
            )
    user.delete()


@transaction.atomic
def profile_set_current_team(*, user, team: Team) -> None:
    """Remember the team the user works in (the page header's choice and the CLI's default)."""
    Profile.objects.update_or_create(user=user, defaults={"current_team": team})


RESERVED_USERNAMES = frozenset({"public", ".", "..", "data"})


@transaction.atomic
def user_signup(*, username: str, email: str, password: str) -> AbstractBaseUser:
    """Create a user account from the sign-up page (password already validated by the form).

    Refused unless EASYAI_SIGNUP_ENABLED; with EASYAI_SIGNUP_APPROVAL the account is created inactive
    and cannot sign in until a platform admin approves it (user_approve, an action in the admin).
    """
    if not settings.EASYAI_SIGNUP_ENABLED:
        raise PermissionDenied(_("Sign-up is turned off."))
    User = get_user_model()
    if username in RESERVED_USERNAMES:
        # A username names a personal workspace folder: these would be the public one or a parent.
        raise ValidationError({"username": _("This username is reserved.")})
    try:
        with transaction.atomic():
            user = User.objects.create_user(
                username=username, email=email, password=password, is_active=not settings.EASYAI_SIGNUP_APPROVAL
            )
    except IntegrityError:
        raise ValidationError({"username": _("A user with that username already exists.")}) from None
    Profile.objects.create(user=user)
    return user


@transaction.atomic
def user_approve(*, users: QuerySet) -> int:
    """Let accounts that signed up and wait for approval sign in; returns how many were approved."""
    return users.filter(is_active=False).update(is_active=True)


# "Never" is an empty expiry; a number of days past this is a typo.
TOKEN_MAX_DAYS = 3650


@transaction.atomic
def token_create(*, user, name: str = "", expires_at: datetime | None = None) -> tuple[ApiToken, str]:
    """Make an API token for the user; returns it and its key, which is shown once and kept nowhere."""
    if expires_at is not None and expires_at <= timezone.now():
        raise ValidationError({"expires_at": _("The expiry must lie in the future.")})
    key = tokens.new_key()
    token = ApiToken(
        user=user, name=name, prefix=tokens.prefix_of(key), digest=tokens.digest_of(key), expires_at=expires_at
    )
    token.full_clean(exclude=["user"])
    token.save()
    return token, key


@transaction.atomic
def token_revoke(*, user, token_id: int) -> None:
    """Delete one of the user's tokens: it stops working at once (on the endpoint origin, within the few
    seconds that keeps a token's answer: endpoints.proxy.AUTHORIZED_FOR_S)."""
    deleted, _rows = ApiToken.objects.filter(user=user, pk=token_id).delete()
    if not deleted:
        raise ValidationError({"token": _("There is no such token.")})


@transaction.atomic
def tokens_revoke_all(*, user) -> int:
    """Delete every API token of the user (they left the directory, say); returns how many there were."""
    deleted, _rows = ApiToken.objects.filter(user=user).delete()
    return deleted


# --- sharing one object -------------------------------------------------------------------

# What may be granted on one object, widest last: a change grant always comes with view,
# since teams.permissions looks an object up by view before it asks for change.
SHARE_PERMISSIONS = ("view", "change")


def _check_share_permission(permission: object) -> str:
    if permission not in SHARE_PERMISSIONS:
        raise ValidationError(
            {"permission": _("Choose one of: %(permissions)s.") % {"permissions": ", ".join(SHARE_PERMISSIONS)}}
        )
    return str(permission)


def _codename(obj: Model, permission: str) -> str:
    return f"{permission}_{obj._meta.model_name}"


@transaction.atomic
def object_share(*, obj: Model, grantee: AbstractBaseUser | Group, permission: str) -> None:
    """Let a user (or a group) view, or view and change, one object of a team they may not be in."""
    permission = _check_share_permission(permission)
    for granted in SHARE_PERMISSIONS[: SHARE_PERMISSIONS.index(permission) + 1]:
        assign_perm(_codename(obj, granted), grantee, obj)
    if not isinstance(grantee, Group):
        forget_roles(grantee)


@transaction.atomic
def object_unshare(*, obj: Model, grantee: AbstractBaseUser | Group, permission: str = "view") -> None:
    """Take back a grant on one object; taking back view takes back change too."""
    permission = _check_share_permission(permission)
    for revoked in SHARE_PERMISSIONS[SHARE_PERMISSIONS.index(permission) :]:
        remove_perm(_codename(obj, revoked), grantee, obj)
    if not isinstance(grantee, Group):
        forget_roles(grantee)


@transaction.atomic
def object_share_exactly(*, obj: Model, grantee: AbstractBaseUser | Group, permissions: Iterable[str]) -> None:
    """Leave the grantee exactly these grants on one object (change brings view; none takes back both)."""
    chosen = {_check_share_permission(permission) for permission in permissions}
    if "change" in chosen:
        object_share(obj=obj, grantee=grantee, permission="change")
    elif "view" in chosen:
        object_share(obj=obj, grantee=grantee, permission="view")
        object_unshare(obj=obj, grantee=grantee, permission="change")
    else:
        object_unshare(obj=obj, grantee=grantee, permission="view")
