"""The rules expression language: small, safe conditions for declarative YAML rules.

A condition such as ``state.orders_count == 1 and event.amount >= 100`` is
compiled once, when the rules file is loaded, into a tree of Python closures and
then evaluated against a `Scope` for every event. There is no ``eval``, no
attribute access on Python objects and no way to run code: the only things an
expression can reach are the dotted paths and the whitelisted functions that
the caller's `Scope` chooses to provide.

Reference
=========

Values
------
- Numbers: ``10``, ``2.5`` (no exponent, no leading sign; ``-5`` is unary minus).
- Strings: ``'gold'`` or ``"gold"``. Inside, ``\\'``, ``\\"`` and ``\\\\`` stand for a
  quote and a backslash; any other backslash escape is an error.
- Durations: a number immediately followed by a unit, ``45s``, ``90m``, ``1h``,
  ``1.5h``, ``30d``, ``2w`` (seconds, minutes, hours, days, weeks). No space
  between number and unit, and nothing after the unit (``30days`` is an error).
- ``true``, ``false``, ``null``.
- Lists: ``["gold", "silver"]``, ``[]``; a trailing comma is allowed. Lists
  evaluate to tuples.
- Fields: dotted paths such as ``event.amount`` or ``state.profile.tier``.
  Segments are identifiers (``[A-Za-z_][A-Za-z0-9_]*``); the first segment must be
  one of the roots the caller allows (e.g. ``event``, ``state``, ``rfm``). A path
  that does not exist in the data is ``null``.
- Function calls: ``age(state.last_order_at)``. Only whitelisted functions, with
  the number of arguments the caller declares, are accepted.

Keywords (``and or not in true false null``) are lowercase and reserved: they
cannot be used as field names or path segments. Whitespace (including newlines)
is free between tokens.

Operators, from lowest to highest precedence
--------------------------------------------
=====================================  =========================================
``a or b``                             true if either operand is truthy
``a and b``                            true if both operands are truthy
``not a``                              true if ``a`` is not truthy
``== != < <= > >= in``, ``not in``     comparisons; they do not chain
``+ -``                                addition, subtraction (left to right)
``* /``                                multiplication, division (left to right)
``-a``                                 negation
=====================================  =========================================

Comparisons cannot be chained: ``a < b < c`` is an error, write
``a < b and b < c``. Parentheses group as usual.

Semantics
---------
A rule must never crash a worker on odd data, so evaluation never raises for
any value the scope returns: what cannot be computed is ``null`` (arithmetic)
or ``false`` (comparisons). Exceptions raised by the scope itself (its
``resolve`` or ``call``) are the caller's and propagate unchanged.

- Truthiness: ``null``, ``false``, ``0``, ``0.0``, ``""``, empty lists and maps and
  a zero duration are falsy; everything else is truthy.
- ``and`` / ``or`` short-circuit and always return ``true`` or ``false`` (never
  an operand). ``not null`` is ``true``.
- Types: numbers (int and float, but *not* booleans) compare with numbers,
  strings with strings, durations with durations, datetimes with datetimes,
  dates with dates. Any other pairing is simply unequal and unordered.
- ``==`` / ``!=`` compare values normally: ``null == null`` is true,
  ``null == 0`` is false, ``1 == true`` is false (a boolean is not a number),
  ``1 == 1.0`` is true. Lists are equal when their items are, pairwise.
- ``< <= > >=`` are false whenever either side is ``null``, the types are
  incompatible (``1 < "2"``), or the values cannot be ordered (a naive and an
  aware datetime, NaN). Note that ``not (a < b)`` is therefore not ``a >= b``.
- ``x in list`` is true when some item equals ``x`` (with ``==`` above);
  ``x in string`` is a substring test (``x`` must be a string); ``x in null`` and
  ``x in <anything else>`` are false. ``x not in y`` is exactly
  ``not (x in y)``, so ``x not in null`` is true.
- Arithmetic with ``null`` gives ``null``; so does any pairing not listed here:

  ==========================  ==========================================
  number + - * / number       number (``/`` is true division)
  duration + - duration       duration
  datetime + - duration       datetime (also duration + datetime)
  datetime - datetime         duration
  duration * number           duration (also number * duration)
  duration / number           duration
  duration / duration         number (float)
  - number, - duration        negation
  ==========================  ==========================================

  Division by zero, overflow and mixing naive with aware datetimes give
  ``null``. Strings and lists do not support arithmetic.

Limits
------
An expression may be at most 2000 characters long and nested at most 32 levels
deep (each parenthesis, list, function call, ``not`` and unary minus opens a
level). Longer or deeper input is rejected with `ExpressionError`, as is every
syntax error, unknown field root, unknown function or wrong number of
arguments; the error carries the 0-based column (character offset in the
source) of the offending token.
"""

