"""login, whoami, team list / team use."""

from __future__ import annotations

import argparse
import getpass
import socket
import sys

from easyai_cli import config as config_module
from easyai_cli import sso
from easyai_cli.client import CLIError, Portal, RefusedError
from easyai_cli.context import Context
from easyai_cli.output import dump, table


def login(ctx: Context, args: argparse.Namespace) -> int:
    url = (args.url or ctx.url).rstrip("/")
    if getattr(args, "sso", False):
        if args.username or args.password_stdin:
            raise CLIError("--sso signs in through the browser: give neither --username nor --password-stdin", code=2)
        name = f"easyai login --sso on {socket.gethostname()}"[:100]
        body = sso.sso_token(url, name=name)
        return _save_login(ctx, url, str(body.get("username") or ""), body["token"])
    interactive = sys.stdin.isatty()
    username = args.username or ""
    if not username:
        if not interactive:
            raise CLIError("no terminal to ask for your username: give --username", code=2)
        default = ctx.config.username
        username = input(f"Username{f' [{default}]' if default else ''}: ").strip() or default
        if not username:
            raise CLIError("a username is required", code=2)
    if args.password_stdin:
        # One line, as `docker login --password-stdin` reads it; the trailing newline is not part of the password.
        password = sys.stdin.readline().rstrip("\r\n")
    elif interactive:
        password = getpass.getpass(f"Password for {username} at {url}: ")
    else:
        raise CLIError("no terminal to ask for the password: pipe it in with --password-stdin", code=2)
    if not password:
        raise CLIError("a password is required", code=2)
    try:
        # Each login makes a token of its own, named for this machine so the profile page tells them apart.
        name = f"easyai login on {socket.gethostname()}"[:100]
        body = Portal(url).post("auth/token/", {"username": username, "password": password, "name": name})
    except RefusedError as exc:
        raise CLIError(*(f"login refused: {line}" for line in exc.lines)) from None
    token = (body or {}).get("token") if isinstance(body, dict) else None
    if not token:
        raise CLIError(f"the portal at {url} answered without a token: is this the address of an EasyAI portal?")
    return _save_login(ctx, url, username, token)


def _save_login(ctx: Context, url: str, username: str, token: str) -> int:
    config = ctx.config
    if config.url.rstrip("/") != url or config.username != username:
        config.team = ""  # a team chosen on another portal or as another user means nothing here
    config.url, config.username, config.token = url, username, token
    path = config_module.save(config)
    me = Portal(url, token).get("me/")
    team = config.team or me.get("current_team") or "(none)"
    # The portal keeps only the token's hash: this config holds the one copy of the key.
    print(f"Logged in to {url} as {username}; team: {team}. Token saved in {path}.")
    return 0


def whoami(ctx: Context, args: argparse.Namespace) -> int:
    me = ctx.me
    team = ctx.team()
    if args.output:
        dump({**me, "url": ctx.url, "team": team or None}, args.output)
        return 0
    name = " ".join(part for part in (me.get("first_name"), me.get("last_name")) if part)
    print(f"{me['username']}{f' ({name})' if name else ''}{' [platform admin]' if me.get('is_staff') else ''}")
    print(f"portal:  {ctx.url}")
    print(f"team:    {team or '(none)'}")
    teams = ", ".join(f"{t['slug']} ({t['role']})" for t in me.get("teams", []))
    print(f"teams:   {teams or '(none)'}")
    return 0


def team_list(ctx: Context, args: argparse.Namespace) -> int:
    teams = list(ctx.portal().pages("teams/"))
    if args.output in ("json", "yaml"):
        dump(teams, args.output)
        return 0
    current = ctx.team()
    rows = [
        ("*" if t["slug"] == current else "", t["slug"], t["name"], t.get("role") or "-", t.get("member_count"))
        for t in teams
    ]
    table(["CURRENT", "SLUG", "NAME", "ROLE", "MEMBERS"], rows, dash=False)
    return 0


def team_use(ctx: Context, args: argparse.Namespace) -> int:
    portal = ctx.portal()
    team = portal.get(f"teams/{args.slug}/", what=f"team {args.slug}")
    ctx.config.team = team["slug"]
    config_module.save(ctx.config)
    print(f"Now working in team {team['slug']} ({team['name']}).")
    return 0
