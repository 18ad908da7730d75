"""Sign-in through an OpenID Connect provider (mozilla-django-oidc) with teams that follow the ``groups`` claim.

``accounts.oidc.OIDCBackend`` is mozilla-django-oidc's backend made strict and mapped to the portal's users:

- the ID token is verified in full: its signature (``OIDC_RP_SIGN_ALGO``, the key from the provider's JWKS),
  its audience (our client id), its expiry and issue time, its issuer (``OIDC_OP_ISSUER``, when set) and the
  nonce the sign-in started with; anything else refuses the sign-in;
- a person is their provider's subject (``iss`` and ``sub``), kept in a DirectoryAccount: a changed e-mail
  address never moves anyone into another account. At the first sign-in an existing account with the same
  verified e-mail address is taken over, else an account is made (its username from ``preferred_username``);
- name and e-mail are copied at each sign-in, and memberships follow the groups claim (``OIDC_GROUPS_CLAIM``).

``CallbackView`` answers a provider that cannot be reached with a page that says so (503), and a refused
sign-in with the sign-in page and a message, never with an error page. ``provider_logout_url`` ends the
provider's session too when it offers an end-session endpoint (``OIDC_OP_LOGOUT_ENDPOINT``).
"""

from __future__ import annotations

import logging
import re
from urllib.parse import urlencode

import jwt
import requests
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.core.exceptions import SuspiciousOperation
from django.db import IntegrityError, transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from mozilla_django_oidc.auth import OIDCAuthenticationBackend
from mozilla_django_oidc.views import OIDCAuthenticationCallbackView

from accounts import services
from accounts.models import Directory, DirectoryAccount, DirectoryChange
from teams.services import RESERVED_USERNAMES

log = logging.getLogger(__name__)

USERNAME_UNSAFE = re.compile(r"[^\w.@+-]")


def _setting(name: str, default=None):
    return getattr(settings, name, default)