from __future__ import annotations

import difflib
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from numbers import Real
from typing import Any, Final, Protocol

__all__ = [
    "MAX_DEPTH",
    "MAX_LENGTH",
    "Expression",
    "ExpressionError",
    "Scope",
    "compile_expression",
    "parse_duration",
]

MAX_LENGTH: Final = 2000
MAX_DEPTH: Final = 32

KEYWORDS: Final = frozenset({"and", "or", "not", "in", "true", "false", "null"})


class ExpressionError(ValueError):
    """A rule expression that cannot be compiled, with the 0-based column of the problem."""

    def __init__(self, message: str, column: int) -> None:
        super().__init__(f"column {column}: {message}")
        self.message = message
        self.column = column

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.message, self.column))


class Scope(Protocol):
    """What an expression can see: the values of dotted paths and whitelisted functions."""

    def resolve(self, path: tuple[str, ...]) -> Any:
        """The value at a dotted path (``("state", "orders_count")``), None when absent."""
        ...

    def call(self, name: str, args: tuple[Any, ...]) -> Any:
        """Call a whitelisted function; the arity was checked at compile time."""
        ...


_Fn = Callable[[Scope], Any]


@dataclass(frozen=True, slots=True)
class Expression:
    """A compiled expression: immutable, reusable, safe to share between threads."""

    source: str
    _fn: _Fn = field(repr=False, compare=False)
    _fields: frozenset[str] = field(repr=False, compare=False)

    def evaluate(self, scope: Scope) -> Any:
        return self._fn(scope)

    @property
    def fields(self) -> frozenset[str]:
        """The dotted paths the expression reads, e.g. ``{"event.amount"}``."""
        return self._fields


# --------------------------------------------------------------------------- durations

_UNITS: Final = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_DURATION_RE: Final = re.compile(r"([0-9]+(?:\.[0-9]+)?)([smhdw])")


def _duration(number: str, unit: str) -> timedelta:
    """Raises OverflowError or ValueError when out of range."""
    amount: float | int = float(number) if "." in number else int(number)
    return timedelta(**{_UNITS[unit]: amount})


def parse_duration(text: str) -> timedelta:
    """``"30d"``, ``"1h"``, ``"90m"``, ``"45s"``, ``"2w"``, ``"1.5h"`` -> timedelta.

    Surrounding whitespace is ignored; anything else raises ValueError.
    """
    match = _DURATION_RE.fullmatch(text.strip()) if len(text) <= 100 else None
    if match is None:
        raise ValueError(
            f"invalid duration {text!r}: expected a number followed by "
            "s, m, h, d or w (e.g. 30d, 1.5h)"
        )
    try:
        return _duration(match.group(1), match.group(2))
    except (OverflowError, ValueError):
        raise ValueError(f"duration out of range: {text!r}") from None


# --------------------------------------------------------------------------- value kinds

_NULL, _BOOL, _NUM, _STR, _TD, _DT, _DATE, _LIST, _SET, _DICT, _OTHER = range(11)

