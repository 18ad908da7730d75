"""The Images page: the platform's images and those of the user's teams; admins register and unregister them here
(``assets.images`` decides who may: platform admins for every team, a team's admins for theirs)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST

from assets import images
from assets.models import Accelerator
from teams import permissions
from teams.models import Membership

FORM_FIELDS = ("team", "name", "tags", "description", "frameworks", "accelerator", "default_for")


def _admin_teams(user) -> list[tuple[str, str]]:
    """Where the user may register: (slug, label), the platform ("") first for platform admins."""
    teams = permissions.visible_teams(user).order_by("slug")
    if not permissions.is_platform_admin(user):
        teams = teams.filter(memberships__user=user, memberships__role=Membership.Role.ADMIN)
    choices = [(slug, f"{name} ({slug})") for slug, name in teams.values_list("slug", "name")]
    return ([("", _("every team (platform)"))] if permissions.is_platform_admin(user) else []) + choices


@login_required
@require_http_methods(["GET", "POST"])
def image_list(request: HttpRequest) -> HttpResponse:
    values = {name: request.POST.get(name, "") for name in FORM_FIELDS}
    errors: dict[str, list[str]] = {}
    if request.method == "POST":
        team = None
        if values["team"]:
            team = permissions.visible_teams(request.user).filter(slug=values["team"]).first()
        if values["team"] and team is None:
            errors = {"team": [_("No such team.")]}
        else:
            try:
                image = images.image_register(
                    user=request.user, team=team, **{k: v for k, v in values.items() if k != "team"}
                )
            except ValidationError as exc:
                errors = exc.message_dict
            else:
                messages.success(request, _("Image %(name)s registered.") % {"name": image.name})
                return redirect("image-list")
    rows = list(images.images_visible(request.user).select_related("team").order_by("name", "id"))
    for image in rows:
        image.changeable = images.can_change(request.user, image)
    context = {
        "images": rows,
        "register_teams": _admin_teams(request.user),
        "values": values,
        "errors": [(field, message) for field, messages_ in errors.items() for message in messages_],
        "accelerators": Accelerator.choices,
        "frameworks": images.FRAMEWORKS,
    }
    return render(request, "assets/image_list.html", context, status=400 if errors else 200)


@login_required
@require_POST
def image_delete(request: HttpRequest, pk: int) -> HttpResponse:
    image = images.image_get(request.user, pk, change=True)
    images.image_delete(user=request.user, image=image)
    messages.success(request, _("Image %(name)s unregistered.") % {"name": image.name})
    return redirect("image-list")