class OIDCBackend(OIDCAuthenticationBackend):
    """mozilla-django-oidc's authorization-code flow, with the ID token checked in full and claims mapped to users."""

    def _verify_jws(self, payload, key):
        try:
            header = jwt.get_unverified_header(payload)
        except jwt.InvalidTokenError as exc:
            raise SuspiciousOperation(f"The ID token cannot be read: {exc}") from None
        if header.get("alg") != self.OIDC_RP_SIGN_ALGO:
            raise SuspiciousOperation(
                f"The ID token is signed with {header.get('alg')!r}, not OIDC_RP_SIGN_ALGO {self.OIDC_RP_SIGN_ALGO!r}"
            )
        try:
            return jwt.decode(
                payload,
                key,
                algorithms=[self.OIDC_RP_SIGN_ALGO],
                audience=self.OIDC_RP_CLIENT_ID,
                issuer=_setting("OIDC_OP_ISSUER") or None,
                leeway=_setting("OIDC_CLOCK_SKEW_SECONDS", 60),
                options={"require": ["exp", "iat", "aud", "iss", "sub"]},
            )
        except jwt.InvalidTokenError as exc:
            # A bad signature, another audience, an expired token, another issuer: all refuse the sign-in.
            raise SuspiciousOperation(f"The ID token was refused: {exc}") from None

    def verify_claims(self, claims) -> bool:
        return bool(claims.get("sub"))

    def _subject(self, payload: dict) -> str:
        return f"{payload.get('iss', '')} {payload['sub']}"

    def get_or_create_user(self, access_token, id_token, payload):
        userinfo = self.get_userinfo(access_token, id_token, payload)
        if userinfo.get("sub") not in (None, payload.get("sub")):
            # OpenID Connect Core 5.3.2: a userinfo answer about someone else must not be used.
            raise SuspiciousOperation("The userinfo answer names another subject than the ID token")
        claims = {**payload, **userinfo}
        if not self.verify_claims(claims):
            raise SuspiciousOperation("The ID token has no subject")
        subject = self._subject(payload)
        account = (
            DirectoryAccount.objects.filter(directory=Directory.OIDC, subject=subject).select_related("user").first()
        )
        if account is not None:
            user = self.update_user(account.user, claims)
        else:
            user = self._first_sign_in(claims)
            if user is None:
                return None
        services.directory_account_seen(
            user=user, directory=Directory.OIDC, subject=subject, trigger=DirectoryChange.Trigger.SIGN_IN
        )
        groups = claims.get(_setting("OIDC_GROUPS_CLAIM", "groups"))
        if isinstance(groups, str):
            groups = [groups]
        if isinstance(groups, list):
            services.memberships_follow_groups(
                user=user, directory=Directory.OIDC, groups=groups, trigger=DirectoryChange.Trigger.SIGN_IN
            )
        return user

    def _first_sign_in(self, claims: dict):
        email = claims.get("email") or ""
        if email and claims.get("email_verified") is True:
            users = list(get_user_model().objects.filter(email__iexact=email, directory_account__isnull=True)[:2])
            if len(users) == 1:
                return self.update_user(users[0], claims)
        if not _setting("OIDC_CREATE_USER", True):
            log.info("OIDC sign-in of %s refused: no account, and OIDC_CREATE_USER is off", claims.get("sub"))
            return None
        return self.create_user(claims)

    def create_user(self, claims):
        User = get_user_model()
        wanted = claims.get("preferred_username") or (claims.get("email") or "").split("@")[0] or claims["sub"]
        base = USERNAME_UNSAFE.sub("-", str(wanted))[:140].strip(".") or "user"
        if base in RESERVED_USERNAMES:
            base = f"{base}-sso"
        for attempt in range(100):
            username = base if attempt == 0 else f"{base}-{attempt + 1}"
            if User.objects.filter(username__iexact=username).exists():
                continue
            try:
                with transaction.atomic():
                    user = User.objects.create_user(username, email=claims.get("email") or "")
            except IntegrityError:
                continue
            return self.update_user(user, claims)
        raise SuspiciousOperation(f"No free username for {wanted!r}")

    def update_user(self, user, claims):
        fields = {
            "first_name": (claims.get("given_name") or "")[:150],
            "last_name": (claims.get("family_name") or "")[:150],
            "email": (claims.get("email") or "")[:254],
        }
        changed = [name for name, value in fields.items() if value and getattr(user, name) != value]
        for name in changed:
            setattr(user, name, fields[name])
        if changed:
            user.save(update_fields=changed)
        return user


class CallbackView(OIDCAuthenticationCallbackView):
    """The provider's redirect back: a provider that cannot be reached, or a refused token, gets a clear answer."""

    def get(self, request: HttpRequest) -> HttpResponse:
        try:
            return super().get(request)
        except requests.RequestException as exc:
            log.warning("OIDC sign-in failed: the provider could not be reached: %s", exc)
            return render(
                request,
                "accounts/sso_unavailable.html",
                {"provider": provider_name()},
                status=503,
            )
        except SuspiciousOperation as exc:
            log.warning("OIDC sign-in refused: %s", exc)
            return self.login_failure()

    def login_failure(self) -> HttpResponse:
        messages.error(
            self.request,
            _("Sign-in with %(provider)s did not complete. Try again; if it keeps failing, ask a platform admin.")
            % {"provider": provider_name()},
        )
        return redirect("login")


def provider_name() -> str:
    return _setting("EASYAI_OIDC_PROVIDER_NAME", "") or _("single sign-on")


def provider_logout_url(request: HttpRequest) -> str:
    """The provider's end-session URL for this session ("" when it has none): read before the session ends."""
    endpoint = _setting("OIDC_OP_LOGOUT_ENDPOINT", "")
    id_token = request.session.get("oidc_id_token")
    if not endpoint or not id_token:
        return ""
    query = {
        "id_token_hint": id_token,
        "client_id": settings.OIDC_RP_CLIENT_ID,
        "post_logout_redirect_uri": request.build_absolute_uri(reverse("login")),
    }
    return f"{endpoint}?{urlencode(query)}"
