"""Forms of the team and account pages: they parse input; services decide and write."""

from __future__ import annotations

from django import forms
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm, UserCreationForm
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from teams import signin
from teams.models import MAX_LEASE_HOURS, Membership, Team
from teams.services import TOKEN_MAX_DAYS


class BootstrapMixin:
    """Gives every widget Bootstrap's classes, so templates can render fields plainly."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        for field in self.fields.values():
            css = "form-select" if isinstance(field.widget, forms.Select) else "form-control"
            field.widget.attrs.setdefault("class", css)


def add_service_errors(form: forms.Form, error: ValidationError) -> None:
    """Show a service's ValidationError at the form's fields (or above the form for others)."""
    if not hasattr(error, "error_dict"):
        form.add_error(None, error)
        return
    for field, errors in error.error_dict.items():
        form.add_error(field if field in form.fields else None, errors)


class TeamCreateForm(BootstrapMixin, forms.ModelForm):
    class Meta:
        model = Team
        fields = ["name", "slug", "description"]
        widgets = {"description": forms.Textarea(attrs={"rows": 3})}


class TeamSettingsForm(BootstrapMixin, forms.ModelForm):
    webhook_url = forms.URLField(
        label=Team._meta.get_field("webhook_url").verbose_name,
        help_text=Team._meta.get_field("webhook_url").help_text,
        required=False,
        assume_scheme="https",
    )
    # A lease of zero hours would stop every notebook at once.
    notebook_max_lease_hours = forms.IntegerField(
        label=Team._meta.get_field("notebook_max_lease_hours").verbose_name, min_value=1, max_value=MAX_LEASE_HOURS
    )

    class Meta:
        model = Team
        fields = ["name", "description", "webhook_url", "notebook_max_lease_hours"]
        widgets = {"description": forms.Textarea(attrs={"rows": 3})}


class MemberAddForm(BootstrapMixin, forms.Form):
    username = forms.CharField(label=_("Username"), max_length=150)
    role = forms.ChoiceField(label=_("Role"), choices=Membership.Role.choices, initial=Membership.Role.MEMBER)


class MemberRoleForm(BootstrapMixin, forms.Form):
    role = forms.ChoiceField(label=_("Role"), choices=Membership.Role.choices)


class SignupForm(BootstrapMixin, UserCreationForm):
    email = forms.EmailField(label=_("Email"), required=True)

    class Meta(UserCreationForm.Meta):
        fields = ("username", "email")


class SignInThrottleMixin:
    """Counts the attempt (teams.signin) before the password is checked; over the limit, says when to retry."""

    retry_after: int | None = None

    def clean(self) -> dict:
        username = self.cleaned_data.get("username")
        self.retry_after = signin.attempt(self.request, username) if self.request is not None else None
        if self.retry_after is not None:
            raise ValidationError(
                _("Too many sign-in attempts. Try again in %(seconds)d seconds.") % {"seconds": self.retry_after},
                code="throttled",
            )
        return super().clean()


class SignInForm(SignInThrottleMixin, BootstrapMixin, AuthenticationForm):
    pass


class AdminSignInForm(SignInThrottleMixin, AdminAuthenticationForm):
    pass


class TokenCreateForm(BootstrapMixin, forms.Form):
    name = forms.CharField(label=_("Name"), max_length=100, required=False, help_text=_("What the token is for."))
    expires_in_days = forms.IntegerField(
        label=_("Expires in (days)"),
        min_value=1,
        max_value=TOKEN_MAX_DAYS,
        required=False,
        help_text=_("Empty: the token never expires."),
    )