_KIND_OF_TYPE: Final[dict[type, int]] = {
    type(None): _NULL,
    bool: _BOOL,
    int: _NUM,
    float: _NUM,
    Decimal: _NUM,
    str: _STR,
    timedelta: _TD,
    datetime: _DT,
    date: _DATE,
    list: _LIST,
    tuple: _LIST,
    set: _SET,
    frozenset: _SET,
    dict: _DICT,
}
_ORDERABLE: Final = frozenset({_NUM, _STR, _TD, _DT, _DATE})
# Exact types whose `==` / `<` between two values of the same type never raises
# and matches the language's semantics.
_PLAIN_EQ: Final = frozenset({int, float, str, bool, type(None), timedelta, datetime, date})
_PLAIN_ORDER: Final = frozenset({int, float, str, timedelta})


def _slow_kind(value: Any) -> int:
    if isinstance(value, bool):
        return _BOOL
    if isinstance(value, int | float | Decimal | Real):
        return _NUM
    if isinstance(value, str):
        return _STR
    if isinstance(value, datetime):
        return _DT
    if isinstance(value, date):
        return _DATE
    if isinstance(value, timedelta):
        return _TD
    if isinstance(value, list | tuple):
        return _LIST
    if isinstance(value, set | frozenset):
        return _SET
    if isinstance(value, Mapping):
        return _DICT
    return _OTHER


def _kind(value: Any) -> int:
    kind = _KIND_OF_TYPE.get(type(value))
    return _slow_kind(value) if kind is None else kind


def _truthy(value: Any) -> bool:
    if value is True:
        return True
    if value is None or value is False:
        return False
    try:
        return bool(value)
    except Exception:
        return False


# --------------------------------------------------------------------------- comparisons


def _eq(a: Any, b: Any) -> bool:
    ta = type(a)
    if ta is type(b) and ta in _PLAIN_EQ:
        return bool(a == b)
    kind = _kind(a)
    if kind != _kind(b):
        return False
    try:
        if kind == _LIST:
            return len(a) == len(b) and all(_eq(x, y) for x, y in zip(a, b, strict=True))
        if kind == _DICT:
            return bool(a.keys() == b.keys()) and all(_eq(a[k], b[k]) for k in a)
        return bool(a == b)
    except Exception:  # includes RecursionError on absurdly nested data
        return False


def _ne(a: Any, b: Any) -> bool:
    return not _eq(a, b)


def _ordering(op: Callable[[Any, Any], Any]) -> Callable[[Any, Any], bool]:
    def compare(a: Any, b: Any) -> bool:
        ta = type(a)
        if ta is type(b) and ta in _PLAIN_ORDER:
            return bool(op(a, b))
        kind = _kind(a)
        if kind != _kind(b) or kind not in _ORDERABLE:
            return False
        try:
            return bool(op(a, b))
        except Exception:  # naive vs aware datetimes, NaN decimals, odd subclasses
            return False

    return compare


_lt = _ordering(operator.lt)
_le = _ordering(operator.le)
_gt = _ordering(operator.gt)
_ge = _ordering(operator.ge)


def _in(item: Any, container: Any) -> bool:
    kind = _kind(container)
    if kind in (_LIST, _SET):
        try:
            return any(_eq(item, element) for element in container)
        except Exception:
            return False
    if kind == _STR:
        if type(item) is str or _kind(item) == _STR:
            try:
                return bool(item in container)
            except Exception:
                return False
        return False
    return False


def _not_in(item: Any, container: Any) -> bool:
    return not _in(item, container)


