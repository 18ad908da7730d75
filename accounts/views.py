"""Pages of directory sign-on: sign-out that ends the provider's session too, and the CLI's sign-in page."""

from __future__ import annotations

import re
from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth import logout
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST

from accounts import services

STATE = re.compile(r"[A-Za-z0-9_-]{16,128}")

# The CLI's page may send its form's answer on to the CLI on this machine's loopback (any port); the rest is the
# portal's usual policy (easyai_site/security.py).
CLI_PAGE_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "font-src 'self' data:",
        "object-src 'none'",
        "base-uri 'self'",
        "frame-ancestors 'none'",
        "form-action 'self' http://127.0.0.1:*",
    ]
)


@require_POST
def sign_out(request: HttpRequest) -> HttpResponse:
    """Sign out of the portal and, when the provider offers one, of its session too (OIDC end-session)."""
    from accounts.oidc import provider_logout_url

    end_session = provider_logout_url(request)
    logout(request)
    if not end_session:
        return redirect(settings.LOGOUT_REDIRECT_URL)
    # A page, not a redirect: the sign-out form's policy lets forms post to the portal only, and a redirect to
    # the provider would count as the form's; a refresh is a navigation of its own.
    return render(request, "accounts/signed_out.html", {"end_session": end_session})


def _cli_request(data) -> tuple[dict, dict[str, str]]:
    """The CLI's parameters, checked: each problem named by its field."""
    errors: dict[str, str] = {}
    port_text = data.get("port", "")
    port = int(port_text) if port_text.isdigit() else 0
    if not 1024 <= port <= 65535:
        errors["port"] = _("port must be the CLI's port on 127.0.0.1, a number from 1024 to 65535.")
    state = data.get("state", "")
    if not STATE.fullmatch(state):
        errors["state"] = _("state must be 16 to 128 letters, digits, '-' or '_'.")
    challenge = data.get("code_challenge", "")
    if not services.CHALLENGE.fullmatch(challenge):
        errors["code_challenge"] = _("code_challenge must be 43 characters of base64url (S256).")
    if data.get("code_challenge_method", "S256") != "S256":
        errors["code_challenge_method"] = _("code_challenge_method must be S256.")
    name = (data.get("name") or "")[:100]
    return {"port": port, "state": state, "code_challenge": challenge, "name": name}, errors


@login_required
@require_http_methods(["GET", "POST"])
def cli_authorize(request: HttpRequest) -> HttpResponse:
    """`easyai login --sso`: the signed-in person lets the CLI on this computer have a token, or refuses."""
    params, errors = _cli_request(request.POST if request.method == "POST" else request.GET)
    if errors:
        return render(request, "accounts/cli_authorize.html", {"errors": errors}, status=400)
    callback = f"http://127.0.0.1:{params['port']}/callback"
    if request.method == "POST":
        if request.POST.get("answer") != "allow":
            return HttpResponseRedirect(f"{callback}?{urlencode({'error': 'access_denied', 'state': params['state']})}")
        try:
            code = services.cli_grant_create(user=request.user, challenge=params["code_challenge"], name=params["name"])
        except ValidationError as exc:
            return render(request, "accounts/cli_authorize.html", {"errors": exc.message_dict}, status=400)
        return HttpResponseRedirect(f"{callback}?{urlencode({'code': code, 'state': params['state']})}")
    response = render(request, "accounts/cli_authorize.html", {"params": params})
    response["Content-Security-Policy"] = CLI_PAGE_POLICY
    return response
