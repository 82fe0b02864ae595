"""The rules expression language: what a rule author writes, and what it means."""

from __future__ import annotations

import dataclasses
import enum
import pickle
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.core.expressions import (
    Expression,
    ExpressionError,
    compile_expression,
    parse_duration,
)

ROOTS = frozenset({"event", "state", "rfm"})
FUNCTIONS = {"age": (1, 1), "now": (0, 0), "coalesce": (1, 3)}
T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)


class DictScope:
    """Resolves dotted paths in nested dicts; records function calls."""

    def __init__(
        self,
        data: dict[str, Any] | None = None,
        functions: dict[str, Callable[..., Any]] | None = None,
    ) -> None:
        self.data = data or {}
        self.functions = functions or {}
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def resolve(self, path: tuple[str, ...]) -> Any:
        current: Any = self.data
        for segment in path:
            if not isinstance(current, dict):
                return None
            current = current.get(segment)
        return current

    def call(self, name: str, args: tuple[Any, ...]) -> Any:
        self.calls.append((name, args))
        return self.functions[name](*args)


def compile_(text: str) -> Expression:
    return compile_expression(text, roots=ROOTS, functions=FUNCTIONS)


def ev(text: str, **data: Any) -> Any:
    return compile_(text).evaluate(DictScope(data))


def error(text: str, **kwargs: Any) -> ExpressionError:
    with pytest.raises(ExpressionError) as info:
        compile_expression(
            text,
            roots=kwargs.pop("roots", ROOTS),
            functions=kwargs.pop("functions", FUNCTIONS),
            **kwargs,
        )
    return info.value


# --------------------------------------------------------------------------- literals


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", 0),
        ("42", 42),
        ("2.5", 2.5),
        ("'gold'", "gold"),
        ('"gold"', "gold"),
        (r"'it\'s'", "it's"),
        (r'"say \"hi\""', 'say "hi"'),
        (r"'back\\slash'", "back\\slash"),
        ("'a \"mixed\" quote'", 'a "mixed" quote'),
        ("''", ""),
        ("true", True),
        ("false", False),
        ("null", None),
        ("[]", ()),
        ("[1, 'a', null, true]", (1, "a", None, True)),
        ("[1, 2,]", (1, 2)),
        ("[[1], []]", ((1,), ())),
    ],
)
def test_literals(text: str, expected: Any) -> None:
    result = ev(text)
    assert result == expected
    assert type(result) is type(expected)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("45s", timedelta(seconds=45)),
        ("90m", timedelta(minutes=90)),
        ("1h", timedelta(hours=1)),
        ("1.5h", timedelta(minutes=90)),
        ("30d", timedelta(days=30)),
        ("2w", timedelta(days=14)),
        ("0s", timedelta(0)),
    ],
)
def test_duration_literals(text: str, expected: timedelta) -> None:
    assert ev(text) == expected
    assert parse_duration(text) == expected


def test_lists_may_hold_expressions() -> None:
    assert ev("[event.amount * 2, state.tier]", event={"amount": 5}, state={"tier": "gold"}) == (
        10,
        "gold",
    )


# --------------------------------------------------------------------------- precedence


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1 + 2 * 3", 7),
        ("(1 + 2) * 3", 9),
        ("10 - 2 - 3", 5),
        ("12 / 3 / 2", 2.0),
        ("2 * 3 - 4 / 2", 4.0),
        ("-2 * 3", -6),
        ("- -2", 2),
        ("-(1 + 2)", -3),
        ("1 + 2 < 4", True),
        ("1 + 2 == 3 and 2 * 2 == 4", True),
        ("true or false and false", True),  # and binds tighter than or
        ("(true or false) and false", False),
        ("not true or true", True),  # not binds tighter than or
        ("not (true or true)", False),
        ("not false and false", False),  # not binds tighter than and
        ("not 1 == 2", True),  # comparison binds tighter than not
        ("not not 1", True),
        ("'a' in ['a', 'b'] and 2 > 1", True),
        ("-1d + 2d", timedelta(days=1)),
    ],
)
def test_precedence(text: str, expected: Any) -> None:
    assert ev(text) == expected


def test_comparison_operand_is_a_full_arithmetic_expression() -> None:
    assert ev("state.a + 1 in [2, 3]", state={"a": 1}) is True
    assert ev("state.a * 2 >= 10 - 4", state={"a": 3}) is True