_COMPARE: Final[dict[str, Callable[[Any, Any], bool]]] = {
    "==": _eq,
    "!=": _ne,
    "<": _lt,
    "<=": _le,
    ">": _gt,
    ">=": _ge,
    "in": _in,
    "not in": _not_in,
}
_PY_ORDER: Final[dict[str, Callable[[Any, Any], Any]]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


# --------------------------------------------------------------------------- arithmetic


def _arithmetic(
    op: Callable[[Any, Any], Any], allowed: frozenset[tuple[int, int]]
) -> Callable[[Any, Any], Any]:
    def apply(a: Any, b: Any) -> Any:
        ta = type(a)
        tb = type(b)
        if (ta is int or ta is float) and (tb is int or tb is float):
            try:
                return op(a, b)
            except Exception:  # division by zero, int too large for a float
                return None
        if (_kind(a), _kind(b)) not in allowed:
            return None
        try:
            return op(a, b)
        except Exception:  # overflow, naive - aware, NaN durations, ...
            return None

    return apply


_ARITHMETIC: Final[dict[str, Callable[[Any, Any], Any]]] = {
    "+": _arithmetic(operator.add, frozenset({(_NUM, _NUM), (_TD, _TD), (_DT, _TD), (_TD, _DT)})),
    "-": _arithmetic(operator.sub, frozenset({(_NUM, _NUM), (_TD, _TD), (_DT, _TD), (_DT, _DT)})),
    "*": _arithmetic(operator.mul, frozenset({(_NUM, _NUM), (_TD, _NUM), (_NUM, _TD)})),
    "/": _arithmetic(operator.truediv, frozenset({(_NUM, _NUM), (_TD, _NUM), (_TD, _TD)})),
}


def _neg(value: Any) -> Any:
    kind = _kind(value)
    if kind in (_NUM, _TD):
        try:
            return -value
        except Exception:  # -timedelta.min overflows
            return None
    return None


# --------------------------------------------------------------------------- tokens


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # "num" | "str" | "name" | "kw" | "op" | "eof"
    value: Any
    col: int
    text: str


_NUMBER_RE: Final = re.compile(r"([0-9]+(?:\.[0-9]+)?)([smhdw]?)([A-Za-z0-9_]*)")
_NAME_RE: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_OP_RE: Final = re.compile(r"==|!=|<=|>=|[<>+\-*/()\[\],.]")
_ESCAPES: Final = {"\\": "\\", "'": "'", '"': '"'}
_HINTS: Final = {
    "&&": "use 'and'",
    "&": "use 'and'",
    "||": "use 'or'",
    "|": "use 'or'",
    "!": "use 'not'",
    "=": "use '==' to compare",
}


def _read_string(text: str, start: int) -> tuple[str, int]:
    quote = text[start]
    parts: list[str] = []
    pos = start + 1
    while pos < len(text):
        ch = text[pos]
        if ch == quote:
            return "".join(parts), pos + 1
        if ch == "\\":
            escaped = text[pos + 1] if pos + 1 < len(text) else ""
            if escaped not in _ESCAPES:
                raise ExpressionError(
                    f"invalid escape '\\{escaped}' in string (only \\', \\\" and \\\\ are allowed)",
                    pos,
                )
            parts.append(_ESCAPES[escaped])
            pos += 2
            continue
        parts.append(ch)
        pos += 1
    raise ExpressionError("unterminated string", start)


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    end = len(text)
    while pos < end:
        ch = text[pos]
        if ch.isspace():
            pos += 1
            continue
        if ch == "'" or ch == '"':
            string, after = _read_string(text, pos)
            tokens.append(_Token("str", string, pos, text[pos:after]))
            pos = after
            continue
        match = _NUMBER_RE.match(text, pos)
        if match is not None:
            number, unit, tail = match.groups()
            if tail:
                raise ExpressionError(
                    f"invalid number or duration {match.group(0)!r} "
                    "(durations are a number and one of s, m, h, d, w: 30d, 1.5h)",
                    pos,
                )
            try:
                value: Any = (
                    _duration(number, unit)
                    if unit
                    else (float(number) if "." in number else int(number))
                )
            except (OverflowError, ValueError):
                raise ExpressionError(f"number out of range: {match.group(0)}", pos) from None
            tokens.append(_Token("num", value, pos, match.group(0)))
            pos = match.end()
            continue
        match = _NAME_RE.match(text, pos)
        if match is not None:
            word = match.group(0)
            tokens.append(_Token("kw" if word in KEYWORDS else "name", word, pos, word))
            pos = match.end()
            continue
        match = _OP_RE.match(text, pos)
        if match is not None:
            tokens.append(_Token("op", match.group(0), pos, match.group(0)))
            pos = match.end()
            continue
        pair = text[pos : pos + 2]
        hint = _HINTS.get(pair) if pair in ("&&", "||") else _HINTS.get(ch)
        raise ExpressionError(f"unexpected character {ch!r}" + (f"; {hint}" if hint else ""), pos)
    tokens.append(_Token("eof", None, end, ""))
    return tokens


# --------------------------------------------------------------------------- compiled nodes


@dataclass(frozen=True, slots=True)
class _Node:
    fn: _Fn
    const: bool = False
    value: Any = None
    boolean: bool = False  # always evaluates to True or False
    path: tuple[str, ...] | None = None  # set when the node just reads this path


class _NoScope:
    """Stands in for the scope when folding constants: never consulted."""

    def resolve(self, path: tuple[str, ...]) -> Any:
        raise AssertionError("constant folding touched the scope")

    def call(self, name: str, args: tuple[Any, ...]) -> Any:
        raise AssertionError("constant folding touched the scope")


_NO_SCOPE: Final = _NoScope()


def _const(value: Any) -> _Node:
    return _Node(lambda scope: value, const=True, value=value, boolean=type(value) is bool)


def _folded(node: _Node, *children: _Node) -> _Node:
    """Evaluate `node` at compile time when all its inputs are constants."""
    if all(child.const for child in children):
        return _const(node.fn(_NO_SCOPE))
    return node


def _compare_node(op: str, left: _Node, right: _Node) -> _Node:
    general = _COMPARE[op]
    lf = left.fn
    # Reading a path is by far the most common left operand: resolve it inline
    # rather than through one more closure call.
    path = left.path
    c = right.value
    if right.const and type(c) in (int, float) and op in _PY_ORDER:
        py_op = _PY_ORDER[op]

        def order_const(scope: Scope) -> bool:
            v = lf(scope) if path is None else scope.resolve(path)
            t = type(v)
            if t is int or t is float:
                result: bool = py_op(v, c)  # int/float comparisons always give a bool
                return result
            return general(v, c)

        return _folded(_Node(order_const, boolean=True), left, right)
    if right.const and type(c) in (int, float, str) and op in ("==", "!="):
        tc = type(c)
        numeric = tc is not str
        negate = op == "!="

        def eq_const(scope: Scope) -> bool:
            v = lf(scope) if path is None else scope.resolve(path)
            t = type(v)
            if t is tc or (numeric and (t is int or t is float)):
                result: bool = (v != c) if negate else (v == c)
                return result
            return _ne(v, c) if negate else _eq(v, c)

        return _folded(_Node(eq_const, boolean=True), left, right)
    if (
        right.const
        and op in ("in", "not in")
        and type(c) is tuple
        and all(type(item) is str for item in c)
    ):
        members = frozenset(c)
        negate = op == "not in"

        def in_strings(scope: Scope) -> bool:
            v = lf(scope) if path is None else scope.resolve(path)
            found = v in members if type(v) is str else _in(v, c)
            return not found if negate else found

        return _folded(_Node(in_strings, boolean=True), left, right)
    rf = right.fn
    return _folded(_Node(lambda scope: general(lf(scope), rf(scope)), boolean=True), left, right)


def _arithmetic_node(first: _Node, rest: list[tuple[str, _Node]]) -> _Node:
    ff = first.fn
    steps = [(_ARITHMETIC[op], node.fn) for op, node in rest]
    if len(steps) == 1:
        apply, gf = steps[0]
        node = _Node(lambda scope: apply(ff(scope), gf(scope)))
    else:

        def chain(scope: Scope) -> Any:
            value = ff(scope)
            for apply, fn in steps:
                value = apply(value, fn(scope))
            return value

        node = _Node(chain)
    return _folded(node, first, *(n for _, n in rest))


def _logic_node(conjunction: bool, operands: list[_Node]) -> _Node:
    fns = [n.fn for n in operands]
    if len(fns) == 2 and all(n.boolean for n in operands):
        a, b = fns
        fn: _Fn = (
            (lambda scope: a(scope) and b(scope))
            if conjunction
            else (lambda scope: a(scope) or b(scope))
        )
    elif len(fns) == 2:
        a, b = fns
        fn = (
            (lambda scope: _truthy(a(scope)) and _truthy(b(scope)))
            if conjunction
            else (lambda scope: _truthy(a(scope)) or _truthy(b(scope)))
        )
    elif conjunction:

        def fn(scope: Scope) -> bool:
            return all(_truthy(f(scope)) for f in fns)

    else:

        def fn(scope: Scope) -> bool:
            return any(_truthy(f(scope)) for f in fns)

    return _folded(_Node(fn, boolean=True), *operands)


def _not_node(operand: _Node) -> _Node:
    f = operand.fn
    if operand.boolean:
        return _folded(_Node(lambda scope: not f(scope), boolean=True), operand)
    return _folded(_Node(lambda scope: not _truthy(f(scope)), boolean=True), operand)


def _list_node(items: list[_Node]) -> _Node:
    fns = [n.fn for n in items]
    return _folded(_Node(lambda scope: tuple([f(scope) for f in fns])), *items)


def _call_node(name: str, args: list[_Node]) -> _Node:
    fns = [n.fn for n in args]
    if not fns:
        return _Node(lambda scope: scope.call(name, ()))
    if len(fns) == 1:
        (f,) = fns
        return _Node(lambda scope: scope.call(name, (f(scope),)))
    return _Node(lambda scope: scope.call(name, tuple([f(scope) for f in fns])))


def _path_node(path: tuple[str, ...]) -> _Node:
    return _Node(lambda scope: scope.resolve(path), path=path)


# --------------------------------------------------------------------------- parser

_COMPARISON_OPS: Final = frozenset({"==", "!=", "<", "<=", ">", ">="})


def _describe(token: _Token) -> str:
    if token.kind == "eof":
        return "end of expression"
    if token.kind == "str":
        return f"string {token.text}"
    if token.kind == "num":
        return f"number {token.text}"
    return repr(token.text)


def _suggest(word: str, options: frozenset[str] | Mapping[str, Any]) -> str:
    close = difflib.get_close_matches(word, sorted(options), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


class _Parser:
    def __init__(
        self,
        tokens: list[_Token],
        roots: frozenset[str],
        functions: Mapping[str, tuple[int, int]],
        known_field: Callable[[str], bool] | None,
    ) -> None:
        self.tokens = tokens
        self.pos = 0
        self.depth = 0
        self.roots = roots
        self.functions = functions
        self.known_field = known_field
        self.fields: set[str] = set()

    # -- token helpers

    def peek(self, ahead: int = 0) -> _Token:
        return self.tokens[min(self.pos + ahead, len(self.tokens) - 1)]

    def advance(self) -> _Token:
        token = self.tokens[self.pos]
        if token.kind != "eof":
            self.pos += 1
        return token

    def at(self, kind: str, value: str) -> bool:
        token = self.tokens[self.pos]
        return token.kind == kind and token.value == value

    def enter(self, token: _Token) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ExpressionError(f"expression nested deeper than {MAX_DEPTH} levels", token.col)

    def close(self, opener: _Token, closer: str) -> None:
        token = self.peek()
        if token.kind == "op" and token.value == closer:
            self.advance()
            return
        if token.kind == "eof":
            raise ExpressionError(f"unclosed '{opener.value}'", opener.col)
        raise ExpressionError(f"expected '{closer}' but found {_describe(token)}", token.col)

    # -- grammar

    def parse(self) -> _Node:
        if self.peek().kind == "eof":
            raise ExpressionError("empty expression", 0)
        node = self.parse_or()
        token = self.peek()
        if token.kind != "eof":
            raise ExpressionError(self.unexpected_after_value(token), token.col)
        return node

    def unexpected_after_value(self, token: _Token) -> str:
        message = f"unexpected {_describe(token)}"
        if token.kind == "op" and token.value in ("(", "["):
            return message + " (only functions can be called; paths cannot be indexed)"
        if token.kind == "op" and token.value in (")", "]"):
            return message + " (no matching opening bracket)"
        if token.kind == "name" and token.value.lower() in KEYWORDS:
            return message + f" (keywords are lowercase: '{token.value.lower()}')"
        return message + "; expected an operator or the end of the expression"

    def parse_or(self) -> _Node:
        operands = [self.parse_and()]
        while self.at("kw", "or"):
            self.advance()
            operands.append(self.parse_and())
        return operands[0] if len(operands) == 1 else _logic_node(False, operands)

    def parse_and(self) -> _Node:
        operands = [self.parse_not()]
        while self.at("kw", "and"):
            self.advance()
            operands.append(self.parse_not())
        return operands[0] if len(operands) == 1 else _logic_node(True, operands)

    def parse_not(self) -> _Node:
        if self.at("kw", "not"):
            token = self.advance()
            self.enter(token)
            operand = self.parse_not()
            self.depth -= 1
            return _not_node(operand)
        return self.parse_comparison()

    def comparison_operator(self) -> tuple[str, _Token] | None:
        token = self.peek()
        if token.kind == "op" and token.value in _COMPARISON_OPS:
            return token.value, token
        if token.kind == "kw" and token.value == "in":
            return "in", token
        if token.kind == "kw" and token.value == "not":
            following = self.peek(1)
            if following.kind == "kw" and following.value == "in":
                return "not in", token
        return None

    def parse_comparison(self) -> _Node:
        left = self.parse_additive()
        found = self.comparison_operator()
        if found is None:
            return left
        op, _ = found
        self.advance()
        if op == "not in":
            self.advance()
        right = self.parse_additive()
        chained = self.comparison_operator()
        if chained is not None:
            raise ExpressionError(
                f"comparisons cannot be chained: use 'and' (a {op} b and b {chained[0]} c)",
                chained[1].col,
            )
        return _compare_node(op, left, right)

    def parse_additive(self) -> _Node:
        first = self.parse_multiplicative()
        rest: list[tuple[str, _Node]] = []
        while self.peek().kind == "op" and self.peek().value in ("+", "-"):
            op = self.advance().value
            rest.append((op, self.parse_multiplicative()))
        return _arithmetic_node(first, rest) if rest else first

    def parse_multiplicative(self) -> _Node:
        first = self.parse_unary()
        rest: list[tuple[str, _Node]] = []
        while self.peek().kind == "op" and self.peek().value in ("*", "/"):
            op = self.advance().value
            rest.append((op, self.parse_unary()))
        return _arithmetic_node(first, rest) if rest else first

    def parse_unary(self) -> _Node:
        if self.at("op", "-"):
            token = self.advance()
            self.enter(token)
            operand = self.parse_unary()
            self.depth -= 1
            f = operand.fn
            return _folded(_Node(lambda scope: _neg(f(scope))), operand)
        return self.parse_atom()

    def parse_atom(self) -> _Node:
        token = self.peek()
        kind, value = token.kind, token.value
        if kind == "num" or kind == "str":
            self.advance()
            return _const(value)
        if kind == "kw" and value in ("true", "false", "null"):
            self.advance()
            return _const({"true": True, "false": False, "null": None}[value])
        if kind == "op" and value == "(":
            self.advance()
            self.enter(token)
            inner = self.parse_or()
            self.close(token, ")")
            self.depth -= 1
            return inner
        if kind == "op" and value == "[":
            return self.parse_list(token)
        if kind == "name":
            if self.peek(1).kind == "op" and self.peek(1).value == "(":
                return self.parse_call(token)
            return self.parse_path(token)
        if kind == "eof":
            raise ExpressionError("expected a value but the expression ended", token.col)
        raise ExpressionError(f"expected a value but found {_describe(token)}", token.col)

    def parse_list(self, opener: _Token) -> _Node:
        self.advance()
        self.enter(opener)
        items: list[_Node] = []
        while not self.at("op", "]"):
            if self.peek().kind == "eof":
                raise ExpressionError("unclosed '['", opener.col)
            items.append(self.parse_or())
            if self.at("op", ","):
                self.advance()
            else:
                break
        self.close(opener, "]")
        self.depth -= 1
        return _list_node(items)

    def parse_call(self, name_token: _Token) -> _Node:
        name = name_token.value
        if name not in self.functions:
            raise ExpressionError(
                f"unknown function '{name}'" + _suggest(name, self.functions), name_token.col
            )
        self.advance()
        opener = self.advance()
        self.enter(opener)
        args: list[_Node] = []
        while not self.at("op", ")"):
            if self.peek().kind == "eof":
                raise ExpressionError("unclosed '('", opener.col)
            args.append(self.parse_or())
            if self.at("op", ","):
                self.advance()
            else:
                break
        self.close(opener, ")")
        self.depth -= 1
        low, high = self.functions[name]
        if not low <= len(args) <= high:
            expected = str(low) if low == high else f"{low} to {high}"
            plural = "" if expected == "1" else "s"
            raise ExpressionError(
                f"function '{name}' takes {expected} argument{plural}, got {len(args)}",
                name_token.col,
            )
        return _call_node(name, args)

    def parse_path(self, first: _Token) -> _Node:
        self.advance()
        parts = [first.value]
        while self.at("op", "."):
            dot = self.advance()
            segment = self.peek()
            if segment.kind != "name":
                reserved = " (keywords are reserved)" if segment.kind == "kw" else ""
                raise ExpressionError(
                    f"expected a field name after '.' but found {_describe(segment)}{reserved}",
                    segment.col if segment.kind != "eof" else dot.col,
                )
            parts.append(self.advance().value)
        dotted = ".".join(parts)
        root = parts[0]
        if root not in self.roots:
            if root.lower() in KEYWORDS and len(parts) == 1:
                hint = f" (keywords are lowercase: '{root.lower()}')"
            elif root in self.functions and len(parts) == 1:
                hint = f" ('{root}' is a function: call it as {root}(...))"
            else:
                hint = _suggest(root, self.roots)
            raise ExpressionError(f"unknown field '{dotted}'{hint}", first.col)
        if self.known_field is not None and not self.known_field(dotted):
            raise ExpressionError(f"unknown field '{dotted}'", first.col)
        self.fields.add(dotted)
        return _path_node(tuple(parts))


def compile_expression(
    text: str,
    *,
    roots: frozenset[str],
    functions: Mapping[str, tuple[int, int]],
    known_field: Callable[[str], bool] | None = None,
) -> Expression:
    """Compile `text` into a reusable `Expression`, or raise `ExpressionError`.

    `roots` are the allowed first path segments (``{"event", "state", "rfm"}``);
    `functions` maps each callable name to its (min, max) number of arguments.
    `known_field`, when given, is asked about every dotted path (``"state.tier"``)
    so that typos below the root are also reported with their column.
    """
    if len(text) > MAX_LENGTH:
        raise ExpressionError(f"expression longer than {MAX_LENGTH} characters", MAX_LENGTH)
    parser = _Parser(_tokenize(text), frozenset(roots), functions, known_field)
    node = parser.parse()
    return Expression(text, node.fn, frozenset(parser.fields))
