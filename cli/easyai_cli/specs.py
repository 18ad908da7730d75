"""Job specs the arena way: flags become the portal's spec document; the portal validates it.

The mapping from flags to roles (the portal's job spec, see the project's jobs/spec.py):

- ``pytorch``: ``--workers N`` counts every task, the master included (as
  ``arena submit pytorchjob --workers``): one ``master`` and ``N-1`` ``worker``
  tasks; ``--workers 1`` is a single master.
- ``tensorflow``: ``--workers N`` ``worker`` tasks, plus ``--ps M`` parameter
  servers and, with ``--chief``, one ``chief``.
- ``batch``: one role ``worker`` with ``N`` tasks.

``--cpu``, ``--memory`` and ``--gpus`` are per task, for every role; the
command runs under ``/bin/sh -c`` in every task.
"""

from __future__ import annotations

import json
from typing import Any

import yaml

FRAMEWORKS = ("pytorch", "tensorflow", "batch")


def parse_env(items: list[str] | None) -> dict[str, str]:
    """``K=V`` pairs; ValueError naming the first one without '='."""
    env: dict[str, str] = {}
    for item in items or []:
        key, equals, value = item.partition("=")
        if not equals or not key:
            raise ValueError(f"--env {item!r}: write it as NAME=value")
        env[key] = value
    return env


def build(
    framework: str,
    *,
    name: str,
    command: str,
    workers: int = 1,
    image: str = "",
    cpu: str = "",
    memory: str = "",
    gpus: int = 0,
    ps: int = 0,
    chief: bool = False,
    team: str = "",
    experiment: str = "",
    cluster: str = "",
    priority: str = "",
    env: dict[str, str] | None = None,
    working_dir: str = "",
    timeout: str = "",
    max_retries: int | None = None,
) -> dict[str, Any]:
    """The spec document for one arena-style submit; empty options are left out so the portal's defaults apply."""
    task: dict[str, Any] = {}
    if cpu:
        task["cpu"] = cpu
    if memory:
        task["memory"] = memory
    if gpus:
        task["gpu"] = gpus
    roles: dict[str, dict[str, Any]] = {}
    if framework == "pytorch":
        roles["master"] = {"replicas": 1, **task}
        if workers > 1:
            roles["worker"] = {"replicas": workers - 1, **task}
    elif framework == "tensorflow":
        if chief:
            roles["chief"] = {"replicas": 1, **task}
        if ps:
            roles["ps"] = {"replicas": ps, **task}
        roles["worker"] = {"replicas": workers, **task}
    elif framework == "batch":
        roles["worker"] = {"replicas": workers, **task}
    else:
        raise ValueError(f"unknown framework {framework!r}; one of {', '.join(FRAMEWORKS)}")
    spec: dict[str, Any] = {"name": name, "framework": framework}
    optional = {
        "team": team,
        "experiment": experiment,
        "cluster": cluster,
        "image": image,
        "command": command,
        "working_dir": working_dir,
        "env": env or {},
        "roles": roles,
        "priority": priority,
        "timeout": timeout,
    }
    spec.update({key: value for key, value in optional.items() if value})
    if max_retries is not None:
        spec["max_retries"] = max_retries
    return spec


def with_team(text: str, team: str) -> str:
    """The YAML text with ``team:`` added when the document names none; the text itself otherwise.

    The text is sent as written (the portal reports problems by its lines and
    refuses duplicate keys, which a local re-dump would hide), so the team goes
    in as one more line, and only where that provably means the same document
    plus the team; anything unusual (flow style, directives, a parse error) is
    sent untouched and the portal uses your current team there.
    """
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    if not isinstance(data, dict) or data.get("team"):
        return text
    body = text.removeprefix("\ufeff")
    candidate = f"team: {team}\n{body}"
    try:
        if yaml.safe_load(candidate) == {**data, "team": team}:
            return candidate
    except yaml.YAMLError:
        pass
    return text


def with_team_json(text: str, team: str) -> str:
    """A JSON spec with ``team`` added when it names none; the text itself when it is not a JSON object."""
    try:
        data = json.loads(text)
    except ValueError:
        return text
    if not isinstance(data, dict) or data.get("team"):
        return text
    return json.dumps(
        {"team": team, **{key: value for key, value in data.items() if key != "team"}}, ensure_ascii=False
    )
