"""Directory sign-on: which directory groups grant which team roles, who came from a directory, what sync changed,
and the one-time codes the CLI's ``easyai login --sso`` exchanges for a token."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils.translation import gettext_lazy as _

from accounts.groups import check_dn, normalize
from teams.models import Membership, Team


class Directory(models.TextChoices):
    LDAP = "ldap", _("LDAP")
    OIDC = "oidc", _("OIDC")


class GroupMapping(models.Model):
    """Members of a directory group get a role in a team: an LDAP group's DN, or a value of the OIDC groups claim."""

    directory = models.CharField(_("directory"), max_length=10, choices=Directory.choices)
    group = models.CharField(
        _("group"),
        max_length=500,
        help_text=_(
            "LDAP: the group's DN (cn=ml-vision,ou=groups,dc=example,dc=com). OIDC: a value of the groups claim."
        ),
    )
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="+", verbose_name=_("team"))
    role = models.CharField(_("role"), max_length=10, choices=Membership.Role.choices, default=Membership.Role.MEMBER)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        ordering = ["directory", "group", "team"]
        verbose_name = _("directory group mapping")
        verbose_name_plural = _("directory group mappings")
        constraints = [
            models.UniqueConstraint(fields=["directory", "group", "team"], name="one_mapping_per_group_and_team")
        ]

    def __str__(self) -> str:
        return f"{self.group} → {self.team}: {self.role}"

    def clean(self) -> None:
        if self.directory == Directory.LDAP and not check_dn(self.group or ""):
            raise ValidationError(
                {"group": _("An LDAP group is named by its DN, e.g. cn=ml-vision,ou=groups,dc=example,dc=com.")}
            )
        if not (self.group or "").strip():
            raise ValidationError({"group": _("Name the group.")})
        # Kept as the directory compares it, so a DN typed in another case still matches.
        self.group = normalize(self.directory, self.group)


class DirectoryAccount(models.Model):
    """A user who signs in through a directory: the periodic sync looks each one up again."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="directory_account")
    directory = models.CharField(_("directory"), max_length=10, choices=Directory.choices)
    # LDAP: the entry's DN. OIDC: the issuer and the subject ("<iss> <sub>"), which never change for a person.
    subject = models.CharField(_("subject"), max_length=500)
    last_seen_at = models.DateTimeField(_("last seen in the directory"), null=True, blank=True)
    # Set when sync found the account gone (or disabled) and took the portal's access away; cleared when the
    # person signs in through the directory again.
    removed_at = models.DateTimeField(_("removed from the directory at"), null=True, blank=True)

    class Meta:
        ordering = ["directory", "subject"]
        verbose_name = _("directory account")
        verbose_name_plural = _("directory accounts")
        constraints = [models.UniqueConstraint(fields=["directory", "subject"], name="one_account_per_subject")]

    def __str__(self) -> str:
        return f"{self.user} ({self.directory}: {self.subject})"


class DirectoryChange(models.Model):
    """One change directory sync made, or refused to make: the audit trail of memberships that follow groups."""

    class Action(models.TextChoices):
        ADDED = "added", _("added")
        ROLE_CHANGED = "role_changed", _("role changed")
        REMOVED = "removed", _("removed")
        REFUSED = "refused", _("refused")
        TOKENS_REVOKED = "tokens_revoked", _("tokens revoked")
        DEACTIVATED = "deactivated", _("deactivated")
        REACTIVATED = "reactivated", _("reactivated")

    class Trigger(models.TextChoices):
        SIGN_IN = "sign_in", _("sign-in")
        SYNC = "sync", _("periodic sync")

    at = models.DateTimeField(_("at"), auto_now_add=True, db_index=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    team = models.ForeignKey(Team, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    action = models.CharField(_("action"), max_length=20, choices=Action.choices)
    trigger = models.CharField(_("trigger"), max_length=10, choices=Trigger.choices)
    role = models.CharField(_("role"), max_length=10, blank=True)
    message = models.TextField(_("message"))

    class Meta:
        ordering = ["-at", "-pk"]
        verbose_name = _("directory change")
        verbose_name_plural = _("directory changes")

    def __str__(self) -> str:
        return self.message


class CliGrant(models.Model):
    """A one-time code the portal hands the ``easyai`` CLI through the browser (``easyai login --sso``).

    Kept as the SHA-256 of the code, with the PKCE challenge of the CLI's verifier: a code read on its way
    through the browser is worth nothing without the verifier, which never left the CLI.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    digest = models.CharField(max_length=64, unique=True)
    challenge = models.CharField(max_length=128)
    name = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("CLI sign-in code")
        verbose_name_plural = _("CLI sign-in codes")

    def __str__(self) -> str:
        return f"CLI sign-in code of {self.user}"


class SSHKey(models.Model):
    """One SSH public key of a user: what a task's SSH server accepts from them (accounts/ssh_keys.py checks it)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="ssh_keys")
    name = models.CharField(_("name"), max_length=100)
    # "TYPE BASE64": no options, no comment (accounts.ssh_keys.PublicKey.line).
    public_key = models.TextField(_("public key"))
    fingerprint = models.CharField(_("fingerprint"), max_length=64, help_text=_("SHA256, as ssh-keygen -l prints it."))
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    last_used_at = models.DateTimeField(_("last used at"), null=True, blank=True)

    class Meta:
        ordering = ["user", "created_at", "pk"]
        verbose_name = _("SSH key")
        verbose_name_plural = _("SSH keys")
        constraints = [
            models.UniqueConstraint(fields=["user", "fingerprint"], name="one_ssh_key_per_fingerprint_and_user"),
            models.UniqueConstraint(fields=["user", "name"], name="one_ssh_key_name_per_user"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.fingerprint})"

    @property
    def key_type(self) -> str:
        return self.public_key.split(" ", 1)[0]
