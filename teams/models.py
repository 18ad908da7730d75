"""Teams ("spaces"), memberships with roles, and each user's current team (quotas per cluster: clusters.models.Quota)."""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxLengthValidator, MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.utils.translation import gettext_lazy as _

from teams.webhooks import validate_webhook_url

# The longest lease a notebook may have, in hours (ten years): past it a lease's end is not a date.
MAX_LEASE_HOURS = 10 * 366 * 24

# A Kubernetes namespace name: a DNS-1123 label.
DNS1123_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
slug_validator = RegexValidator(
    DNS1123_LABEL,
    _("Use lowercase letters, digits and '-', starting and ending with a letter or digit (a Kubernetes namespace name)."),
)


class Team(models.Model):
    name = models.CharField(_("name"), max_length=100)
    slug = models.CharField(
        _("slug"),
        max_length=63,
        unique=True,
        validators=[slug_validator, MaxLengthValidator(63)],
        help_text=_("The team's Kubernetes namespace: lowercase letters, digits and '-', at most 63 characters."),
    )
    description = models.TextField(_("description"), blank=True)
    webhook_url = models.URLField(
        _("webhook URL"),
        blank=True,
        validators=[validate_webhook_url],
        help_text=_("Job state changes are POSTed here as JSON, when set: http(s) to a public address."),
    )
    notebook_max_lease_hours = models.PositiveIntegerField(
        _("notebook maximum lease (hours)"),
        default=72,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_LEASE_HOURS)],
    )
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, through="Membership", related_name="teams")
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        ordering = ["slug"]
        verbose_name = _("team")
        verbose_name_plural = _("teams")

    def __str__(self) -> str:
        return self.slug


class Membership(models.Model):
    class Role(models.TextChoices):
        ADMIN = "admin", _("admin")
        MEMBER = "member", _("member")

    class Source(models.TextChoices):
        # Made or last changed by a person (a team admin, a platform admin, the API): directory sync never
        # touches it.
        HAND = "hand", _("by hand")
        # Granted by a mapping of a directory group (LDAP, OIDC): directory sync adds, changes and removes it.
        DIRECTORY = "directory", _("directory group")

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(_("role"), max_length=10, choices=Role.choices, default=Role.MEMBER)
    source = models.CharField(_("source"), max_length=10, choices=Source.choices, default=Source.HAND)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["team", "user"]
        verbose_name = _("membership")
        verbose_name_plural = _("memberships")
        constraints = [models.UniqueConstraint(fields=["team", "user"], name="one_membership_per_team_user")]

    def __str__(self) -> str:
        return f"{self.user} in {self.team} ({self.role})"


class Profile(models.Model):
    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="profile")
    current_team = models.ForeignKey(Team, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        verbose_name = _("profile")
        verbose_name_plural = _("profiles")

    def __str__(self) -> str:
        return f"profile of {self.user}"


class ApiToken(models.Model):
    """An API token, kept as the SHA-256 of its key: the key itself is shown once, when it is created.

    The key is ``eai_`` and 40 random characters (240 bits), so one unsalted hash is enough (as GitHub
    and django-rest-knox do): nothing short enough to guess is ever hashed. ``prefix`` (the key's first
    characters) is kept in clear to tell tokens apart in the profile page and the admin.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(_("name"), max_length=100, blank=True, help_text=_("What the token is for."))
    prefix = models.CharField(_("prefix"), max_length=16, db_index=True, editable=False)
    digest = models.CharField(_("SHA-256 of the key"), max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    expires_at = models.DateTimeField(_("expires at"), null=True, blank=True, help_text=_("Empty: never."))
    last_used_at = models.DateTimeField(_("last used at"), null=True, blank=True, editable=False)

    class Meta:
        ordering = ["user", "-created_at"]
        verbose_name = _("API token")
        verbose_name_plural = _("API tokens")

    def __str__(self) -> str:
        return f"{self.prefix}… of {self.user}"
