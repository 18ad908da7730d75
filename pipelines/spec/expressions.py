"""A step's ``depends`` and ``when``: a small tokenizer and recursive-descent parser, evaluation and the Argo
translations. Pure, and nothing here ever calls eval.

depends := or;  or := and ('||' and)*;  and := not ('&&' not)*;  not := '!' not | '(' or ')' | NAME['.'STATUS]
  STATUS is succeeded, failed, skipped or completed; a plain NAME means succeeded (a cached step succeeded).

when    := or;  or := and ('||' and)*;  and := cmp ('&&' cmp)*;  cmp := unary (OP unary)?
unary   := '!' unary | '(' or ')' | NUMBER | STRING | true | false | REF | '{{' REF '}}'
  OP is == != < <= > >= (not chained); REF is a template ref (templating.classify) written bare or in braces.
  Two sides compare as numbers when both read as numbers, otherwise as text.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from pipelines.spec.templating import as_text, classify

MAX_TEXT = 1000  # characters of one expression
MAX_NESTING = 20  # parentheses and '!' inside each other

STATUSES = ("succeeded", "failed", "skipped", "completed")
# A step's final states, as the engine records them, and which of them each status in ``depends`` accepts.
FINAL_STATES = ("success", "cached", "failed", "skipped", "stopped")
_ACCEPTS = {
    "succeeded": frozenset({"success", "cached"}),
    "failed": frozenset({"failed"}),
    "skipped": frozenset({"skipped"}),
    "completed": frozenset({"success", "cached", "failed"}),
}
_ARGO_STATUS = {"succeeded": "Succeeded", "failed": "Failed", "skipped": "Skipped"}
COMPARISONS = ("==", "!=", "<", "<=", ">", ">=")

STEP_NAME = re.compile(r"[a-z][a-z0-9-]{0,39}", re.ASCII)
_NUMBER_TEXT = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?", re.ASCII)

_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
    |(?P<template>\{\{\s*(?P<inner>[^{}]*?)\s*\}\})
    |(?P<number>-?(\d+(\.\d+)?|\.\d+)([eE][+-]?\d+)?(?![A-Za-z0-9_.]))
    |(?P<word>[A-Za-z0-9_][A-Za-z0-9_.\-]*)  # after number: "1a" is a word, named as no step or ref
    |(?P<op>&&|\|\||==|!=|<=|>=|<|>|!|\(|\))
    |(?P<string>'|")
    """,
    re.VERBOSE | re.ASCII,
)


class ExpressionError(ValueError):
    """A ``depends`` or ``when`` that does not parse (or, evaluating ``when``, a value that is not true or false)."""

    def __init__(self, message: str, position: int | None = None):
        self.message = message
        self.position = position
        super().__init__(message if position is None else f"{message} at {position}")


# --- the tree --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Name:
    """A step in ``depends``; status "" when written plain (it means succeeded)."""

    step: str
    status: str = ""


@dataclass(frozen=True)
class Ref:
    """A reference in ``when`` (``params.x``, ``steps.s.outputs.parameters.p``, ``item``)."""

    ref: str


@dataclass(frozen=True)
class Literal:
    value: str | bool | Decimal
    text: str  # as written, for Argo


@dataclass(frozen=True)
class Not:
    operand: Node


@dataclass(frozen=True)
class And:
    operands: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    operands: tuple[Node, ...]


@dataclass(frozen=True)
class Compare:
    op: str
    left: Node
    right: Node


Node = Name | Ref | Literal | Not | And | Or | Compare


# --- tokens ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Token:
    kind: str  # word, template, number, string, op, end
    text: str
    position: int
    value: Any = None


