"""A step's ``depends`` and ``when``: parsing, errors with positions, evaluation and Argo's forms. No database."""

from __future__ import annotations

import itertools
from decimal import Decimal
from typing import Any

import pytest

from pipelines.spec.expressions import (
    MAX_NESTING,
    MAX_TEXT,
    And,
    Compare,
    ExpressionError,
    Literal,
    Name,
    Not,
    Or,
    Ref,
    depends_names,
    depends_to_argo,
    eval_depends,
    eval_when,
    parse_depends,
    parse_when,
    when_references,
    when_to_argo,
)

FINAL = ("success", "cached", "failed", "skipped", "stopped")


# --- depends: parsing ------------------------------------------------------------------------


def test_depends_parses_names_statuses_and_precedence():
    assert parse_depends("a") == Name("a")
    assert parse_depends("  prep-1.failed ") == Name("prep-1", "failed")
    # && binds tighter than ||; ! tighter than both.
    assert parse_depends("a || b && !c") == Or((Name("a"), And((Name("b"), Not(Name("c"))))))
    assert parse_depends("(a || b) && c.completed") == And((Or((Name("a"), Name("b"))), Name("c", "completed")))
    assert parse_depends("a&&b&&c") == And((Name("a"), Name("b"), Name("c")))
    assert parse_depends("!!a.skipped") == Not(Not(Name("a", "skipped")))


def test_depends_names_lists_each_step_once_in_written_order():
    assert depends_names(parse_depends("c && (a.failed || c.succeeded) && !b")) == ["c", "a", "b"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "expected a step name at 0"),
        ("a &&", "expected a step name at 4"),
        ("a && && b", "expected a step name at 5"),
        ("a & b", "expected '&&' at 2"),
        ("a | b", "expected '||' at 2"),
        ("(a || b", "expected ')' to close the '(' of position 0 at 7"),
        ("a b", "unexpected 'b' at 2"),
        ("a)", "unexpected ')' at 1"),
        ("A", "'A' is not a step name (lowercase letters, digits and '-', starting with a letter) at 0"),
        ("1a", "'1a' is not a step name (lowercase letters, digits and '-', starting with a letter) at 0"),
        ("1", "expected a step name at 0"),
        ("a.done", "expected succeeded, failed, skipped or completed after the '.' at 2"),
        ("a.Succeeded", "expected succeeded, failed, skipped or completed after the '.' at 2"),
        ("a == b", "unexpected '==' at 2"),
        ("'a'", "expected a step name at 0"),
        ("a # b", "unexpected '#' at 2"),
    ],
)
def test_a_bad_depends_names_its_problem_and_position(text, message):
    with pytest.raises(ExpressionError) as caught:
        parse_depends(text)
    assert str(caught.value) == message


def test_depends_is_bounded_in_length_and_nesting():
    with pytest.raises(ExpressionError, match=f"at most {MAX_TEXT} characters"):
        parse_depends("a && " * 200 + "a")
    parse_depends("(" * MAX_NESTING + "a" + ")" * MAX_NESTING)
    with pytest.raises(ExpressionError, match="nested too deeply"):
        parse_depends("(" * (MAX_NESTING + 1) + "a" + ")" * (MAX_NESTING + 1))
    with pytest.raises(ExpressionError, match="nested too deeply"):
        parse_depends("!" * (MAX_NESTING + 1) + "a")


def test_expression_error_carries_message_and_position():
    with pytest.raises(ExpressionError) as caught:
        parse_depends("a && ")
    assert caught.value.message == "expected a step name"
    assert caught.value.position == 5
    assert isinstance(caught.value, ValueError)


# --- depends: evaluation ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "true_for"),
    [
        ("", {"success", "cached"}),
        ("succeeded", {"success", "cached"}),
        ("failed", {"failed"}),
        ("skipped", {"skipped"}),
        ("completed", {"success", "cached", "failed"}),
    ],
)
def test_each_status_accepts_its_final_states(status, true_for):
    node = parse_depends(f"a.{status}" if status else "a")
    assert {state for state in FINAL if eval_depends(node, {"a": state})} == true_for


def test_depends_truth_table_of_and_or_not():
    node = parse_depends("a && (b.failed || !c)")
    for a, b, c in itertools.product(FINAL, repeat=3):
        expected = a in ("success", "cached") and (b == "failed" or c not in ("success", "cached"))
        assert eval_depends(node, {"a": a, "b": b, "c": c}) is expected, (a, b, c)


def test_a_stopped_step_satisfies_nothing_but_a_negation():
    assert not eval_depends(parse_depends("a.completed || a.failed || a.skipped || a"), {"a": "stopped"})
    assert eval_depends(parse_depends("!a"), {"a": "stopped"})