# --------------------------------------------------------------------------- comparisons


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1 == 1", True),
        ("1 == 2", False),
        ("1 != 2", True),
        ("1 != 1", False),
        ("1 < 2", True),
        ("2 < 2", False),
        ("2 <= 2", True),
        ("3 <= 2", False),
        ("3 > 2", True),
        ("2 > 2", False),
        ("2 >= 2", True),
        ("1 >= 2", False),
        ("1 == 1.0", True),
        ("1 < 1.5", True),
        ("'abc' < 'abd'", True),
        ("'b' >= 'a'", True),
        ("'gold' == 'gold'", True),
        ("'gold' != 'Gold'", True),
        ("1h < 1d", True),
        ("60m == 1h", True),
        ("[1, 2] == [1, 2]", True),
        ("[1, 2] == [2, 1]", False),
        ("true == true", True),
        ("true != false", True),
    ],
)
def test_comparison_operators(text: str, expected: bool) -> None:
    assert ev(text) is expected


@pytest.mark.parametrize(
    "text",
    [
        "1 < '2'",
        "'2' > 1",
        "1 <= '1'",
        "1d > 5",
        "true > false",  # booleans are not ordered
        "1 < true",
        "[1] < [2]",
        "state.when < 1d",
        "state.when > 0",
    ],
)
def test_ordering_incompatible_types_is_false(text: str) -> None:
    assert ev(text, state={"when": T0}) is False


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1 == true", False),  # a boolean is not a number
        ("0 == false", False),
        ("1 != true", True),
        ("'1' == 1", False),
        ("[1] == [true]", False),
        ("1d == 86400", False),
        ("null == 0", False),
        ("null == ''", False),
        ("null == false", False),
    ],
)
def test_equality_across_types_is_false(text: str, expected: bool) -> None:
    assert ev(text) is expected


def test_comparisons_cannot_be_chained_but_can_be_parenthesised() -> None:
    err = error("1 < 2 < 3")
    assert err.column == 6
    assert "chained" in err.message
    assert ev("(1 < 2) == true") is True
    assert error("1 == 1 != 2").column == 7


def test_equality_with_path_values() -> None:
    assert ev("state.orders_count == 1", state={"orders_count": 1}) is True
    assert ev("state.orders_count == 1", state={"orders_count": 1.0}) is True
    assert ev("state.orders_count == 1", state={"orders_count": True}) is False
    assert ev("state.orders_count != 1", state={"orders_count": True}) is True
    assert ev("state.tier == 'gold'", state={"tier": "gold"}) is True
    assert ev("state.a == state.b", state={"a": [1, {"x": 2}], "b": (1, {"x": 2})}) is True
    assert ev("state.a == state.b", state={"a": {"x": 1}, "b": {"x": True}}) is False


def test_str_enum_values_compare_as_strings() -> None:
    class Stage(enum.StrEnum):
        AT_RISK = "at_risk"

    assert ev("state.stage == 'at_risk'", state={"stage": Stage.AT_RISK}) is True
    assert ev("state.stage in ['new', 'at_risk']", state={"stage": Stage.AT_RISK}) is True
    assert ev("state.stage < 'b'", state={"stage": Stage.AT_RISK}) is True


def test_nan_is_unordered_and_unequal() -> None:
    nan = float("nan")
    assert ev("state.x < 1", state={"x": nan}) is False
    assert ev("state.x >= 1", state={"x": nan}) is False
    assert ev("state.x == state.x", state={"x": nan}) is False


# --------------------------------------------------------------------------- null semantics


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("state.missing < 1", False),
        ("state.missing <= 1", False),
        ("state.missing > 1", False),
        ("state.missing >= 1", False),
        ("1 > state.missing", False),
        ("null < null", False),
        ("null <= null", False),
        ("state.missing == null", True),
        ("null == null", True),
        ("state.missing != null", False),
        ("state.missing == 0", False),
        ("state.missing != 0", True),
        ("not null", True),
        ("not state.missing", True),
        ("null and true", False),
        ("null or true", True),
        ("null or null", False),
        ("'x' in null", False),
        ("'x' in state.missing", False),
        ("'x' not in null", True),
        ("null in [null]", True),
        ("null in [0, false, '']", False),
    ],
)
def test_null_semantics(text: str, expected: bool) -> None:
    assert ev(text) is expected