def _tokens(text: Any) -> list[_Token]:
    if not isinstance(text, str):
        raise ExpressionError("must be text")
    if len(text) > MAX_TEXT:
        raise ExpressionError(f"is too long: at most {MAX_TEXT} characters")
    tokens: list[_Token] = []
    at = 0
    while at < len(text):
        match = _TOKEN.match(text, at)
        if match is None:
            char = text[at]
            if char == "&":
                raise ExpressionError("expected '&&'", at)
            if char == "|":
                raise ExpressionError("expected '||'", at)
            if char == "=":
                raise ExpressionError("expected '=='", at)
            if text.startswith("{{", at):
                raise ExpressionError("expected '}}' to close '{{'", at)
            raise ExpressionError(f"unexpected {char!r}", at)
        kind = match.lastgroup
        if kind == "inner":  # lastgroup is the innermost named group that matched
            kind = "template"
        if kind == "string":
            string, at = _string(text, at)
            tokens.append(_Token("string", text[match.start() : at], match.start(), string))
            continue
        if kind == "template":
            tokens.append(_Token("template", match[0], at, match["inner"]))
        elif kind != "space":
            tokens.append(_Token(kind, match[0], at))
        at = match.end()
    tokens.append(_Token("end", "", len(text)))
    return tokens


def _string(text: str, start: int) -> tuple[str, int]:
    """A quoted string from its opening quote: its value and the position after it; backslash escapes the next
    quote or backslash."""
    quote = text[start]
    out: list[str] = []
    at = start + 1
    while at < len(text):
        char = text[at]
        if char == quote:
            return "".join(out), at + 1
        if char == "\\":
            if at + 1 < len(text) and text[at + 1] in "\\'\"":
                out.append(text[at + 1])
                at += 2
                continue
            raise ExpressionError("a backslash may only escape a quote or a backslash", at)
        out.append(char)
        at += 1
    raise ExpressionError("unterminated string", start)


def _describe(token: _Token) -> str:
    return "the end" if token.kind == "end" else repr(token.text)


class _Parser:
    def __init__(self, text: Any):
        self.tokens = _tokens(text)
        self.at = 0
        self.depth = 0

    @property
    def token(self) -> _Token:
        return self.tokens[self.at]

    def take(self, text: str) -> bool:
        if self.token.kind == "op" and self.token.text == text:
            self.at += 1
            return True
        return False

    def nest(self) -> None:
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise ExpressionError(f"is nested too deeply: at most {MAX_NESTING} levels", self.token.position)

    def done(self, node: Node) -> Node:
        if self.token.kind != "end":
            raise ExpressionError(f"unexpected {_describe(self.token)}", self.token.position)
        return node

    def chain(self, operator: str, operand: Callable[[], Node], kind: type[And] | type[Or]) -> Node:
        operands = [operand()]
        while self.take(operator):
            operands.append(operand())
        return operands[0] if len(operands) == 1 else kind(tuple(operands))

    def group(self, inner: Callable[[], Node]) -> Node:
        """After '(': the inner expression and its ')'."""
        opening = self.tokens[self.at - 1].position
        self.nest()
        node = inner()
        if not self.take(")"):
            if self.token.kind == "end":
                raise ExpressionError(f"expected ')' to close the '(' of position {opening}", self.token.position)
            raise ExpressionError("expected ')' or an operator", self.token.position)
        self.depth -= 1
        return node

    # depends

    def depends_or(self) -> Node:
        return self.chain("||", self.depends_and, Or)

    def depends_and(self) -> Node:
        return self.chain("&&", self.depends_not, And)

    def depends_not(self) -> Node:
        if self.take("!"):
            self.nest()
            node = Not(self.depends_not())
            self.depth -= 1
            return node
        if self.take("("):
            return self.group(self.depends_or)
        token = self.token
        if token.kind != "word":
            raise ExpressionError("expected a step name", token.position)
        self.at += 1
        step, dot, status = token.text.partition(".")
        if not STEP_NAME.fullmatch(step):
            raise ExpressionError(
                f"{step!r} is not a step name (lowercase letters, digits and '-', starting with a letter)",
                token.position,
            )
        if dot and status not in STATUSES:
            raise ExpressionError(
                "expected succeeded, failed, skipped or completed after the '.'", token.position + len(step) + 1
            )
        return Name(step, status)

    # when

    def when_or(self) -> Node:
        return self.chain("||", self.when_and, Or)

    def when_and(self) -> Node:
        return self.chain("&&", self.when_compare, And)

    def when_compare(self) -> Node:
        left = self.when_unary()
        token = self.token
        if token.kind == "op" and token.text in COMPARISONS:
            self.at += 1
            right = self.when_unary()
            after = self.token
            if after.kind == "op" and after.text in COMPARISONS:
                raise ExpressionError("comparisons do not chain: put one in parentheses", after.position)
            return Compare(token.text, left, right)
        return left

    def when_unary(self) -> Node:
        if self.take("!"):
            self.nest()
            node = Not(self.when_unary())
            self.depth -= 1
            return node
        if self.take("("):
            return self.group(self.when_or)
        token = self.token
        self.at += 1
        if token.kind == "number":
            return Literal(Decimal(token.text), token.text)
        if token.kind == "string":
            return Literal(token.value, token.text)
        if token.kind == "word" and token.text in ("true", "false"):
            return Literal(token.text == "true", token.text)
        if token.kind in ("word", "template"):
            ref = token.value if token.kind == "template" else token.text
            try:
                classify(ref)
            except ValueError:
                raise ExpressionError(
                    f"{ref!r} is not a reference such as params.NAME, steps.NAME.outputs.parameters.NAME or item",
                    token.position,
                )
            return Ref(ref)
        raise ExpressionError("expected a value", token.position)


