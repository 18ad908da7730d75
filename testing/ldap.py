"""A real OpenLDAP server for the sign-on tests: Debian's ``slapd`` on loopback with a throwaway directory.

As CI starts MariaDB for the database tests, ``Slapd`` starts a slapd of its own: a ``slapd.conf`` in a
temporary folder (an MDB database under ``dc=example,dc=com``, the ppolicy overlay so that an administrator
can lock an account with ``pwdAccountLockedTime``), the entries of ``DIRECTORY_LDIF`` loaded with ``slapadd``
before it starts, a free port on 127.0.0.1. Tests change the directory through ``add``, ``delete`` and
``modify`` (as its administrator), and ``stop`` ends the server.

Missing slapd or python-ldap skips the tests that need them, saying what to install; with
``EASYAI_REQUIRE_SSO=1`` (CI) it fails them instead.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

SLAPD = Path("/usr/sbin/slapd")
SLAPADD = Path("/usr/sbin/slapadd")
SCHEMA_DIR = Path("/etc/ldap/schema")
MODULE_DIR = Path("/usr/lib/ldap")

BASE_DN = "dc=example,dc=com"
ADMIN_DN = f"cn=admin,{BASE_DN}"
ADMIN_PASSWORD = "directory-admin-pw"
SERVICE_DN = f"cn=easyai,ou=services,{BASE_DN}"
SERVICE_PASSWORD = "easyai-service-pw"
PEOPLE = f"ou=people,{BASE_DN}"
GROUPS = f"ou=groups,{BASE_DN}"
USERS_GROUP = f"cn=easyai-users,{GROUPS}"
DISABLED_GROUP = f"cn=easyai-disabled,{GROUPS}"
VISION_GROUP = f"cn=ml-vision,{GROUPS}"
VISION_ADMINS_GROUP = f"cn=ml-vision-admins,{GROUPS}"

# People: alice (vision member), bob (vision admin), carol (disabled through the deny group), dave (locked by
# the directory's password policy), erin (in no team group). Each one's password is "<name>-pw".
PEOPLE_ROWS = {
    "alice": ("Alice", "Liddell", "alice@example.com"),
    "bob": ("Bob", "Builder", "bob@example.com"),
    "carol": ("Carol", "Danvers", "carol@example.com"),
    "dave": ("Dave", "Lister", "dave@example.com"),
    "erin": ("Erin", "Brockovich", "erin@example.com"),
}


def person_dn(uid: str) -> str:
    return f"uid={uid},{PEOPLE}"


def password_of(uid: str) -> str:
    return f"{uid}-pw"


def _group(dn: str, members: list[str]) -> str:
    cn = dn.split(",", 1)[0].split("=", 1)[1]
    # groupOfNames needs a member: the directory's administrator keeps each group valid when tests empty it.
    lines = [f"dn: {dn}", "objectClass: groupOfNames", f"cn: {cn}", f"member: {ADMIN_DN}"]
    lines += [f"member: {person_dn(uid)}" for uid in members]
    return "\n".join(lines)


def directory_ldif() -> str:
    entries = [
        f"dn: {BASE_DN}\nobjectClass: dcObject\nobjectClass: organization\no: Example\ndc: example",
        f"dn: {PEOPLE}\nobjectClass: organizationalUnit\nou: people",
        f"dn: {GROUPS}\nobjectClass: organizationalUnit\nou: groups",
        f"dn: ou=services,{BASE_DN}\nobjectClass: organizationalUnit\nou: services",
        f"dn: ou=policies,{BASE_DN}\nobjectClass: organizationalUnit\nou: policies",
        # The default password policy: an account is locked when pwdAccountLockedTime is set.
        f"dn: cn=default,ou=policies,{BASE_DN}\nobjectClass: organizationalRole\nobjectClass: pwdPolicy\ncn: default\n"
        "pwdAttribute: userPassword\npwdLockout: TRUE",
        f"dn: {SERVICE_DN}\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\ncn: easyai\n"
        f"userPassword: {SERVICE_PASSWORD}",
    ]
    for uid, (given, family, mail) in PEOPLE_ROWS.items():
        entry = (
            f"dn: {person_dn(uid)}\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {given} {family}\n"
            f"givenName: {given}\nsn: {family}\nmail: {mail}\nuserPassword: {password_of(uid)}"
        )
        if uid == "dave":
            entry += "\npwdAccountLockedTime: 000001010000Z"
        entries.append(entry)
    entries += [
        _group(USERS_GROUP, ["alice", "bob", "carol", "dave", "erin"]),
        _group(DISABLED_GROUP, ["carol"]),
        _group(VISION_GROUP, ["alice"]),
        _group(VISION_ADMINS_GROUP, ["bob"]),
    ]
    return "\n\n".join(entries) + "\n"


def slapd_conf(folder: Path) -> str:
    return f"""\
include {SCHEMA_DIR}/core.schema
include {SCHEMA_DIR}/cosine.schema
include {SCHEMA_DIR}/inetorgperson.schema
modulepath {MODULE_DIR}
moduleload back_mdb
moduleload ppolicy
pidfile {folder}/slapd.pid
argsfile {folder}/slapd.args

database mdb
maxsize 16777216
suffix "{BASE_DN}"
rootdn "{ADMIN_DN}"
rootpw {ADMIN_PASSWORD}
directory {folder}/data
index objectClass eq
index uid,member eq

