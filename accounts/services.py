"""Directory sign-on's writes: memberships that follow directory groups, directory accounts seen and removed, and
the CLI's one-time sign-in codes.

Memberships go through teams.services, so the rules of the team pages hold here too: a team's last admin is
neither removed nor demoted (directory sync records the refusal and reports it instead), and a membership made
or changed by hand (``Membership.Source.HAND``) is never touched. Every change is a DirectoryChange row whose
message says "by directory sync".
"""

from __future__ import annotations

import base64
import hashlib
import logging
import re
import secrets
from collections.abc import Iterable
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from accounts import ssh_keys
from accounts.groups import normalize, wanted_roles
from accounts.models import CliGrant, Directory, DirectoryAccount, DirectoryChange, GroupMapping, SSHKey
from teams import services as team_services
from teams.models import ApiToken, Membership, Team

log = logging.getLogger(__name__)

Trigger = DirectoryChange.Trigger
Action = DirectoryChange.Action
DIRECTORY = Membership.Source.DIRECTORY


def _record(
    *, user, action: str, trigger: str, message: str, team: Team | None = None, role: str = ""
) -> DirectoryChange:
    change = DirectoryChange.objects.create(
        user=user, team=team, action=action, trigger=trigger, role=role, message=message
    )
    level = logging.WARNING if action == Action.REFUSED else logging.INFO
    log.log(level, "%s", message)
    return change


def _when(trigger: str) -> str:
    return "at sign-in" if trigger == Trigger.SIGN_IN else "in the periodic sync"


def memberships_follow_groups(
    *, user: AbstractBaseUser, directory: str, groups: Iterable[str], trigger: str
) -> list[DirectoryChange]:
    """Add, change and remove the user's memberships granted by group mappings so they match the directory's
    groups; memberships made by hand stay as they are. Returns the changes made and refused."""
    groups = {normalize(directory, group) for group in groups if isinstance(group, str)}
    mappings = GroupMapping.objects.filter(directory=directory).values_list("group", "team_id", "role")
    wanted = wanted_roles(mappings, groups)
    current = {m.team_id: m for m in Membership.objects.filter(user=user).select_related("team")}
    teams = {team.pk: team for team in Team.objects.filter(pk__in=set(wanted) - set(current))}
    username = user.get_username()
    when = _when(trigger)
    changes: list[DirectoryChange] = []
    # Additions and promotions first, then demotions and removals.
    for team_id, role in sorted(wanted.items(), key=lambda item: item[1] != Membership.Role.ADMIN):
        membership = current.get(team_id)
        if membership is None:
            team = teams[team_id]
            try:
                with transaction.atomic():
                    team_services.membership_add(team=team, username=username, role=role, source=DIRECTORY)
                    changes.append(
                        _record(
                            user=user, team=team, role=role, action=Action.ADDED, trigger=trigger,
                            message=f"{username} added to team {team.slug} as {role} by directory sync ({when})",
                        )
                    )  # fmt: skip
            except ValidationError:
                # Another sign-in of the same person added it a moment ago, or the account is inactive.
                continue
        elif membership.source == DIRECTORY and membership.role != role:
            changes.append(_change_role(membership, role, trigger))
    for team_id, membership in current.items():
        if membership.source == DIRECTORY and team_id not in wanted:
            changes.append(_remove(membership, trigger))
    return changes


def _change_role(membership: Membership, role: str, trigger: str) -> DirectoryChange:
    username, team = membership.user.get_username(), membership.team
    when = _when(trigger)
    try:
        with transaction.atomic():
            team_services.membership_change_role(
                team=team, username=username, role=role, source=DIRECTORY, only_source=DIRECTORY
            )
            return _record(
                user=membership.user, team=team, role=role, action=Action.ROLE_CHANGED, trigger=trigger,
                message=f"{username} made {role} of team {team.slug} by directory sync ({when})",
            )  # fmt: skip
    except ValidationError as exc:
        return _record(
            user=membership.user, team=team, role=role, action=Action.REFUSED, trigger=trigger,
            message=f"{username} not made {role} of team {team.slug} by directory sync ({when}): "
            + " ".join(exc.messages),
        )  # fmt: skip


