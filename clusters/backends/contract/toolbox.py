"""The debug toolbox inside a task, the same on every backend: the task wrapper, the SSH server's start and login.

Each is a POSIX ``sh`` script run by the tools' own ``busybox sh``, so that nothing is asked of the user's image
(on Kubernetes an init container copies the tools into the pod; the local backend keeps a folder of them). A
backend puts the scripts in its tools folder (``install``) and starts every task as
``{tools}/busybox sh {tools}/easyai-task CMD ARGS...`` with the variables below.

- ``easyai-task`` runs the task's command with the static tools on ``PATH`` after the image's own, starts the
  role's ``services`` beside it (each restarted when it dies, with its log in ``$EASYAI_SERVICE_LOGS``), and, when
  the spec's ``debug`` asks for it, keeps a task whose command failed alive (a "hold") until it is released or
  its time runs out. The task's exit status is its command's; a command ended by a signal ends the wrapper by
  the same signal.
- ``easyai-sshd`` serves one SSH connection on its standard input and output, which must be a socket (Dropbear's
  inetd mode): the keys allowed come in ``EASYAI_SSH_KEYS``, one per line; Dropbear finds them in the home of a
  login made for this connection alone (``libnss_wrapper``), so nothing of the image's accounts is changed.
- ``easyai-login`` is Dropbear's forced command: it gives the session the task's ``PATH``, ``HOME`` and working
  directory back (Dropbear resets them), then runs what the client asked (``scp``, ``rsync``, VS Code's
  commands) or a login shell.

Files in ``$EASYAI_RUN_DIR`` are the whole contract with the backend:

- ``held``: ``{mode} {exit code} {until, epoch seconds}``, written once the command failed and the task holds;
- ``release``: made by the backend (the owner released the hold): the task ends at once with its command's status;
- ``services/{name}.pid`` and ``services/{name}.restarts``: a service's process and how often it was restarted;
- ``stopping``: made by the wrapper when it was asked to stop (no hold, no restart after that).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

# Where the tools are inside a pod (an emptyDir the init container fills) and the run folder there.
POD_TOOLS_DIR = "/easyai/tools"
POD_RUN_DIR = "/easyai/run"

WRAPPER = "easyai-task"
SSHD = "easyai-sshd"
LOGIN = "easyai-login"

# Variables a backend gives the wrapper (besides the task's own environment).
TOOLS = "EASYAI_TOOLS"  # the tools folder: busybox, the scripts, dropbear; its bin/ goes on PATH
RUN_DIR = "EASYAI_RUN_DIR"  # the wrapper's files (above), private to the task, readable by the backend
SERVICE_LOGS = "EASYAI_SERVICE_LOGS"  # where each service's log goes ({name}.log)
SERVICES = "EASYAI_SERVICES"  # the services' names, space-separated, in the spec's order
HOLD = "EASYAI_HOLD"  # "keep_failed" or "pause_on_failure"; empty: a failed command ends the task
HOLD_SECONDS = "EASYAI_HOLD_SECONDS"
SSH_KEYS = "EASYAI_SSH_KEYS"  # for easyai-sshd: the public keys allowed, one per line

HOLD_MODES = ("keep_failed", "pause_on_failure")


def service_variable(name: str) -> str:
    """The variable holding a service's command: ``tensorboard`` -> ``EASYAI_SERVICE_TENSORBOARD``."""
    return "EASYAI_SERVICE_" + re.sub(r"[^A-Z0-9]", "_", name.upper())


def wrapper_env(services: list[dict], hold_mode: str = "", hold_seconds: int = 0) -> dict[str, str]:
    """The wrapper's variables for a task's services (``{"name", "command", ...}``) and hold."""
    env = {SERVICES: " ".join(s["name"] for s in services)}
    for service in services:
        env[service_variable(service["name"])] = service["command"]
    if hold_mode and hold_seconds > 0:
        env[HOLD] = hold_mode
        env[HOLD_SECONDS] = str(int(hold_seconds))
    return env


def wrapped_argv(tools_dir: str, argv: list[str]) -> list[str]:
    """The task's command under the wrapper."""
    return [f"{tools_dir}/busybox", "sh", f"{tools_dir}/{WRAPPER}", *argv]


