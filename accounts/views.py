"""Pages of the accounts app: sign-out that ends the provider's session too, the CLI's sign-in page, and your SSH
keys."""

from __future__ import annotations

import re
from urllib.parse import urlencode

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy as _l
from django.views.decorators.http import require_http_methods, require_POST

from accounts import selectors, services
from teams.forms import BootstrapMixin, add_service_errors

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


# --- SSH keys ---------------------------------------------------------------------------------


class SSHKeyForm(BootstrapMixin, forms.Form):
    name = forms.CharField(
        label=_l("Name"),
        max_length=100,
        required=False,
        help_text=_l("What the key is (your laptop, say); left empty, the key's comment."),
    )
    public_key = forms.CharField(
        label=_l("Public key"),
        strip=False,
        max_length=20000,
        widget=forms.Textarea(attrs={"rows": 3, "class": "form-control font-monospace", "spellcheck": "false"}),
        help_text=_l("The one line of your .pub file, e.g. <code>cat ~/.ssh/id_ed25519.pub</code>."),
    )


def _render_ssh_keys(request: HttpRequest, form: SSHKeyForm | None = None, status: int = 200) -> HttpResponse:
    context = {"keys": selectors.ssh_keys_of(request.user), "form": form or SSHKeyForm()}
    return render(request, "accounts/ssh_keys.html", context, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def ssh_keys(request: HttpRequest) -> HttpResponse:
    """Your SSH public keys: the list, and a form to add one."""
    if request.method == "GET":
        return _render_ssh_keys(request)
    form = SSHKeyForm(request.POST)
    if not form.is_valid():
        return _render_ssh_keys(request, form, status=400)
    try:
        key = services.ssh_key_add(
            user=request.user, public_key=form.cleaned_data["public_key"], name=form.cleaned_data["name"]
        )
    except ValidationError as exc:
        add_service_errors(form, exc)
        return _render_ssh_keys(request, form, status=400)
    messages.success(
        request, _("SSH key %(name)s added (%(fingerprint)s).") % {"name": key.name, "fingerprint": key.fingerprint}
    )
    return redirect("ssh-keys")


@login_required
@require_POST
def ssh_key_remove(request: HttpRequest, key_id: int) -> HttpResponse:
    try:
        services.ssh_key_remove(user=request.user, key_id=key_id)
    except ValidationError:
        raise Http404(_("There is no such SSH key.")) from None
    messages.success(request, _("The SSH key was removed; new SSH connections no longer accept it."))
    return redirect("ssh-keys")
