"""SSH into a task: your public keys on the portal, the ProxyCommand that tunnels a connection through the
portal's SSH websocket, ``easyai ssh`` and the ``Host j-*`` block of ``easyai ssh-config``.

No node or pod port is opened: ``ssh`` runs ``easyai ssh-proxy j-….TASK`` as its ProxyCommand, which carries the
connection's raw bytes in the binary frames of ``/ws/jobs/{id}/tasks/{task}/ssh/``. The task's SSH server
accepts only the keys of the user whose token opened the socket.
"""

from __future__ import annotations

import argparse
import os
import re
import select
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from websockets.exceptions import ConnectionClosed

from easyai_cli import config as config_module
from easyai_cli.client import CLIError, Portal
from easyai_cli.context import Context
from easyai_cli.jobs import JOB_ID, resolve_job
from easyai_cli.logs import pick_task
from easyai_cli.output import dump, local_time, table
from easyai_cli.ws import closed_message, control, open_socket

USER = "easyai"  # the login a task's SSH server makes for each connection
HOST = re.compile(r"(?P<job>j-[a-z0-9]{8})(?:[./](?P<task>[A-Za-z0-9][A-Za-z0-9_-]*))?")
BEGIN = "# >>> easyai ssh: written by `easyai ssh-config --write`; what is between these lines is replaced"
END = "# <<< easyai ssh"
CHUNK = 64 * 1024
KNOWN_HOSTS = "known_hosts"


def register(sub: argparse._SubParsersAction, command: Callable[..., argparse.ArgumentParser]) -> None:
    """The SSH commands, added to the ``easyai`` parser (``command`` is main's ``_command``)."""
    p = command(
        sub,
        "ssh-key",
        _ssh_key_usage,
        "keep your SSH public keys on the portal: a task's SSH server accepts these from you",
        "easyai ssh-key add ~/.ssh/id_ed25519.pub --name laptop\neasyai ssh-key list\neasyai ssh-key remove laptop",
    )
    key_sub = p.add_subparsers(title="ssh-key commands", metavar="COMMAND")
    q = command(
        key_sub,
        "add",
        key_add,
        "add a public key (the .pub file; - reads standard input)",
        "easyai ssh-key add ~/.ssh/id_ed25519.pub\ncat key.pub | easyai ssh-key add - --name ci",
    )
    q.add_argument("file", metavar="FILE", help="an OpenSSH public key file, e.g. ~/.ssh/id_ed25519.pub")
    q.add_argument("--name", default="", help="what the key is (default: the key's comment)")
    q = command(key_sub, "list", key_list, "your public keys", "easyai ssh-key list -o json")
    q.add_argument("-o", "--output", choices=("json", "yaml"))
    q = command(
        key_sub,
        "remove",
        key_remove,
        "remove one of your keys, by id, name or fingerprint",
        "easyai ssh-key remove 3\neasyai ssh-key remove laptop",
    )
    q.add_argument("key", metavar="ID|NAME", help="the key's id, name or SHA256 fingerprint")

    p = command(
        sub,
        "ssh",
        ssh,
        "open an SSH session in a running task (through the portal; no port is exposed)",
        "easyai ssh j-3k9x2m4q                   # the job's first task, e.g. master-0\n"
        "easyai ssh j-3k9x2m4q/worker-1 -- nvidia-smi\n"
        "easyai ssh j-3k9x2m4q.master-0 -i ~/.ssh/work_ed25519",
        description="Run the system's ssh into a task of a running (or held) job, through the portal's SSH tunnel.\n\n"
        "Add your public key first (easyai ssh-key add ~/.ssh/id_ed25519.pub). For plain ssh, scp, rsync and VS "
        "Code's Remote-SSH with names like j-3k9x2m4q.master-0, run easyai ssh-config --write once.",
    )
    p.add_argument("target", metavar="JOB[/TASK]", help="a job id or name, optionally /TASK or .TASK (e.g. /worker-1)")
    p.add_argument("-i", "--identity", metavar="FILE", help="the private key ssh uses (ssh -i)")
    p.add_argument(
        "-o", "--ssh-option", action="append", default=[], metavar="OPTION", help="an option for ssh (ssh -o), again"
    )
    p.add_argument("command", nargs=argparse.REMAINDER, metavar="-- CMD", help="a command to run instead of a shell")

    p = command(
        sub,
        "ssh-proxy",
        proxy,
        "relay an SSH connection to a task through the portal (ssh's ProxyCommand)",
        "easyai ssh-proxy j-3k9x2m4q.master-0   # as ssh runs it: "
        "ssh -o 'ProxyCommand=easyai ssh-proxy %h' easyai@j-3k9x2m4q.master-0",
        description="ssh's ProxyCommand: carries standard input and output to a task's SSH server through the "
        "portal's websocket. HOST is j-xxxxxxxx.TASK (or j-xxxxxxxx: the job's first task). easyai ssh-config "
        "writes the Host block that uses it.",
    )
    p.add_argument("host", metavar="HOST", help="j-xxxxxxxx.TASK, as ssh's %%h gives it")

    p = command(
        sub,
        "ssh-config",
        ssh_config,
        "print (or --write into ~/.ssh/config) the Host block for ssh j-….TASK",
        "easyai ssh-config\neasyai ssh-config --write\nssh j-3k9x2m4q.master-0",
        description="The Host j-* block that makes plain ssh, scp, rsync and VS Code's Remote-SSH reach tasks "
        "through the portal: ProxyCommand easyai ssh-proxy %h, User easyai, the tasks' host keys in a known_hosts "
        "file of the CLI's own. --write puts it into ~/.ssh/config between marker lines (replacing an earlier one).",
    )
    p.add_argument("--write", action="store_true", help="write the block into the ssh config file")
    p.add_argument("--file", metavar="PATH", help="the ssh config file to write (default: ~/.ssh/config)", default=None)


