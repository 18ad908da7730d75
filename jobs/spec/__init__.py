"""The job spec: one document (YAML or JSON) for the web form, the API and the CLI.

Pure: no database. ``parse`` reads text, ``validate`` checks everything at once
and returns the normalized spec, which is what gets stored and what every
other module reads. In a normalized spec every field is present:

- references the caller resolves (``team``, ``experiment``, ``cluster``,
  ``pre_job``) and ``timeout`` are None when not given;
- ``image`` and ``working_dir`` are "" when not given, ``command`` is [] (only
  when every role has its own), ``env``/``ports`` are {} and ``volumes`` [];
- every role has ``replicas``, ``cpu``, ``memory``, ``gpu``, ``command``,
  ``image`` and ``env``; a string command becomes ``["/bin/sh", "-c", text]``;
- quantities stay as the user wrote them (numbers become their text).

A normalized spec validates to itself, so a stored spec can be re-run as is.
In input, null or an empty value of an optional field means "not given".

A package along its seams: ``vocabulary`` (frameworks, roles, priorities, fields, limits, SpecError),
``validate`` (validation and what the rest of the platform reads from a normalized spec) and ``text``
(YAML and JSON in, YAML out). The submit page's form mapping is in ``jobs/forms.py``.
"""

from __future__ import annotations

from jobs.spec.text import _yaml_command, document_problem, parse, to_yaml
from jobs.spec.validate import role_resources, totals, validate
from jobs.spec.vocabulary import (
    ALL_FRAMEWORK_ROLES,
    DEFAULT_CPU,
    DEFAULT_MEMORY,
    FIELDS,
    FRAMEWORK_ROLES,
    INTERNAL_FRAMEWORK_ROLES,
    LEADER_ROLE,
    MAX_DEPTH,
    MAX_ENV,
    MAX_ENV_ENTRY,
    MAX_RETRIES,
    MAX_SPEC_CHARS,
    MAX_TASKS,
    PRIORITIES,
    REQUIRED_ROLES,
    RESERVED_ENV,
    ROLE_FIELDS,
    SCHEDULING_FIELDS,
    SHELL,
    SINGLE_ROLES,
    TOLERATION_EFFECTS,
    TOLERATION_FIELDS,
    TOLERATION_OPERATORS,
    Framework,
    Priority,
    SpecError,
)

__all__ = [
    "ALL_FRAMEWORK_ROLES",
    "DEFAULT_CPU",
    "DEFAULT_MEMORY",
    "FIELDS",
    "FRAMEWORK_ROLES",
    "INTERNAL_FRAMEWORK_ROLES",
    "LEADER_ROLE",
    "MAX_DEPTH",
    "MAX_ENV",
    "MAX_ENV_ENTRY",
    "MAX_RETRIES",
    "MAX_SPEC_CHARS",
    "MAX_TASKS",
    "PRIORITIES",
    "REQUIRED_ROLES",
    "RESERVED_ENV",
    "ROLE_FIELDS",
    "SCHEDULING_FIELDS",
    "SHELL",
    "SINGLE_ROLES",
    "TOLERATION_EFFECTS",
    "TOLERATION_FIELDS",
    "TOLERATION_OPERATORS",
    "Framework",
    "Priority",
    "SpecError",
    "_yaml_command",
    "document_problem",
    "parse",
    "role_resources",
    "to_yaml",
    "totals",
    "validate",
]