# --- depends ---------------------------------------------------------------------------------


def parse_depends(text: str) -> Node:
    """The tree of a ``depends`` expression; ExpressionError with the position of the first problem."""
    parser = _Parser(text)
    return parser.done(parser.depends_or())


def _walk(node: Node) -> list[Node]:
    """Every node, parents before children, left to right."""
    out: list[Node] = []
    stack = [node]
    while stack:
        item = stack.pop()
        out.append(item)
        if isinstance(item, Not):
            stack.append(item.operand)
        elif isinstance(item, And | Or):
            stack.extend(reversed(item.operands))
        elif isinstance(item, Compare):
            stack.extend((item.right, item.left))
    return out


def depends_names(node: Node) -> list[str]:
    """The steps a ``depends`` names, each once, in the order written."""
    return list(dict.fromkeys(item.step for item in _walk(node) if isinstance(item, Name)))


def eval_depends(node: Node, states: dict[str, str]) -> bool:
    """Whether a step may run, once every step it names is final (states: success, cached, failed, skipped,
    stopped). KeyError for a named step missing from states."""
    if isinstance(node, Name):
        return states[node.step] in _ACCEPTS[node.status or "succeeded"]
    if isinstance(node, Not):
        return not eval_depends(node.operand, states)
    if isinstance(node, And):
        # Lists, not generators: every name is looked up, so a state missing by mistake is never hidden.
        return all([eval_depends(item, states) for item in node.operands])
    if isinstance(node, Or):
        return any([eval_depends(item, states) for item in node.operands])
    raise TypeError(f"not a depends node: {node!r}")


def depends_to_argo(node: Node) -> str:
    """The expression in Argo's DAG ``depends`` syntax (a plain name there would also accept Skipped, so every
    name gets its status)."""
    if isinstance(node, Name):
        if node.status == "completed":
            return f"({node.step}.Succeeded || {node.step}.Failed)"
        return f"{node.step}.{_ARGO_STATUS[node.status or 'succeeded']}"
    if isinstance(node, Not):
        inner = depends_to_argo(node.operand)
        return f"!{inner}" if isinstance(node.operand, Name | Not) else f"!({inner})"
    if isinstance(node, And | Or):
        joiner = " && " if isinstance(node, And) else " || "
        return joiner.join(
            f"({depends_to_argo(item)})" if isinstance(item, And | Or) else depends_to_argo(item)
            for item in node.operands
        )
    raise TypeError(f"not a depends node: {node!r}")


# --- when ------------------------------------------------------------------------------------


def parse_when(text: str) -> Node:
    """The tree of a ``when`` condition; ExpressionError with the position of the first problem."""
    parser = _Parser(text)
    return parser.done(parser.when_or())


def when_references(node: Node) -> list[str]:
    """The refs a condition reads, each once, in the order written."""
    return list(dict.fromkeys(item.ref for item in _walk(node) if isinstance(item, Ref)))


