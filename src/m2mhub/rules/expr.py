"""A small, safe expression language for rules: parsed with :mod:`ast`, never ``eval``-ed.

An expression is parsed once (Python's own grammar, ``mode="eval"``), every
node is checked against a whitelist, and the tree is compiled into plain
closures. Nothing reaches Python's ``eval``, attribute lookup or imports: a
name can only read a telemetry value, a call can only reach the functions in
:data:`FUNCTIONS`.

What is allowed (docs/rules.md lists it for users):

- numbers, strings in quotes, ``true``/``false`` (or ``True``/``False``), ``null``;
- ``key`` (a value of the device being evaluated) and ``alias.key`` (a value of
  another device named in the rule's ``devices``);
- ``+ - * / // %`` and ``**`` (exponent at most 100), unary ``-`` and ``not``;
- comparisons ``== != < <= > >=`` (chains like ``10 < t < 20`` too), ``in`` and
  ``not in`` over a literal list ``[...]``;
- ``and``, ``or``, ``x if cond else y``;
- functions ``abs min max round sqrt``.

A value that is missing (the device never sent that key) makes the whole
evaluation :class:`MissingValue`; the engine then leaves the rule's state as it
was instead of guessing.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable, Mapping
from typing import Any, Final

from m2mhub.core.errors import PayloadError

#: Values an expression sees and returns.
Scalar = float | int | bool | str | None

#: alias -> key -> value; the evaluated device's own keys live under :data:`SELF`.
Values = Mapping[str, Mapping[str, Scalar]]

SELF: Final = ""
MAX_LENGTH: Final = 2000
MAX_EXPONENT: Final = 100


class ExpressionError(PayloadError):
    """An expression that cannot be parsed or uses something not allowed."""

    code = "invalid_expression"


class MissingValue(Exception):
    """A name in the expression has no value yet."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


class EvaluationError(Exception):
    """The expression failed on these values (a string compared with a number, 1/0)."""


Node = Callable[[Values], Any]

_BINARY: Final[dict[type[ast.operator], Callable[[Any, Any], Any]]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
}
_COMPARE: Final[dict[type[ast.cmpop], Callable[[Any, Any], bool]]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
}
_CONSTANTS: Final[dict[str, Scalar]] = {
    "true": True,
    "false": False,
    "True": True,
    "False": False,
    "null": None,
    "None": None,
}
FUNCTIONS: Final[dict[str, Callable[..., Any]]] = {
    "abs": abs,
    "min": min,
    "max": max,
    "round": round,
    "sqrt": math.sqrt,
}


def _power(a: Any, b: Any) -> Any:
    if isinstance(b, int | float) and abs(b) > MAX_EXPONENT:
        raise EvaluationError(f"exponent {b} is larger than {MAX_EXPONENT}")
    return a**b


