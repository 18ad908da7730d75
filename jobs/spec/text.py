"""Text I/O: YAML and JSON in (strict: duplicate keys, depth, lone surrogates), YAML out."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import yaml

from jobs.spec.vocabulary import (
    _SURROGATE,
    FIELDS,
    MAX_DEPTH,
    MAX_SPEC_CHARS,
    ROLE_FIELDS,
    SHELL,
    SpecError,
    _absent,
    _join,
    _type_name,
)

# --- text ----------------------------------------------------------------------------------


_BaseLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_BaseLoader):  # type: ignore[misc, valid-type]
    """A safe loader that refuses duplicate keys: with two ``env:`` blocks YAML would silently keep the last."""

    def construct_mapping(self, node: yaml.Node, deep: bool = False) -> dict:
        if isinstance(node, yaml.MappingNode):
            seen: set[Any] = set()
            for key_node, _ in node.value:
                if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                    key = self.construct_object(key_node)
                    if key in seen:
                        raise yaml.constructor.ConstructorError(
                            "while reading a mapping",
                            node.start_mark,
                            f"found the key {key!r} twice",
                            key_node.start_mark,
                        )
                    seen.add(key)
        return super().construct_mapping(node, deep=deep)


class _DuplicateKeyError(ValueError):
    pass


def _json_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKeyError(f"found the key {key!r} twice")
        result[key] = value
    return result


def _json_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def strict_json_loads(text: str) -> Any:
    """JSON as the standard says and Python's json does not insist on: a key given twice and NaN/Infinity are
    ValueErrors (json.JSONDecodeError is one too). The spec's reader and the API's JSON parser both use it."""
    return json.loads(text, object_pairs_hook=_json_object, parse_constant=_json_constant)


def document_problem(data: Any, *, max_depth: int = MAX_DEPTH) -> tuple[str, str] | None:
    """(path, problem) for the first string that UTF-8 cannot carry (a lone surrogate such as "\\ud800") or
    nesting deeper than max_depth; None when the document is fine. Iterative, and a node shared by YAML
    aliases is walked again only from a deeper place, so neither a deep document nor a YAML bomb costs a
    recursion or an expansion (a self-referencing alias counts as too deep)."""
    deepest: dict[int, int] = {}  # container id -> the deepest level it was walked from
    stack: list[tuple[Any, str, int]] = [(data, "", 1)]
    while stack:
        value, path, depth = stack.pop()
        if isinstance(value, str):
            if _SURROGATE.search(value):
                return path or "spec", "contains a character that is not Unicode text (a lone surrogate)"
            continue
        if not isinstance(value, dict | list):
            continue
        if depth > max_depth:
            return path or "spec", f"is nested too deeply: at most {max_depth} levels"
        if deepest.get(id(value), 0) >= depth:
            continue
        deepest[id(value)] = depth
        if isinstance(value, dict):
            for key, item in value.items():
                if isinstance(key, str) and _SURROGATE.search(key):
                    return path or "spec", "has a key that is not Unicode text (a lone surrogate)"
                stack.append((item, _join(path, key), depth + 1))
        else:
            stack.extend((item, _join(path, i), depth + 1) for i, item in enumerate(value))
    return None


def parse(text: str | bytes, content_type: str | None = None) -> dict:
    """A spec document (YAML, or JSON when the content type says so) as a mapping; SpecError when unreadable."""
    media = (content_type or "").split(";")[0].strip().lower()
    if media == "application/json" or media.endswith("+json"):
        as_json = True
    elif media in ("", "application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml", "text/plain"):
        as_json = False
    else:
        raise SpecError({"spec": [f"unsupported content type {media!r}: send application/json or application/yaml"]})
    if isinstance(text, bytes | bytearray):
        if len(text) > MAX_SPEC_CHARS * 4:
            raise SpecError({"spec": ["is too large"]})
        try:
            text = bytes(text).decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise SpecError({"spec": [f"is not UTF-8 text (byte {exc.start})"]})
    if not isinstance(text, str):
        raise SpecError({"spec": [f"must be text, not {_type_name(text)}"]})
    text = text.removeprefix("\ufeff")
    if len(text) > MAX_SPEC_CHARS:
        raise SpecError({"spec": [f"is too large: at most {MAX_SPEC_CHARS} characters"]})
    try:
        # YAML through a safe loader: no Python objects.
        data = strict_json_loads(text) if as_json else yaml.load(text, Loader=_Loader)
    except json.JSONDecodeError as exc:
        raise SpecError({"spec": [f"is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"]})
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        # "expected a single document ..., but found another document"; "while parsing ..." contexts only add noise.
        context = exc.context if exc.context and not exc.context.startswith("while") else ""
        problem = ", ".join(filter(None, (context, exc.problem)))
        raise SpecError({"spec": [f"is not valid YAML: {problem}{where}"]})
    except RecursionError:
        raise SpecError({"spec": ["is nested too deeply"]})
    # Also what json and yaml raise from their converters: a 5,000-digit number, a 13th month.
    except (yaml.YAMLError, ValueError, TypeError, OverflowError) as exc:
        raise SpecError({"spec": [f"is not valid {'JSON' if as_json else 'YAML'}: {str(exc)[:200]}"]})
    problem = document_problem(data)
    if problem is not None:
        raise SpecError({problem[0]: [problem[1]]})
    if data is None or data == "":
        raise SpecError({"spec": ["is empty"]})
    if not isinstance(data, dict):
        raise SpecError(
            {"spec": [f"must be a mapping of fields (name, framework, roles, ...), not {_type_name(data)}"]}
        )
    return data


class _Dumper(yaml.SafeDumper):
    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        # Indent list items under their key, as people write YAML by hand.
        return super().increase_indent(flow, False)


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None  # scripts read as written; the emitter falls back to quotes if it must
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)


def _yaml_command(command: Any) -> Any:
    """``["/bin/sh", "-c", text]`` is shown as the text the user wrote; it reads back the same."""
    if isinstance(command, list) and len(command) == 3 and tuple(command[:2]) == SHELL and isinstance(command[2], str):
        return command[2]
    return command


def to_yaml(spec: dict) -> str:
    """The spec as block-style YAML in a stable human order, leaving out what is empty or default."""
    if not isinstance(spec, Mapping):
        return yaml.dump(spec, Dumper=_Dumper, sort_keys=False, default_flow_style=False, allow_unicode=True)
    out: dict[str, Any] = {}
    for field in (*FIELDS, *(key for key in spec if key not in FIELDS)):
        if field not in spec:
            continue
        value = spec[field]
        if field == "command":
            value = _yaml_command(value)
        elif field == "roles" and isinstance(value, Mapping):
            value = {name: _yaml_role(role) for name, role in value.items()}
        elif field == "scheduling" and isinstance(value, Mapping):
            value = {
                key: [_without_empty(t) for t in item] if key == "tolerations" and isinstance(item, list) else item
                for key, item in value.items()
                if not (_absent(item) or (key == "gang" and item is True) or (key == "oversell" and item == 1))
            }
        elif field == "max_retries" and value == 0:
            continue
        if field == "priority" or not _absent(value):
            out[field] = value
    return yaml.dump(out, Dumper=_Dumper, sort_keys=False, default_flow_style=False, allow_unicode=True, width=100)


def _without_empty(item: Any) -> Any:
    return {key: value for key, value in item.items() if not _absent(value)} if isinstance(item, Mapping) else item


def _yaml_role(role: Any) -> Any:
    if not isinstance(role, Mapping):
        return role
    ordered = {key: role[key] for key in (*ROLE_FIELDS, *role) if key in role}
    return {
        key: _yaml_command(item) if key == "command" else item
        for key, item in ordered.items()
        if key not in ("image", "command", "env") or not _absent(item)
    }