def _ssh_key_usage(ctx: Context, args: argparse.Namespace) -> int:
    raise CLIError(
        "say what to do with SSH keys: easyai ssh-key add | list | remove (see easyai ssh-key --help)", code=2
    )


# --- keys ----------------------------------------------------------------------------------------


def key_add(ctx: Context, args: argparse.Namespace) -> int:
    if args.file == "-":
        text = sys.stdin.read()
    else:
        path = Path(args.file).expanduser()
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise CLIError(f"{args.file}: not a text file; give an OpenSSH public key file (.pub)") from None
        if "PRIVATE KEY" in text and path.with_name(path.name + ".pub").is_file():
            raise CLIError(f"{args.file} is a private key, which never leaves this machine: give {args.file}.pub")
    if "PRIVATE KEY" in text or text.startswith("PuTTY-User-Key-File-"):
        # Refused here, before anything is sent: a private key stays on this machine.
        raise CLIError(f"{args.file} is a private key, which never leaves this machine: give its .pub file")
    body = ctx.portal().post("ssh-keys/", {"public_key": text, "name": args.name})
    print(f"Added SSH key {body['name']} ({body['fingerprint']}), id {body['id']}.")
    return 0


def _keys(portal: Portal) -> list[dict[str, Any]]:
    return list(portal.pages("ssh-keys/"))


def key_list(ctx: Context, args: argparse.Namespace) -> int:
    keys = _keys(ctx.portal())
    if args.output:
        dump(keys, args.output)
        return 0
    table(
        ["ID", "NAME", "TYPE", "FINGERPRINT", "ADDED"],
        [(k["id"], k["name"], k["type"], k["fingerprint"], local_time(k["created_at"])) for k in keys],
    )
    return 0