class Expression:
    """A parsed expression: ``Expression("tank.level < 10").evaluate(values)``."""

    def __init__(self, source: str) -> None:
        if len(source) > MAX_LENGTH:
            raise ExpressionError(f"longer than {MAX_LENGTH} characters")
        try:
            tree = ast.parse(source.strip(), mode="eval")
        except SyntaxError as exc:
            raise ExpressionError(f"{source!r} is not an expression: {exc.msg}") from None
        self.source = source
        #: (alias, key) pairs the expression reads; alias is SELF for the device's own keys.
        self.names: set[tuple[str, str]] = set()
        self._root = self._compile(tree.body)

    @property
    def aliases(self) -> set[str]:
        """The device aliases the expression refers to (not counting the device itself)."""
        return {alias for alias, _ in self.names if alias != SELF}

    def evaluate(self, values: Values) -> Any:
        """The value of the expression; :class:`MissingValue` or :class:`EvaluationError`."""
        try:
            return self._root(values)
        except (MissingValue, EvaluationError):
            raise
        except (TypeError, ValueError, ArithmeticError) as exc:
            raise EvaluationError(f"{self.source}: {exc}") from None

    def __repr__(self) -> str:
        return f"Expression({self.source!r})"

    # -- compiling ------------------------------------------------------------------

    def _refuse(self, node: ast.AST, what: str) -> ExpressionError:
        column = getattr(node, "col_offset", 0) + 1
        return ExpressionError(f"{what} is not allowed (column {column} of {self.source!r})")

    def _compile(self, node: ast.AST) -> Node:
        if isinstance(node, ast.Constant):
            if not isinstance(node.value, int | float | str | bool) and node.value is not None:
                raise self._refuse(node, f"the constant {node.value!r}")
            value = node.value
            return lambda _: value
        if isinstance(node, ast.Name):
            return self._name(node.id)
        if isinstance(node, ast.Attribute):
            if not isinstance(node.value, ast.Name) or node.attr.startswith("_"):
                raise self._refuse(node, "only alias.key may use a dot:")
            return self._value(node.value.id, node.attr)
        if isinstance(node, ast.BoolOp):
            parts = [self._compile(v) for v in node.values]
            if isinstance(node.op, ast.And):
                return lambda v: all(p(v) for p in parts)
            return lambda v: any(p(v) for p in parts)
        if isinstance(node, ast.UnaryOp):
            operand = self._compile(node.operand)
            if isinstance(node.op, ast.Not):
                return lambda v: not operand(v)
            if isinstance(node.op, ast.USub):
                return lambda v: -operand(v)
            if isinstance(node.op, ast.UAdd):
                return lambda v: +operand(v)
            raise self._refuse(node, type(node.op).__name__)
        if isinstance(node, ast.BinOp):
            left, right = self._compile(node.left), self._compile(node.right)
            if isinstance(node.op, ast.Pow):
                exponent = node.right
                if isinstance(exponent, ast.UnaryOp) and isinstance(exponent.op, ast.USub):
                    exponent = exponent.operand
                if (
                    isinstance(exponent, ast.Constant)
                    and isinstance(exponent.value, int | float)
                    and abs(exponent.value) > MAX_EXPONENT
                ):
                    # known now, so refused on apply rather than at the first evaluation
                    raise self._refuse(node, f"an exponent above {MAX_EXPONENT}")
                return lambda v: _power(left(v), right(v))
            op = _BINARY.get(type(node.op))
            if op is None:
                raise self._refuse(node, f"the operator {type(node.op).__name__}")
            return lambda v: op(left(v), right(v))
        if isinstance(node, ast.Compare):
            return self._compare(node)
        if isinstance(node, ast.IfExp):
            test, yes, no = (self._compile(n) for n in (node.test, node.body, node.orelse))
            return lambda v: yes(v) if test(v) else no(v)
        if isinstance(node, ast.List | ast.Tuple):
            items = [self._compile(e) for e in node.elts]
            return lambda v: [i(v) for i in items]
        if isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
                raise self._refuse(node, "this call (functions: " + ", ".join(FUNCTIONS) + ")")
            if node.keywords:
                raise self._refuse(node, "a keyword argument")
            function = FUNCTIONS[node.func.id]
            args = [self._compile(a) for a in node.args]
            return lambda v: function(*(a(v) for a in args))
        raise self._refuse(node, type(node).__name__)

    def _compare(self, node: ast.Compare) -> Node:
        first = self._compile(node.left)
        rest = [
            (_COMPARE[type(op)], self._compile(right))
            for op, right in zip(node.ops, node.comparators, strict=True)
            if type(op) in _COMPARE
        ]
        if len(rest) != len(node.ops):
            raise self._refuse(node, "'is' (use == or !=)")

        def compare(v: Values) -> bool:
            left = first(v)
            for op, right_node in rest:
                right = right_node(v)
                if not op(left, right):
                    return False
                left = right
            return True

        return compare

    def _name(self, name: str) -> Node:
        if name in _CONSTANTS:
            constant = _CONSTANTS[name]
            return lambda _: constant
        if name in FUNCTIONS:
            raise ExpressionError(f"{name} is a function; call it: {name}(...)")
        return self._value(SELF, name)

    def _value(self, alias: str, key: str) -> Node:
        self.names.add((alias, key))
        label = f"{alias}.{key}" if alias else key

        def read(values: Values) -> Any:
            found = values.get(alias)
            if found is None or key not in found or found[key] is None:
                raise MissingValue(label)
            return found[key]

        return read


def parse(source: str) -> Expression:
    """Parse ``source``; :class:`ExpressionError` names what is wrong."""
    return Expression(source)


__all__ = [
    "FUNCTIONS",
    "SELF",
    "EvaluationError",
    "Expression",
    "ExpressionError",
    "MissingValue",
    "Scalar",
    "Values",
    "parse",
]