@pytest.mark.parametrize(
    "text",
    [
        "null + 1",
        "1 + null",
        "state.missing - 1",
        "state.missing * 2",
        "state.missing / 2",
        "-null",
        "-state.missing",
        "state.missing + 1d",
        "(state.missing + 1) * 2",
    ],
)
def test_arithmetic_with_null_is_null(text: str) -> None:
    assert ev(text) is None


def test_missing_intermediate_path_is_null() -> None:
    assert ev("state.profile.tier", state={"profile": None}) is None
    assert ev("state.profile.tier", state={"profile": "not a dict"}) is None
    assert ev("state.profile.tier", state={"profile": {"tier": "gold"}}) == "gold"


# --------------------------------------------------------------------------- logic


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1 and 'x'", True),
        ("'x' and 0", False),
        ("0 or ''", False),
        ("0 or 'x'", True),
        ("[] or []", False),
        ("[0] and 1", True),
        ("0.0 or false", False),
        ("0s or false", False),
        ("true and true and true", True),
        ("true and true and false", False),
        ("false or false or 5", True),
        ("false or false or 0", False),
    ],
)
def test_and_or_return_booleans(text: str, expected: bool) -> None:
    assert ev(text) is expected


@pytest.mark.parametrize(
    ("value", "truthy"),
    [
        (None, False),
        (False, False),
        (0, False),
        (0.0, False),
        ("", False),
        ([], False),
        ({}, False),
        (timedelta(0), False),
        (True, True),
        (1, True),
        (-1, True),
        ("0", True),
        ("false", True),
        ([0], True),
        ({"a": 1}, True),
        (T0, True),
        (timedelta(seconds=1), True),
    ],
)
def test_truthiness(value: Any, truthy: bool) -> None:
    assert ev("not state.v", state={"v": value}) is (not truthy)
    assert ev("state.v and true", state={"v": value}) is truthy
    assert ev("state.v or false", state={"v": value}) is truthy


def test_and_or_short_circuit() -> None:
    scope = DictScope({}, {"age": lambda x: 1, "now": lambda: T0})
    compile_("false and age(1) > 0").evaluate(scope)
    compile_("true or age(1) > 0").evaluate(scope)
    compile_("0 and 1 and age(1)").evaluate(scope)
    compile_("1 or 0 or age(1)").evaluate(scope)
    assert scope.calls == []
    compile_("true and age(2) > 0").evaluate(scope)
    compile_("false or age(3) > 0").evaluate(scope)
    assert scope.calls == [("age", (2,)), ("age", (3,))]


# --------------------------------------------------------------------------- arithmetic


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1 + 2", 3),
        ("1 + 2.5", 3.5),
        ("5 - 7", -2),
        ("3 * 4", 12),
        ("7 / 2", 3.5),
        ("6 / 3", 2.0),
        ("1d + 1h", timedelta(days=1, hours=1)),
        ("1d - 1h", timedelta(hours=23)),
        ("1d * 2", timedelta(days=2)),
        ("2 * 1d", timedelta(days=2)),
        ("1.5 * 1h", timedelta(minutes=90)),
        ("1d / 2", timedelta(hours=12)),
        ("1d / 1h", 24.0),
        ("-1d", timedelta(days=-1)),
        ("-2.5", -2.5),
    ],
)
def test_arithmetic(text: str, expected: Any) -> None:
    result = ev(text)
    assert result == expected
    assert type(result) is type(expected)


@pytest.mark.parametrize(
    "text",
    [
        "1 / 0",
        "1.5 / 0",
        "1 / 0.0",
        "1d / 0",
        "1d / 0s",
        "'a' + 'b'",
        "'a' * 3",
        "[1] + [2]",
        "1 + true",
        "true + true",
        "-true",
        "-'a'",
        "1d + 1",
        "1 - 1d",
        "1d * 1d",
        "2 / 1d",
        "1d * true",
    ],
)
def test_incompatible_or_undefined_arithmetic_is_null(text: str) -> None:
    assert ev(text) is None


def test_division_by_zero_then_comparison_is_false() -> None:
    assert ev("state.spent / state.orders > 10", state={"spent": 100, "orders": 0}) is False
    assert ev("state.spent / state.orders > 10", state={"spent": 100, "orders": 4}) is True