def _remove(membership: Membership, trigger: str) -> DirectoryChange:
    username, team = membership.user.get_username(), membership.team
    when = _when(trigger)
    try:
        with transaction.atomic():
            team_services.membership_remove(team=team, username=username, only_source=DIRECTORY)
            return _record(
                user=membership.user, team=team, role=membership.role, action=Action.REMOVED, trigger=trigger,
                message=f"{username} removed from team {team.slug} by directory sync ({when})",
            )  # fmt: skip
    except ValidationError as exc:
        return _record(
            user=membership.user, team=team, role=membership.role, action=Action.REFUSED, trigger=trigger,
            message=f"{username} not removed from team {team.slug} by directory sync ({when}): "
            + " ".join(exc.messages),
        )  # fmt: skip


@transaction.atomic
def directory_account_seen(*, user: AbstractBaseUser, directory: str, subject: str, trigger: str) -> DirectoryAccount:
    """Note that the directory vouches for the user now; one whom sync had removed gets their access back."""
    if directory not in Directory.values:
        raise ValidationError({"directory": _("Choose one of: %(values)s.") % {"values": ", ".join(Directory.values)}})
    now = timezone.now()
    account, _created = DirectoryAccount.objects.select_for_update().get_or_create(
        user=user, defaults={"directory": directory, "subject": subject, "last_seen_at": now}
    )
    was_removed = account.removed_at is not None
    account.directory, account.subject, account.last_seen_at, account.removed_at = directory, subject, now, None
    account.save(update_fields=["directory", "subject", "last_seen_at", "removed_at"])
    if was_removed and not user.is_active:
        # Sync deactivated them when they left the directory; the directory knows them again.
        type(user).objects.filter(pk=user.pk).update(is_active=True)
        user.is_active = True
        _record(
            user=user, action=Action.REACTIVATED, trigger=trigger,
            message=f"{user.get_username()} reactivated by directory sync ({_when(trigger)}): back in the directory",
        )  # fmt: skip
    return account


@transaction.atomic
def directory_account_removed(
    *, account: DirectoryAccount, reason: str, trigger: str = Trigger.SYNC
) -> list[DirectoryChange]:
    """The directory no longer knows the user (or has disabled them): API tokens revoked, memberships granted by
    groups taken away (a last admin's stays, reported), the account deactivated until the directory knows them again."""
    account = DirectoryAccount.objects.select_for_update().select_related("user").get(pk=account.pk)
    user = account.user
    username = user.get_username()
    when = _when(trigger)
    changes = memberships_follow_groups(user=user, directory=account.directory, groups=(), trigger=trigger)
    revoked = team_services.tokens_revoke_all(user=user)
    if revoked:
        changes.append(
            _record(
                user=user,
                action=Action.TOKENS_REVOKED,
                trigger=trigger,
                message=f"{revoked} API token(s) of {username} revoked by directory sync ({when}): {reason}",
            )  # fmt: skip
        )
    if user.is_active:
        type(user).objects.filter(pk=user.pk).update(is_active=False)
        user.is_active = False
        changes.append(
            _record(
                user=user,
                action=Action.DEACTIVATED,
                trigger=trigger,
                message=f"{username} deactivated by directory sync ({when}): {reason}",
            )  # fmt: skip
        )
    account.removed_at = timezone.now()
    account.save(update_fields=["removed_at"])
    return changes


# --- the CLI's sign-in through the browser ---------------------------------------------------------------

CLI_CODE_LIFETIME = timedelta(minutes=2)
# RFC 7636: the challenge is BASE64URL(SHA256(verifier)) without padding (43 characters); a verifier is 43 to
# 128 characters of [A-Za-z0-9-._~].
CHALLENGE = re.compile(r"[A-Za-z0-9_-]{43}")
VERIFIER = re.compile(r"[A-Za-z0-9._~-]{43,128}")


def challenge_of(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).rstrip(b"=").decode("ascii")


def _digest(code: str) -> str:
    return hashlib.sha256(code.encode("utf-8", "surrogatepass")).hexdigest()


