"""Sign-in through a real OpenLDAP directory (slapd on loopback, testing/ldap.py): the password form and the API's
token exchange, the person's name and e-mail copied, wrong passwords and disabled accounts refused, and a
directory that does not answer said as such while local accounts still sign in."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from accounts.models import DirectoryAccount
from conftest import PASSWORD
from testing import ldap as test_ldap

pytestmark = pytest.mark.django_db

User = get_user_model()


def sign_in(username: str, password: str) -> tuple[Client, object]:
    client = Client()
    response = client.post("/accounts/login/", {"username": username, "password": password})
    return client, response


def signed_in_as(client: Client) -> str | None:
    response = client.get("/api/v1/me/")
    return response.json()["username"] if response.status_code == 200 else None


def test_a_directory_user_signs_in_and_gets_their_name_and_email(ldap_site):
    client, response = sign_in("alice", test_ldap.password_of("alice"))
    assert response.status_code == 302, response.content.decode()[:2000]
    assert signed_in_as(client) == "alice"
    alice = User.objects.get(username="alice")
    assert (alice.first_name, alice.last_name, alice.email) == ("Alice", "Liddell", "alice@example.com")
    assert not alice.has_usable_password()  # the directory keeps the password, not the portal
    account = DirectoryAccount.objects.get(user=alice)
    assert (account.directory, account.subject) == ("ldap", test_ldap.person_dn("alice"))


def test_a_wrong_password_is_refused(ldap_site):
    client, response = sign_in("alice", "not-her-password")
    assert response.status_code == 200
    assert "correct username and password" in response.content.decode()
    assert signed_in_as(client) is None
    assert not User.objects.filter(username="alice").exists()


def test_a_disabled_directory_account_is_refused(ldap_site):
    # carol is in the deny group; dave's entry is locked by the directory's password policy.
    for uid in ("carol", "dave"):
        client, response = sign_in(uid, test_ldap.password_of(uid))
        assert response.status_code == 200, uid
        assert signed_in_as(client) is None, uid
    # And the API's token exchange (easyai login) refuses them as well.
    answer = Client().post(
        "/api/v1/auth/token/", {"username": "carol", "password": "carol-pw"}, content_type="application/json"
    )
    assert answer.status_code == 400


def test_the_api_token_exchange_takes_a_directory_password(ldap_site):
    answer = Client().post(
        "/api/v1/auth/token/", {"username": "alice", "password": "alice-pw"}, content_type="application/json"
    )
    assert answer.status_code == 200, answer.content
    me = Client().get("/api/v1/me/", HTTP_AUTHORIZATION=f"Token {answer.json()['token']}")
    assert me.json()["email"] == "alice@example.com"


def test_a_directory_that_does_not_answer_gets_a_clear_message_and_the_local_admin_still_signs_in(ldap_site, make_user):
    make_user("root-admin", is_staff=True, is_superuser=True)
    ldap_site.stop()
    client, response = sign_in("alice", test_ldap.password_of("alice"))
    assert response.status_code == 200
    assert "The directory (LDAP) cannot be reached" in response.content.decode()
    assert signed_in_as(client) is None
    client, response = sign_in("root-admin", PASSWORD)
    assert response.status_code == 302
    assert signed_in_as(client) == "root-admin"
    # The admin's pages carry no word of the directory: the message belongs to the failed attempt only.
    assert "cannot be reached" not in client.get("/", follow=True).content.decode()
    # And /admin/login/ too.
    admin = Client()
    response = admin.post("/admin/login/?next=/admin/", {"username": "root-admin", "password": PASSWORD})
    assert response.status_code == 302