def test_datetime_arithmetic() -> None:
    last = T0 - timedelta(days=40)
    data = {"event": {"at": T0}, "state": {"last_order_at": last}}
    assert ev("event.at - state.last_order_at", **data) == timedelta(days=40)
    assert ev("event.at - state.last_order_at >= 30d", **data) is True
    assert ev("event.at - state.last_order_at > 6w", **data) is False
    assert ev("state.last_order_at + 40d == event.at", **data) is True
    assert ev("40d + state.last_order_at == event.at", **data) is True
    assert ev("event.at - 40d", **data) == last
    assert ev("state.last_order_at < event.at", **data) is True
    assert ev("state.last_order_at >= event.at", **data) is False
    assert ev("event.at + event.at", **data) is None
    assert ev("30d - event.at", **data) is None
    assert ev("event.at * 2", **data) is None


def test_naive_and_aware_datetimes_do_not_crash() -> None:
    data = {"state": {"naive": datetime(2026, 1, 1), "aware": T0}}
    assert ev("state.naive < state.aware", **data) is False
    assert ev("state.naive >= state.aware", **data) is False
    assert ev("state.naive == state.aware", **data) is False
    assert ev("state.naive - state.aware", **data) is None


def test_overflow_is_null() -> None:
    data = {"state": {"max": datetime.max, "min": timedelta.min, "big": 10**400}}
    assert ev("state.max + 1d", **data) is None
    assert ev("state.min - 1d", **data) is None
    assert ev("state.min * 2", **data) is None
    assert ev("state.big / 3", **data) is None
    assert ev("state.big + 0.5", **data) is None
    assert ev("1d * state.big", **data) is None
    assert ev("state.big > 1.5", **data) is True


def test_long_arithmetic_chain_does_not_recurse() -> None:
    text = " + ".join(["state.n"] * 200)
    assert ev(text, state={"n": 1}) == 200
    assert ev(" - ".join(["1"] * 500)) == -498


def test_dates_compare_with_dates_only() -> None:
    data = {"state": {"d1": date(2026, 1, 1), "d2": date(2026, 2, 1), "dt": T0}}
    assert ev("state.d1 < state.d2", **data) is True
    assert ev("state.d1 < state.dt", **data) is False
    assert ev("state.d1 == state.dt", **data) is False


def test_decimals_are_numbers() -> None:
    data = {"event": {"amount": Decimal("150.00")}}
    assert ev("event.amount >= 100", **data) is True
    assert ev("event.amount == 150", **data) is True
    assert ev("event.amount * 2", **data) == Decimal("300.00")
    assert ev("event.amount + 0.5", **data) is None  # Decimal + float is undefined


# --------------------------------------------------------------------------- membership


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("'gold' in ['gold', 'silver']", True),
        ("'bronze' in ['gold', 'silver']", False),
        ("'bronze' not in ['gold', 'silver']", True),
        ("'gold' not in ['gold', 'silver']", False),
        ("1 in [1, 2]", True),
        ("1.0 in [1, 2]", True),
        ("1 in [true]", False),
        ("true in [1]", False),
        ("null in []", False),
        ("[1] in [[1], [2]]", True),
        ("'old' in 'gold'", True),
        ("'x' in 'gold'", False),
        ("'' in 'gold'", True),
        ("1 in '123'", False),
        ("'a' in 1", False),
        ("'a' not in 1", True),
        ("1h in [60m]", True),
    ],
)
def test_membership(text: str, expected: bool) -> None:
    assert ev(text) is expected


def test_membership_in_path_values() -> None:
    state = {
        "tags": ["vip", "b2b"],
        "tag_set": frozenset({"vip"}),
        "email": "anna@example.com",
        "profile": {"vip": True},
    }
    assert ev("'vip' in state.tags", state=state) is True
    assert ev("'vip' in state.tag_set", state=state) is True
    assert ev("'example.com' in state.email", state=state) is True
    assert ev("'vip' in state.profile", state=state) is False  # maps are not collections here
    assert ev("state.tier in ['gold', 'silver']", state={"tier": "gold"}) is True
    assert ev("state.tier in ['gold', 'silver']", state={"tier": None}) is False
    assert ev("state.tier not in ['gold', 'silver']", state={"tier": 1}) is True
    assert ev("state.tier in [state.a, 'b']", state={"tier": "x", "a": "x"}) is True


# --------------------------------------------------------------------------- functions


