"""Directory group names compared as the directory compares them (pure functions, no database)."""

from __future__ import annotations

from collections.abc import Iterable


def normalize(directory: str, group: str) -> str:
    """An LDAP DN is case-insensitive and ignores spaces around its separators; an OIDC claim value is exact."""
    group = group.strip()
    if directory != "ldap":
        return group
    parts = []
    for rdn in group.split(","):
        attribute, _eq, value = rdn.partition("=")
        parts.append(f"{attribute.strip().lower()}={value.strip().lower()}")
    return ",".join(parts)


def check_dn(group: str) -> bool:
    """Whether a text looks like a DN: attribute=value pairs separated by commas."""
    rdns = [rdn for rdn in group.split(",")]
    return bool(group.strip()) and all(
        "=" in rdn and rdn.partition("=")[0].strip() and rdn.partition("=")[2].strip() for rdn in rdns
    )


def wanted_roles(mappings: Iterable[tuple[str, int, str]], groups: Iterable[str]) -> dict[int, str]:
    """Team id → role the groups grant: ``mappings`` are (normalised group, team id, role); admin beats member."""
    have = set(groups)
    wanted: dict[int, str] = {}
    for group, team_id, role in mappings:
        if group in have and wanted.get(team_id) != "admin":
            wanted[team_id] = role
    return wanted