overlay ppolicy
ppolicy_default "cn=default,ou=policies,{BASE_DN}"
ppolicy_use_lockout

access to attrs=userPassword
    by anonymous auth
    by * none
access to *
    by dn.exact="{SERVICE_DN}" read
    by self read
    by * none
"""


def missing() -> str:
    """Why the LDAP tests cannot run here, or ""."""
    if not SLAPD.exists() or not SLAPADD.exists():
        return "slapd is missing: apt-get install slapd ldap-utils"
    try:
        import django_auth_ldap  # noqa: F401
        import ldap  # noqa: F401
    except ImportError:
        return (
            "django-auth-ldap is not installed: apt-get install libldap2-dev libsasl2-dev, "
            "then pip install -r requirements-sso.txt"
        )
    return ""


def require() -> None:
    """Skip (or, with EASYAI_REQUIRE_SSO=1, fail) when slapd or the LDAP packages are missing."""
    reason = missing()
    if not reason:
        return
    if os.environ.get("EASYAI_REQUIRE_SSO") == "1":
        pytest.fail(f"EASYAI_REQUIRE_SSO=1 but {reason}")
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Slapd:
    """One slapd on 127.0.0.1 with the test directory loaded."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="easyai-slapd-"))
        self.port = free_port()
        self.uri = f"ldap://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self) -> Slapd:
        (self.folder / "data").mkdir()
        conf = self.folder / "slapd.conf"
        conf.write_text(slapd_conf(self.folder))
        ldif = self.folder / "directory.ldif"
        ldif.write_text(directory_ldif())
        subprocess.run([str(SLAPADD), "-f", str(conf), "-l", str(ldif)], check=True, capture_output=True)
        log = (self.folder / "slapd.log").open("wb")
        # -d keeps slapd in the foreground (a child of the test run that stop() can end), logging to the file.
        self.process = subprocess.Popen(
            [str(SLAPD), "-f", str(conf), "-h", f"{self.uri}/", "-d", "stats"], stdout=log, stderr=log
        )
        self._wait_answering()
        return self

    def _wait_answering(self) -> None:
        import ldap

        deadline = time.monotonic() + 20
        while True:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"slapd exited: {(self.folder / 'slapd.log').read_text()[-2000:]}")
            try:
                self.connection().unbind_s()
                return
            except ldap.SERVER_DOWN:
                if time.monotonic() > deadline:
                    raise RuntimeError("slapd did not answer in 20 s") from None
                time.sleep(0.05)

    def connection(self):
        """A connection bound as the directory's administrator."""
        import ldap

        connection = ldap.initialize(self.uri)
        connection.set_option(ldap.OPT_NETWORK_TIMEOUT, 5)
        connection.simple_bind_s(ADMIN_DN, ADMIN_PASSWORD)
        return connection

    def delete(self, dn: str) -> None:
        connection = self.connection()
        try:
            connection.delete_s(dn)
        finally:
            connection.unbind_s()

    def modify(self, dn: str, changes: list[tuple[int, str, list[bytes] | None]]) -> None:
        connection = self.connection()
        try:
            connection.modify_s(dn, changes)
        finally:
            connection.unbind_s()

    def add_member(self, group_dn: str, uid: str) -> None:
        import ldap

        self.modify(group_dn, [(ldap.MOD_ADD, "member", [person_dn(uid).encode()])])

    def remove_member(self, group_dn: str, uid: str) -> None:
        import ldap

        self.modify(group_dn, [(ldap.MOD_DELETE, "member", [person_dn(uid).encode()])])

    def pause(self) -> None:
        """Stop answering (SIGSTOP): the directory is down, as far as any client can tell."""
        if self.process is not None:
            self.process.send_signal(19)

    def resume(self) -> None:
        if self.process is not None:
            self.process.send_signal(18)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.resume()
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.folder, ignore_errors=True)


def ldap_settings(uri: str) -> dict:
    """The portal's LDAP settings for the test directory, as an operator's EASYAI_SETTINGS_FILE would set them."""
    import ldap
    from django_auth_ldap.config import GroupOfNamesType, LDAPSearch

    return {
        "AUTH_LDAP_SERVER_URI": uri,
        "AUTH_LDAP_BIND_DN": SERVICE_DN,
        "AUTH_LDAP_BIND_PASSWORD": SERVICE_PASSWORD,
        "AUTH_LDAP_USER_SEARCH": LDAPSearch(PEOPLE, ldap.SCOPE_SUBTREE, "(uid=%(user)s)"),
        "AUTH_LDAP_USER_ATTR_MAP": {"first_name": "givenName", "last_name": "sn", "email": "mail"},
        "AUTH_LDAP_GROUP_SEARCH": LDAPSearch(GROUPS, ldap.SCOPE_SUBTREE, "(objectClass=groupOfNames)"),
        "AUTH_LDAP_GROUP_TYPE": GroupOfNamesType(),
        "AUTH_LDAP_REQUIRE_GROUP": USERS_GROUP,
        "AUTH_LDAP_DENY_GROUP": DISABLED_GROUP,
        # A directory that does not answer fails a sign-in in seconds, not minutes.
        "AUTH_LDAP_CONNECTION_OPTIONS": {ldap.OPT_NETWORK_TIMEOUT: 2, ldap.OPT_TIMEOUT: 2},
        "AUTH_LDAP_CACHE_TIMEOUT": 0,
    }