def test_evaluating_depends_without_a_named_state_is_a_key_error():
    with pytest.raises(KeyError):
        eval_depends(parse_depends("a || b"), {"a": "success"})


# --- depends: Argo ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "argo"),
    [
        ("a", "a.Succeeded"),
        ("a.succeeded", "a.Succeeded"),
        ("a.failed", "a.Failed"),
        ("a.skipped", "a.Skipped"),
        ("a.completed", "(a.Succeeded || a.Failed)"),
        ("a && b", "a.Succeeded && b.Succeeded"),
        ("a || b && c", "a.Succeeded || (b.Succeeded && c.Succeeded)"),
        ("(a || b) && c", "(a.Succeeded || b.Succeeded) && c.Succeeded"),
        ("!a", "!a.Succeeded"),
        ("!a.completed", "!(a.Succeeded || a.Failed)"),
        ("!(a && b)", "!(a.Succeeded && b.Succeeded)"),
        ("!!a", "!!a.Succeeded"),
        ("prep-data && train.failed", "prep-data.Succeeded && train.Failed"),
    ],
)
def test_depends_translates_to_argo(text, argo):
    assert depends_to_argo(parse_depends(text)) == argo


# --- when: parsing ---------------------------------------------------------------------------


def test_when_parses_comparisons_refs_and_literals():
    node = parse_when("steps.evaluate.outputs.parameters.accuracy >= params.threshold")
    assert node == Compare(">=", Ref("steps.evaluate.outputs.parameters.accuracy"), Ref("params.threshold"))
    assert parse_when("{{ params.x }} == 'a b'") == Compare("==", Ref("params.x"), Literal("a b", "'a b'"))
    assert parse_when('item != "x\\"y"') == Compare("!=", Ref("item"), Literal('x"y', '"x\\"y"'))
    assert parse_when("params.n < -1.5e3") == Compare("<", Ref("params.n"), Literal(Decimal("-1.5e3"), "-1.5e3"))
    assert parse_when("true") == Literal(True, "true")
    assert parse_when("!params.flag && params.n > 1 || false") == Or(
        (
            And((Not(Ref("params.flag")), Compare(">", Ref("params.n"), Literal(Decimal(1), "1")))),
            Literal(False, "false"),
        )
    )
    assert parse_when("(params.a || params.b) && item.k") == And(
        (Or((Ref("params.a"), Ref("params.b"))), Ref("item.k"))
    )


def test_when_references_lists_each_ref_once_in_written_order():
    node = parse_when("{{params.b}} > 1 && (params.a == 'x' || params.b < steps.s.outputs.parameters.p)")
    assert when_references(node) == ["params.b", "params.a", "steps.s.outputs.parameters.p"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "expected a value at 0"),
        ("params.x >", "expected a value at 10"),
        ("params.x = 1", "expected '==' at 9"),
        ("params.x > 1 > 0", "comparisons do not chain: put one in parentheses at 13"),
        (
            "accuracy > 0.9",
            "'accuracy' is not a reference such as params.NAME, steps.NAME.outputs.parameters.NAME or item at 0",
        ),
        (
            "{{ accuracy }} > 0.9",
            "'accuracy' is not a reference such as params.NAME, steps.NAME.outputs.parameters.NAME or item at 0",
        ),
        ("params.x == 'abc", "unterminated string at 12"),
        ("params.x == 'a\\b'", "a backslash may only escape a quote or a backslash at 14"),
        ("{{ params.x > 1", "expected '}}' to close '{{' at 0"),
        ("(params.x", "expected ')' to close the '(' of position 0 at 9"),
        ("params.x 1", "unexpected '1' at 9"),
        ("params.x ~ 1", "unexpected '~' at 9"),
        (
            "params.x > 1.5x",
            "'1.5x' is not a reference such as params.NAME, steps.NAME.outputs.parameters.NAME or item at 11",
        ),
    ],
)
def test_a_bad_when_names_its_problem_and_position(text, message):
    with pytest.raises(ExpressionError) as caught:
        parse_when(text)
    assert str(caught.value) == message


def test_when_is_bounded_in_length_and_nesting():
    with pytest.raises(ExpressionError, match="too long"):
        parse_when("true || " * 200 + "true")
    with pytest.raises(ExpressionError, match="nested too deeply"):
        parse_when("(" * (MAX_NESTING + 1) + "true" + ")" * (MAX_NESTING + 1))
    with pytest.raises(ExpressionError, match="must be text"):
        parse_when(3)  # type: ignore[arg-type]


# --- when: evaluation ------------------------------------------------------------------------


def when(text: str, **values: Any) -> bool:
    return eval_when(parse_when(text), lambda ref: values[ref.replace(".", "_")])