def key_remove(ctx: Context, args: argparse.Namespace) -> int:
    portal = ctx.portal()
    wanted = args.key.strip()
    keys = _keys(portal)
    found = [k for k in keys if str(k["id"]) == wanted or k["name"] == wanted or k["fingerprint"] == wanted]
    if not found:
        names = ", ".join(f"{k['id']} ({k['name']})" for k in keys) or "none"
        raise CLIError(f"no SSH key {wanted!r} of yours; your keys: {names}")
    key = found[0]
    portal.json("DELETE", f"ssh-keys/{key['id']}/", what=f"SSH key {wanted}")
    print(f"Removed SSH key {key['name']} ({key['fingerprint']}).")
    return 0


# --- the tunnel ----------------------------------------------------------------------------------


def parse_host(text: str) -> tuple[str, str | None]:
    """(job id, task or None) from ``j-xxxxxxxx.TASK``, ``j-xxxxxxxx/TASK`` or ``j-xxxxxxxx``."""
    found = HOST.fullmatch(text.strip())
    if not found:
        raise CLIError(
            f"{text!r} is not a task's SSH name: write it as j-xxxxxxxx.TASK (e.g. j-3k9x2m4q.master-0)", code=2
        )
    return found["job"], found["task"]


def proxy(ctx: Context, args: argparse.Namespace) -> int:
    job_id, task = parse_host(args.host)
    portal = ctx.portal()
    if task is None:
        task, _job = pick_task(portal, job_id, None)
    what = f"job {job_id} task {task}"
    socket = open_socket(portal, f"ws/jobs/{quote(job_id, safe='')}/tasks/{quote(task, safe='')}/ssh/", what=what)
    with socket:
        return _relay(socket, what)


def _relay(socket: Any, what: str) -> int:
    """Standard input to binary frames, binary frames to standard output, until either side ends."""
    stdin, stdout = sys.stdin.fileno(), sys.stdout.fileno()
    done = threading.Event()
    problem: list[str] = []

    def receive() -> None:
        refusal = ""
        try:
            for message in socket:
                if isinstance(message, bytes):
                    view = memoryview(message)
                    while view:
                        view = view[os.write(stdout, view) :]
                    continue
                frame = control(message) or {}
                if frame.get("type") == "error":
                    refusal = str(frame.get("reason") or "refused")
                elif frame.get("type") == "exit":
                    break
        except ConnectionClosed as exc:
            if refusal:
                problem.append(f"{what}: {refusal}")
            elif exc.rcvd is None or exc.rcvd.code != 1000:
                problem.append(closed_message(exc, what))
        except OSError:
            pass  # ssh went away: nothing more to write to
        finally:
            done.set()

    reader = threading.Thread(target=receive, daemon=True)
    reader.start()
    try:
        while not done.is_set():
            ready, _, _ = select.select([stdin], [], [], 0.2)
            if not ready:
                continue
            data = os.read(stdin, CHUNK)
            if not data:
                break  # ssh closed our input: the connection is over
            try:
                socket.send(data)
            except ConnectionClosed:
                break
    finally:
        socket.close()
        reader.join(5)
    if problem:
        raise CLIError(f"easyai ssh-proxy: {problem[0]}")
    return 0


# --- ssh and its config ---------------------------------------------------------------------------


def easyai_command() -> list[str]:
    """How to run this CLI again from ssh's ProxyCommand: the installed ``easyai`` by its absolute path."""
    own = sys.argv[0] if sys.argv else ""
    if own and Path(own).name == "easyai" and os.access(own, os.X_OK):
        return [str(Path(own).resolve())]
    found = shutil.which("easyai")
    if found:
        return [str(Path(found).resolve())]
    return [sys.executable, "-m", "easyai_cli.main"]


def known_hosts_path() -> Path:
    return config_module.config_dir() / KNOWN_HOSTS


def proxy_command() -> str:
    """ssh's ProxyCommand for a task (``%h`` is the name ssh was given, j-….TASK)."""
    words = [shlex.quote(word) for word in easyai_command()]
    override = os.environ.get("EASYAI_CONFIG_DIR")
    if override:
        # The config (portal, token) this CLI uses now, also for an ssh started elsewhere (VS Code).
        words = ["env", shlex.quote(f"EASYAI_CONFIG_DIR={Path(override).expanduser().resolve()}"), *words]
    return " ".join([*words, "ssh-proxy", "%h"])