def sshd_argv(tools_dir: str) -> list[str]:
    """What serves one SSH connection on a socket on standard input and output, inside the task."""
    return [f"{tools_dir}/busybox", "sh", f"{tools_dir}/{SSHD}"]


def parse_held(text: str) -> tuple[str, int, int] | None:
    """``held``'s content: (mode, exit code, until in epoch seconds), or None when it is not (yet) whole."""
    parts = text.split()
    if len(parts) != 3 or parts[0] not in HOLD_MODES:
        return None
    try:
        return parts[0], int(parts[1]), int(parts[2])
    except ValueError:
        return None


TASK_SCRIPT = r"""# easyai-task: a task's command, its services and its hold (clusters/backends/contract/toolbox.py).
tools="${EASYAI_TOOLS:?}"
run="${EASYAI_RUN_DIR:?}"
logs="${EASYAI_SERVICE_LOGS:-$run/services}"
bb="$tools/busybox"
export PATH="${PATH:+$PATH:}$tools/bin"
"$bb" mkdir -p "$run/services" "$logs" 2>/dev/null

supervise() {  # name: run the service's command, again whenever it ends, until the task stops
    name=$1
    var=EASYAI_SERVICE_$(printf '%s' "$name" | "$bb" tr 'a-z-' 'A-Z_')
    eval "cmd=\${$var:-}"
    delay=1
    while [ ! -e "$run/stopping" ]; do
        began=$("$bb" date +%s)
        echo "easyai: starting service $name" >>"$logs/$name.log"
        # A process group of its own (setsid): a restart ends everything the last run left, a server its sh
        # started included, so none of them keeps the port.
        "$bb" setsid sh -c "$cmd" </dev/null >>"$logs/$name.log" 2>&1 &
        pid=$!
        echo $pid >"$run/services/$name.pid"
        wait $pid 2>/dev/null
        code=$?
        kill -KILL -- -$pid 2>/dev/null
        [ -e "$run/stopping" ] && break
        n=$("$bb" cat "$run/services/$name.restarts" 2>/dev/null || echo 0)
        echo $((n + 1)) >"$run/services/$name.restarts"
        # Back off while it keeps dying at once (1, 2, 4 ... 30 s); a service that ran a minute starts again at 1 s.
        if [ $(($("$bb" date +%s) - began)) -ge 60 ]; then delay=1; fi
        echo "easyai: service $name ended with status $code; restarting in ${delay}s" >>"$logs/$name.log"
        "$bb" sleep "$delay"
        delay=$((delay * 2)); [ "$delay" -gt 30 ] && delay=30
    done
}

supervisors=""
for name in ${EASYAI_SERVICES:-}; do
    supervise "$name" &
    supervisors="$supervisors $!"
done

stop_services() {
    : >"$run/stopping"
    for name in ${EASYAI_SERVICES:-}; do
        pid=$("$bb" cat "$run/services/$name.pid" 2>/dev/null) && kill -TERM -- -"$pid" "$pid" 2>/dev/null
    done
    [ -n "$supervisors" ] && kill -TERM $supervisors 2>/dev/null
}

case "$1" in
*/*) [ -e "$1" ] || { echo "easyai: cannot start '$1': No such file or directory" >&2; exit 127; } ;;
*) command -v "$1" >/dev/null 2>&1 || { echo "easyai: cannot start '$1': not found on PATH" >&2; exit 127; } ;;
esac
"$@" &
main=$!
asked=""
trap 'asked=TERM; kill -TERM $main 2>/dev/null' TERM
trap 'asked=INT; kill -INT $main 2>/dev/null' INT
while :; do
    wait $main 2>/dev/null
    status=$?
    kill -0 $main 2>/dev/null || break  # a trapped signal ends wait early; the command may still run
done

if [ "$status" -ne 0 ] && [ -z "$asked" ] && [ -n "${EASYAI_HOLD:-}" ] && [ "${EASYAI_HOLD_SECONDS:-0}" -gt 0 ]; then
    until=$(($("$bb" date +%s) + EASYAI_HOLD_SECONDS))
    echo "$EASYAI_HOLD $status $until" >"$run/held.part" && "$bb" mv "$run/held.part" "$run/held"
    echo "easyai: the command ended with status $status; this task is held for debugging until $("$bb" date -d "@$until" 2>/dev/null || echo "$until") (release it from the job page)"
    trap 'asked=TERM' TERM
    trap 'asked=INT' INT
    while [ -z "$asked" ] && [ ! -e "$run/release" ] && [ "$("$bb" date +%s)" -lt "$until" ]; do
        "$bb" sleep 1 &
        wait $!
    done
fi

stop_services
if [ "$status" -gt 128 ] && [ "$status" -lt 160 ]; then
    # Ended by a signal: end the same way, so that the backend sees the signal, not a status.
    sig=$((status - 128))
    trap - TERM INT HUP
    kill -s "$sig" $$ 2>/dev/null
fi
exit "$status"
"""