def test_function_calls_go_through_the_scope() -> None:
    scope = DictScope(
        {"state": {"last_order_at": T0 - timedelta(days=45)}},
        {
            "age": lambda when: T0 - when,
            "now": lambda: T0,
            "coalesce": lambda *a: next((x for x in a if x is not None), None),
        },
    )
    assert compile_("age(state.last_order_at) > 30d").evaluate(scope) is True
    assert compile_("now() - 1d").evaluate(scope) == T0 - timedelta(days=1)
    assert compile_("coalesce(state.missing, state.other, 7) + 1").evaluate(scope) == 8
    assert scope.calls == [
        ("age", (T0 - timedelta(days=45),)),
        ("now", ()),
        ("coalesce", (None, None, 7)),
    ]


def test_functions_with_a_trailing_comma() -> None:
    scope = DictScope({}, {"coalesce": lambda *a: a})
    assert compile_("coalesce(1, 2,)").evaluate(scope) == (1, 2)


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("text", "column", "fragment"),
    [
        ("", 0, "empty expression"),
        ("   ", 0, "empty expression"),
        ("stat.orders_count == 1", 0, "unknown field 'stat.orders_count' (did you mean 'state'?)"),
        ("event.amount > 1 and profile.tier", 21, "unknown field 'profile.tier'"),
        ("True", 0, "keywords are lowercase"),
        ("age", 0, "'age' is a function"),
        ("agee(state.x)", 0, "unknown function 'agee' (did you mean 'age'?)"),
        ("1 + nope()", 4, "unknown function 'nope'"),
        ("age()", 0, "function 'age' takes 1 argument, got 0"),
        ("1 < age(1, 2)", 4, "function 'age' takes 1 argument, got 2"),
        ("now(1)", 0, "function 'now' takes 0 arguments, got 1"),
        ("coalesce(1, 2, 3, 4)", 0, "takes 1 to 3 arguments, got 4"),
        ("(state.x == 1", 0, "unclosed '('"),
        ("1 + (2 * (3)", 4, "unclosed '('"),
        ("[1, 2", 0, "unclosed '['"),
        ("age(state.x", 3, "unclosed '('"),
        ("(1 2)", 3, "expected ')' but found number 2"),
        ("1)", 1, "unexpected ')'"),
        ("state.x == 1 state.y", 13, "unexpected 'state'"),
        ("1 2", 2, "unexpected number 2"),
        ("state.x AND state.y", 8, "keywords are lowercase: 'and'"),
        ("state.tags[0]", 10, "paths cannot be indexed"),
        ("state.x(1)", 7, "only functions can be called"),
        ("'abc", 0, "unterminated string"),
        ('state.x == "abc', 11, "unterminated string"),
        (r"'a\nb'", 2, "invalid escape"),
        ("'a\\", 2, "invalid escape"),
        ("1 < 2 < 3", 6, "comparisons cannot be chained"),
        ("state.a == state.b == true", 19, "comparisons cannot be chained"),
        ("1 in [1] in [[1]]", 9, "comparisons cannot be chained"),
        ("1 < 2 not in [3]", 6, "comparisons cannot be chained"),
        ("1 +", 3, "expected a value but the expression ended"),
        ("== 1", 0, "expected a value but found '=='"),
        ("1 == not true", 5, "expected a value but found 'not'"),
        ("state.", 5, "expected a field name after '.'"),
        ("state.in", 6, "keywords are reserved"),
        ("state.1", 6, "expected a field name after '.'"),
        ("30days", 0, "invalid number or duration '30days'"),
        ("1.5e3", 0, "invalid number or duration"),
        ("10x", 0, "invalid number or duration"),
        ("state.a && state.b", 8, "use 'and'"),
        ("state.a || state.b", 8, "use 'or'"),
        ("!state.a", 0, "use 'not'"),
        ("state.a = 1", 8, "use '=='"),
        ("state.a % 2", 8, "unexpected character '%'"),
        ("1 +\n  @", 6, "unexpected character '@'"),
        ("[1,,2]", 3, "expected a value but found ','"),
    ],
)
def test_errors_report_the_column(text: str, column: int, fragment: str) -> None:
    err = error(text)
    assert fragment in err.message
    assert err.column == column
    assert str(err) == f"column {column}: {err.message}"


def test_error_is_a_value_error_and_survives_pickling() -> None:
    err = error("state.x ==")
    assert isinstance(err, ValueError)
    copy = pickle.loads(pickle.dumps(err))
    assert (copy.message, copy.column, str(copy)) == (err.message, err.column, str(err))