@transaction.atomic
def cli_grant_create(*, user: AbstractBaseUser, challenge: str, name: str = "") -> str:
    """A one-time code for the CLI that asked with this PKCE challenge (S256); returns the code."""
    if not isinstance(challenge, str) or not CHALLENGE.fullmatch(challenge):
        raise ValidationError({"code_challenge": _("The code challenge must be 43 characters of base64url (S256).")})
    if not user.is_active:
        raise ValidationError({"user": _("This account is inactive.")})
    code = secrets.token_urlsafe(32)
    CliGrant.objects.create(
        user=user, digest=_digest(code), challenge=challenge, name=name[:100],
        expires_at=timezone.now() + CLI_CODE_LIFETIME,
    )  # fmt: skip
    return code


def cli_grant_redeem(*, code: str, verifier: str, name: str = "") -> tuple[ApiToken, str]:
    """Exchange a one-time code and the CLI's PKCE verifier for a new API token (used once, within minutes)."""
    if not isinstance(verifier, str) or not VERIFIER.fullmatch(verifier):
        raise ValidationError({"code_verifier": _("The code verifier must be 43 to 128 characters (RFC 7636).")})
    refused = ValidationError({"code": _("This code is unknown, used or expired: run easyai login --sso again.")})
    if not isinstance(code, str) or not 0 < len(code) <= 200:
        raise refused
    now = timezone.now()
    grant = CliGrant.objects.filter(digest=_digest(code)).select_related("user").first()
    # Compare-and-set, committed on its own: of two requests with the same code one wins, and a wrong verifier
    # uses the code up too (no transaction around this function rolls that back).
    if grant is None or not CliGrant.objects.filter(pk=grant.pk, used_at__isnull=True, expires_at__gt=now).update(
        used_at=now
    ):
        raise refused
    if not secrets.compare_digest(challenge_of(verifier), grant.challenge):
        raise ValidationError({"code_verifier": _("The code verifier does not match the code's challenge.")})
    if not grant.user.is_active:
        raise refused
    return team_services.token_create(user=grant.user, name=(name or grant.name or "easyai login --sso")[:100])


# --- SSH keys -------------------------------------------------------------------------------

MAX_SSH_KEYS = 50  # per user: every key of a user travels to the task on each SSH connection


@transaction.atomic
def ssh_key_add(*, user, public_key: object, name: object = "") -> SSHKey:
    """Keep one of the user's SSH public keys (one OpenSSH line; its comment names it when no name is given)."""
    key = ssh_keys.parse(public_key)
    if not isinstance(name, str):
        raise ValidationError({"name": _("The name is text.")})
    name = " ".join(name.split()) or key.comment or key.fingerprint
    if len(name) > 100:
        raise ValidationError({"name": _("A key's name is at most 100 characters.")})
    # Locks the user's row: two adds at once cannot both pass the checks below.
    get_user_model().objects.select_for_update().filter(pk=user.pk).first()
    mine = SSHKey.objects.filter(user=user)
    same = mine.filter(fingerprint=key.fingerprint).first()
    if same is not None:
        raise ValidationError({"public_key": _("You already added this key, as “%(name)s”.") % {"name": same.name}})
    if mine.filter(name=name).exists():
        raise ValidationError({"name": _("You already have a key named “%(name)s”.") % {"name": name}})
    if mine.count() >= MAX_SSH_KEYS:
        raise ValidationError(
            {
                "public_key": _("You have %(count)d SSH keys, the most one may keep; remove one first.")
                % {"count": MAX_SSH_KEYS}
            }
        )
    return SSHKey.objects.create(user=user, name=name, public_key=key.line, fingerprint=key.fingerprint)


@transaction.atomic
def ssh_key_remove(*, user, key_id: int) -> None:
    """Forget one of the user's SSH keys: SSH connections opened from then on no longer accept it."""
    deleted, _rows = SSHKey.objects.filter(user=user, pk=key_id).delete()
    if not deleted:
        raise ValidationError({"key": _("There is no such SSH key.")})