SSHD_SCRIPT = r"""# easyai-sshd: one SSH connection on standard input and output (a socket) (clusters/backends/contract/toolbox.py).
tools="${EASYAI_TOOLS:?}"
bb="$tools/busybox"
umask 077
state="${TMPDIR:-/tmp}/.easyai-ssh"
"$bb" mkdir -p "$state" || exit 1
# The task's host key: made once, kept while the task lives.
[ -s "$state/host_key" ] || "$tools/dropbearkey" -t ed25519 -f "$state/host_key" >/dev/null 2>&1 || exit 1
conn=$("$bb" mktemp -d "$state/conn.XXXXXX") || exit 1
"$bb" mkdir -p "$conn/home/.ssh"
uid=$("$bb" id -u)
gid=$("$bb" id -g)
shell=/bin/sh
[ -x "$shell" ] || shell="$tools/bin/sh"
echo "easyai:x:$uid:$gid:EasyAI task:$conn/home:$shell" >"$conn/passwd"
echo "easyai:x:$gid:" >"$conn/group"
printf '%s\n' "${EASYAI_SSH_KEYS:-}" >"$conn/home/.ssh/authorized_keys"
"$bb" chmod 755 "$conn"
# What the session gets back (Dropbear sets PATH, HOME and the directory itself).
export EASYAI_LOGIN_PATH="${PATH:+$PATH:}$tools/bin" EASYAI_LOGIN_HOME="${HOME:-/}" EASYAI_LOGIN_DIR="$PWD"
unset EASYAI_SSH_KEYS
NSS_WRAPPER_PASSWD="$conn/passwd" NSS_WRAPPER_GROUP="$conn/group" \
    "$tools/dropbear" -i -s -e -m -r "$state/host_key" -c "$tools/$LOGIN_NAME"
status=$?
"$bb" rm -rf "$conn"
exit $status
""".replace("$LOGIN_NAME", LOGIN)

LOGIN_SCRIPT = r"""# easyai-login: Dropbear's forced command (clusters/backends/contract/toolbox.py).
export PATH="${EASYAI_LOGIN_PATH:-$PATH}" HOME="${EASYAI_LOGIN_HOME:-$HOME}"
unset EASYAI_LOGIN_PATH EASYAI_LOGIN_HOME LD_PRELOAD NSS_WRAPPER_PASSWD NSS_WRAPPER_GROUP
cd "${EASYAI_LOGIN_DIR:-$HOME}" 2>/dev/null || cd /
unset EASYAI_LOGIN_DIR
if [ -n "${SSH_ORIGINAL_COMMAND:-}" ]; then
    exec /bin/sh -c "$SSH_ORIGINAL_COMMAND"
fi
if command -v bash >/dev/null 2>&1; then exec bash -l; fi
exec /bin/sh -l
"""

SCRIPTS = {WRAPPER: TASK_SCRIPT, SSHD: SSHD_SCRIPT, LOGIN: LOGIN_SCRIPT}


def install_scripts(tools_dir: Path) -> None:
    """Write the three scripts into a tools folder (readable and runnable by any task's user)."""
    tools_dir.mkdir(parents=True, exist_ok=True)
    for name, text in SCRIPTS.items():
        path = tools_dir / name
        if not path.exists() or path.read_text() != "#!/bin/sh\n" + text:
            part = path.with_name(f".{name}.{os.getpid()}")
            part.write_text("#!/bin/sh\n" + text)
            part.chmod(0o755)
            part.replace(path)