def host_block() -> str:
    known = known_hosts_path()
    return "\n".join(
        [
            BEGIN,
            "Host j-*",
            f"    ProxyCommand {proxy_command()}",
            f"    User {USER}",
            f"    UserKnownHostsFile {_config_value(str(known))}",
            "    StrictHostKeyChecking accept-new",
            "    ServerAliveInterval 30",
            END,
            "",
        ]
    )


def _config_value(text: str) -> str:
    return f'"{text}"' if any(c.isspace() for c in text) else text


def ssh_config(ctx: Context, args: argparse.Namespace) -> int:
    block = host_block()
    if not args.write:
        sys.stdout.write(block)
        return 0
    path = Path(args.file).expanduser() if args.file else Path.home() / ".ssh" / "config"
    try:
        current = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        current = ""
    start, end = current.find(BEGIN), current.find(END)
    if start >= 0 and end > start:
        after = current[end + len(END) :]
        text = current[:start] + block + after.removeprefix("\n")
    else:
        # First in the file: ssh takes the first value it finds for an option, so these win for j-* names.
        text = block + ("\n" + current if current else "")
    if path.parent == Path.home() / ".ssh":
        path.parent.mkdir(mode=0o700, exist_ok=True)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o600
    fd, part = tempfile.mkstemp(prefix=".config-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(part, mode)
        os.replace(part, path)
    except BaseException:
        try:
            os.unlink(part)
        except FileNotFoundError:
            pass
        raise
    known_hosts_path().parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    print(f"Wrote the Host j-* block into {path}; connect with: ssh j-xxxxxxxx.TASK (e.g. j-3k9x2m4q.master-0)")
    return 0


def _after_target(args: argparse.Namespace) -> tuple[str | None, list[str], list[str]]:
    """-i and -o given after JOB (argparse leaves them in the command), then the command after ``--``."""
    identity, options = args.identity, list(args.ssh_option)
    rest = list(args.command or [])
    while rest:
        word = rest[0]
        if word == "--":
            return identity, options, rest[1:]
        if word in ("-i", "--identity", "-o", "--ssh-option"):
            if len(rest) < 2:
                raise CLIError(f"easyai ssh: {word} needs a value", code=2)
            if word in ("-i", "--identity"):
                identity = rest[1]
            else:
                options.append(rest[1])
            rest = rest[2:]
        elif word.startswith("-"):
            raise CLIError(f"easyai ssh: unknown option {word}; put the command after --", code=2)
        else:
            break
    return identity, options, rest


def ssh(ctx: Context, args: argparse.Namespace) -> int:
    ssh_binary = shutil.which("ssh")
    if ssh_binary is None:
        raise CLIError("ssh is not installed here: install the OpenSSH client (Debian: openssh-client)")
    target = args.target.strip()
    job_ref, task = target, None
    found = HOST.fullmatch(target)
    if found:
        job_ref, task = found["job"], found["task"]
    elif "/" in target:
        job_ref, task = target.split("/", 1)
    portal = ctx.portal()
    job_id = resolve_job(ctx, portal, job_ref) if not JOB_ID.fullmatch(job_ref) else job_ref
    task, _job = pick_task(portal, job_id, task or None)
    identity, options, command = _after_target(args)
    known = known_hosts_path()
    known.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    argv = [
        ssh_binary,
        "-o",
        f"ProxyCommand={proxy_command()}",
        "-o",
        f"UserKnownHostsFile={known}",
        "-o",
        "StrictHostKeyChecking=accept-new",
        "-l",
        USER,
    ]
    if identity:
        argv += ["-i", str(Path(identity).expanduser()), "-o", "IdentitiesOnly=yes"]
    for option in options:
        argv += ["-o", option]
    argv += ["--", f"{job_id}.{task}", *command] if command else [f"{job_id}.{task}"]
    sys.stdout.flush()
    sys.stderr.flush()
    return subprocess.call(argv)