@pytest.mark.parametrize(
    ("text", "values", "expected"),
    [
        # Numbers compare as numbers when both sides read as numbers (outputs are text)...
        ("params.a > params.b", {"params_a": "10", "params_b": "9"}, True),
        ("params.a > 9", {"params_a": "10"}, True),
        ("params.a >= 0.9", {"params_a": "0.95\n"}, True),
        ("params.a == 1", {"params_a": "1.0"}, True),
        ("params.a == 1", {"params_a": 1.0}, True),
        ("params.a < 1e3", {"params_a": 999}, True),
        ("params.a != 2", {"params_a": "2"}, False),
        ("params.a <= -1", {"params_a": -1}, True),
        # ...else as text.
        ("params.a > params.b", {"params_a": "10", "params_b": "9x"}, False),
        ("params.a == 'bert'", {"params_a": "bert"}, True),
        ("params.a < 'b'", {"params_a": "a"}, True),
        ("params.a == 'true'", {"params_a": True}, True),
        ("params.a == true", {"params_a": True}, True),
        ("params.a == false", {"params_a": "false"}, True),
        ("params.a == '[\"x\",1]'", {"params_a": ["x", 1]}, True),
        ("params.a == ''", {"params_a": None}, True),
        # a bare value is a condition of its own
        ("params.a", {"params_a": True}, True),
        ("params.a", {"params_a": "false"}, False),
        ("params.a", {"params_a": "TRUE"}, True),
        ("params.a", {"params_a": 0}, False),
        ("params.a", {"params_a": "2"}, True),
        ("params.a", {"params_a": ""}, False),
        ("!params.a", {"params_a": False}, True),
        ("(params.a == 1) == true", {"params_a": 1}, True),
        ("1", {}, True),
        ("'false'", {}, False),
    ],
)
def test_when_evaluates(text, values, expected):
    assert when(text, **values) is expected


def test_when_truth_table_of_and_or_not():
    node = parse_when("params.a && (params.b || !params.c)")
    for a, b, c in itertools.product((True, False), repeat=3):
        values = {"params.a": a, "params.b": b, "params.c": c}
        assert eval_when(node, values.__getitem__) is (a and (b or not c))


def test_when_short_circuits_like_its_argo_form():
    seen: list[str] = []

    def lookup(ref: str) -> Any:
        seen.append(ref)
        return False

    assert eval_when(parse_when("params.a && params.b"), lookup) is False
    assert seen == ["params.a"]


def test_a_value_that_is_neither_true_nor_false_is_an_expression_error():
    with pytest.raises(ExpressionError, match="'yes' is neither true nor false"):
        when("params.a", params_a="yes")
    with pytest.raises(ExpressionError, match="neither true nor false"):
        when("params.a && true", params_a=["x"])


def test_what_lookup_raises_passes_through():
    with pytest.raises(KeyError):
        eval_when(parse_when("params.a == 1"), {}.__getitem__)


# --- when: Argo ------------------------------------------------------------------------------


def to_argo(ref: str) -> str:
    if ref.startswith("params."):
        return "{{workflow.parameters." + ref.removeprefix("params.") + "}}"
    return ref.replace("steps.", "tasks.", 1)  # bare: when_to_argo adds the braces


@pytest.mark.parametrize(
    ("text", "argo"),
    [
        (
            "steps.evaluate.outputs.parameters.accuracy >= params.threshold",
            "{{tasks.evaluate.outputs.parameters.accuracy}} >= {{workflow.parameters.threshold}}",
        ),
        ("params.x == 'a'", "'{{workflow.parameters.x}}' == 'a'"),
        ('"a" != params.x', "'a' != '{{workflow.parameters.x}}'"),
        ('params.x == "it\'s"', "'{{workflow.parameters.x}}' == 'it\\'s'"),
        ("params.x > 0.5", "{{workflow.parameters.x}} > 0.5"),
        ("params.x == params.y", "'{{workflow.parameters.x}}' == '{{workflow.parameters.y}}'"),
        ("params.flag", "{{workflow.parameters.flag}}"),
        ("params.flag == true", "{{workflow.parameters.flag}} == true"),
        ("!params.flag", "!{{workflow.parameters.flag}}"),
        ("!(params.x > 1)", "!({{workflow.parameters.x}} > 1)"),
        (
            "params.a > 1 && params.b < 2 || params.c",
            "{{workflow.parameters.a}} > 1 && {{workflow.parameters.b}} < 2 || {{workflow.parameters.c}}",
        ),
        (
            "params.a && (params.b || params.c)",
            "{{workflow.parameters.a}} && ({{workflow.parameters.b}} || {{workflow.parameters.c}})",
        ),
        ("(params.a > 1) == false", "({{workflow.parameters.a}} > 1) == false"),
        ("{{item}} == 'x'", "'{{item}}' == 'x'"),
    ],
)
def test_when_translates_to_argo(text, argo):
    assert when_to_argo(parse_when(text), to_argo) == argo