def test_known_field_hook_reports_typos_below_the_root() -> None:
    known = {"event.amount", "state.orders_count"}
    err = error("event.x and state.ordrs_count > 1", known_field=known.__contains__)
    assert err.column == 0
    err = error("event.amount and state.ordrs_count > 1", known_field=known.__contains__)
    assert str(err) == "column 17: unknown field 'state.ordrs_count'"
    ok = compile_expression(
        "state.orders_count > 1",
        roots=ROOTS,
        functions=FUNCTIONS,
        known_field=known.__contains__,
    )
    assert ok.fields == {"state.orders_count"}


def test_out_of_range_literals_are_compile_errors() -> None:
    assert "out of range" in error("9999999999999w").message


# --------------------------------------------------------------------------- limits


def nested_parens(depth: int) -> str:
    return "(" * depth + "1" + ")" * depth


def test_nesting_up_to_the_limit_is_accepted() -> None:
    assert ev(nested_parens(32)) == 1
    assert ev("not " * 32 + "true") is True
    assert ev("-" * 32 + "1") == 1
    nested: Any = ()
    for _ in range(31):
        nested = (nested,)
    assert ev("[" * 32 + "]" * 32) == nested


@pytest.mark.parametrize(
    ("text", "column"),
    [
        (nested_parens(33), 32),
        ("not " * 33 + "true", 128),
        ("-" * 33 + "1", 32),
        ("[" * 33 + "]" * 33, 32),
        ("age(" * 33 + "1" + ")" * 33, 32 * 4 + 3),
        ("(" * 16 + "[" * 16 + "-1" + "]" * 16 + ")" * 16, 32),
        (nested_parens(900), 32),
        ("-" * 1999 + "1", 32),
    ],
)
def test_nesting_beyond_the_limit_is_rejected(text: str, column: int) -> None:
    err = error(text)
    assert "nested deeper than 32 levels" in err.message
    assert err.column == column


def test_length_limit() -> None:
    text = ("1+" * 1000)[:-1] + " "
    assert len(text) == 2000
    assert ev(text) == 1000
    err = error(text + " ")
    assert err.column == 2000
    assert "longer than 2000 characters" in err.message


def test_long_flat_boolean_chain_evaluates() -> None:
    text = " and ".join(["state.x"] * 160)
    assert len(text) <= 2000
    assert ev(text, state={"x": 1}) is True
    assert ev(text.replace("and", "or"), state={"x": 0}) is False


# --------------------------------------------------------------------------- the Expression object


def test_fields_lists_every_path_read() -> None:
    expr = compile_(
        "state.orders_count == 1 and event.amount >= 100 "
        "or age(state.last_order_at) > 30d and rfm.segment in [state.profile.tier, 'x']"
    )
    assert expr.fields == {
        "state.orders_count",
        "event.amount",
        "state.last_order_at",
        "rfm.segment",
        "state.profile.tier",
    }
    assert compile_("1 + 2").fields == frozenset()
    assert compile_("event").fields == {"event"}


def test_expression_is_immutable_and_reusable() -> None:
    expr = compile_("state.orders_count == 1 and event.amount >= 100")
    assert expr.source == "state.orders_count == 1 and event.amount >= 100"
    with pytest.raises(dataclasses.FrozenInstanceError):
        expr.source = "true"  # type: ignore[misc]
    first = DictScope({"state": {"orders_count": 1}, "event": {"amount": 150}})
    second = DictScope({"state": {"orders_count": 2}, "event": {"amount": 150}})
    assert [expr.evaluate(s) for s in (first, second, first)] == [True, False, True]
    assert expr == compile_("state.orders_count == 1 and event.amount >= 100")
    assert "state.orders_count" in repr(expr)


def test_constant_subexpressions_are_folded_without_touching_the_scope() -> None:
    class NoScope:
        def resolve(self, path: tuple[str, ...]) -> Any:
            raise AssertionError(path)

        def call(self, name: str, args: tuple[Any, ...]) -> Any:
            raise AssertionError(name)

    assert compile_("(1 + 2) * 3d == 9d and not (1 > 2)").evaluate(NoScope()) is True


# --------------------------------------------------------------------------- parse_duration


@pytest.mark.parametrize(
    "text",
    ["", "30", "d", "30 d", "30D", "30days", "1.5", "-1d", "1e3s", "1h30m", "1.d", ".5h", "3y"],
)
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