def _number(value: Any) -> Decimal | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value)) if value == value and abs(value) != float("inf") else None
    if isinstance(value, Decimal):
        return value
    if isinstance(value, str):
        text = value.strip()
        if len(text) <= 100 and _NUMBER_TEXT.fullmatch(text):
            try:
                return Decimal(text)
            except InvalidOperation:  # pragma: no cover - the pattern admits only what Decimal reads
                return None
    return None


def _truth(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    number = _number(value)
    if number is not None:
        return number != 0
    if isinstance(value, str) and value.strip().lower() in ("true", "false", ""):
        return value.strip().lower() == "true"
    raise ExpressionError(f"{as_text(value)[:100]!r} is neither true nor false")


def _compare(op: str, left: Any, right: Any) -> bool:
    a: Any = _number(left)
    b: Any = _number(right)
    if a is None or b is None:
        a, b = as_text(left), as_text(right)
    if op == "==":
        return a == b
    if op == "!=":
        return a != b
    if op == "<":
        return a < b
    if op == "<=":
        return a <= b
    if op == ">":
        return a > b
    return a >= b


def _value(node: Node, lookup: Callable[[str], Any]) -> Any:
    if isinstance(node, Literal):
        return node.value
    if isinstance(node, Ref):
        return lookup(node.ref)
    return eval_when(node, lookup)


def eval_when(node: Node, lookup: Callable[[str], Any]) -> bool:
    """Whether a condition holds, refs read through lookup; ExpressionError when a value that must be true or
    false is neither (``"yes"``); whatever lookup raises passes through."""
    if isinstance(node, Literal | Ref):
        return _truth(_value(node, lookup))
    if isinstance(node, Not):
        return not eval_when(node.operand, lookup)
    if isinstance(node, And):
        return all(eval_when(item, lookup) for item in node.operands)
    if isinstance(node, Or):
        return any(eval_when(item, lookup) for item in node.operands)
    if isinstance(node, Compare):
        return _compare(node.op, _value(node.left, lookup), _value(node.right, lookup))
    raise TypeError(f"not a when node: {node!r}")


def _argo_string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def when_to_argo(node: Node, ref_to_argo: Callable[[str], str]) -> str:
    """The condition in Argo's ``when`` (govaluate after Argo substitutes its templates). ref_to_argo gives a
    ref's Argo template: ``"{{tasks.x.outputs.parameters.y}}"``, or the bare ``"tasks.x.outputs.parameters.y"``,
    which gets the braces. A ref compared with a string, or two refs tested for (in)equality, are quoted
    (compared as text); a ref compared with a number or a boolean, or standing alone, is not."""

    def ref(item: Ref, quoted: bool) -> str:
        text = ref_to_argo(item.ref)
        if "{{" not in text:
            text = "{{" + text + "}}"
        return f"'{text}'" if quoted else text

    def side(item: Node, other: Node, op: str) -> str:
        if isinstance(item, Ref):
            quoted = (isinstance(other, Literal) and isinstance(other.value, str)) or (
                isinstance(other, Ref) and op in ("==", "!=")
            )
            return ref(item, quoted)
        return operand(item, Compare)

    def operand(item: Node, parent: type) -> str:
        text = walk(item)
        # Comparisons bind tighter than && and || in govaluate as here, and && tighter than ||.
        if isinstance(item, Literal | Ref | Not) or (isinstance(item, Compare) and parent in (And, Or)):
            return text
        if isinstance(item, And) and parent is Or:
            return text
        return f"({text})"

    def walk(item: Node) -> str:
        if isinstance(item, Literal):
            if isinstance(item.value, bool):
                return "true" if item.value else "false"
            if isinstance(item.value, str):
                return _argo_string(item.value)
            return item.text
        if isinstance(item, Ref):
            return ref(item, False)
        if isinstance(item, Not):
            return "!" + operand(item.operand, Not)
        if isinstance(item, And | Or):
            joiner = " && " if isinstance(item, And) else " || "
            return joiner.join(operand(inner, type(item)) for inner in item.operands)
        if isinstance(item, Compare):
            return f"{side(item.left, item.right, item.op)} {item.op} {side(item.right, item.left, item.op)}"
        raise TypeError(f"not a when node: {item!r}")

    return walk(node)