def test_parse_duration_range_and_whitespace() -> None:
    assert parse_duration(" 7d\n") == timedelta(days=7)
    with pytest.raises(ValueError, match="out of range"):
        parse_duration("99999999999999w")
    with pytest.raises(ValueError):
        parse_duration("1" * 5000 + "s")


# --------------------------------------------------------------------------- properties

PATHS = [
    "event.amount",
    "event.type",
    "state.orders_count",
    "state.last_order_at",
    "state.profile.tier",
    "state.tags",
    "rfm.score",
]
LITERALS = [
    "0",
    "1",
    "2.5",
    "'gold'",
    r"'a\'b'",
    "30d",
    "1.5h",
    "true",
    "false",
    "null",
    "[]",
    "[1, 'x', null]",
]
BINARY = ["or", "and", "==", "!=", "<", "<=", ">", ">=", "in", "not in", "+", "-", "*", "/"]


@st.composite
def expressions(draw: st.DrawFn, depth: int = 4) -> str:
    if depth == 0 or draw(st.integers(0, 3)) == 0:
        return draw(st.sampled_from(PATHS + LITERALS))
    shape = draw(st.sampled_from(["binary", "binary", "binary", "not", "neg", "list", "call"]))
    if shape == "binary":
        left = draw(expressions(depth - 1))
        right = draw(expressions(depth - 1))
        return f"({left} {draw(st.sampled_from(BINARY))} {right})"
    if shape == "not":
        return f"(not {draw(expressions(depth - 1))})"
    if shape == "neg":
        return f"-({draw(expressions(depth - 1))})"
    items = draw(st.lists(expressions(depth - 1), max_size=3))
    if shape == "list":
        return "[" + ", ".join(items) + "]"
    name, arity = draw(st.sampled_from([("age", 1), ("now", 0), ("coalesce", 2)]))
    args = (items + [draw(expressions(depth - 1)) for _ in range(arity)])[:arity]
    return f"{name}({', '.join(args)})"


scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.sampled_from([0, -1, 10**400, -(10**400)])
    | st.floats()
    | st.text(max_size=4)
    | st.datetimes()
    | st.datetimes(timezones=st.just(UTC))
    | st.sampled_from([datetime.min, datetime.max, datetime.max.replace(tzinfo=UTC)])
    | st.timedeltas()
    | st.sampled_from([timedelta.min, timedelta.max, timedelta(0)])
    | st.dates()
    | st.decimals()
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.tuples(inner, inner)
        | st.frozensets(st.text(max_size=2) | st.integers(), max_size=3)
        | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=6,
)


class RandomScope:
    def __init__(self, data: dict[str, Any], results: dict[str, Any]) -> None:
        self.data = data
        self.results = results

    def resolve(self, path: tuple[str, ...]) -> Any:
        return self.data.get(".".join(path))

    def call(self, name: str, args: tuple[Any, ...]) -> Any:
        return self.results[name]


@settings(max_examples=400, deadline=None)
@given(
    text=expressions(),
    data=st.fixed_dictionaries({path: values for path in PATHS}),
    results=st.fixed_dictionaries({name: values for name in FUNCTIONS}),
)
def test_evaluation_never_raises(text: str, data: dict[str, Any], results: dict[str, Any]) -> None:
    expr = compile_(text)
    expr.evaluate(RandomScope(data, results))


@settings(max_examples=300, deadline=None)
@given(text=expressions(), data=st.fixed_dictionaries({path: values for path in PATHS}))
def test_logical_and_comparison_results_are_booleans(text: str, data: dict[str, Any]) -> None:
    for wrapped in (f"not ({text})", f"({text}) and true", f"({text}) == null"):
        result = compile_(wrapped).evaluate(RandomScope(data, dict.fromkeys(FUNCTIONS)))
        assert type(result) is bool


TOKENS = [*PATHS, *LITERALS, *BINARY, "(", ")", "[", "]", ",", ".", "'", '"', "\\", "age(", "x"]


@settings(max_examples=400, deadline=None)
@given(
    text=st.one_of(
        st.text(max_size=40),
        st.lists(st.sampled_from(TOKENS), max_size=12).map(" ".join),
        st.lists(st.sampled_from(TOKENS), max_size=12).map("".join),
    )
)
def test_compiling_arbitrary_text_raises_only_expression_error(text: str) -> None:
    try:
        expr = compile_(text)
    except ExpressionError as err:
        assert 0 <= err.column <= len(text)
        return
    expr.evaluate(RandomScope({}, dict.fromkeys(FUNCTIONS)))
