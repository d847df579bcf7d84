"""Evaluate rule conditions (field / op / value) on a structured context. No code execution."""

from __future__ import annotations

import re
from typing import Any, Callable

from .policy_conditions import Condition


def _num(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _cmp(check: Callable[[float, float], bool]) -> Callable[[Any, Any], bool]:
    def run(actual: Any, expected: Any) -> bool:
        a, e = _num(actual), _num(expected)
        return a is not None and e is not None and check(a, e)

    return run


def _eq(actual: Any, expected: Any) -> bool:
    if isinstance(expected, bool) or isinstance(actual, bool):
        return _truthy(actual) == expected if isinstance(expected, bool) else actual == expected
    if isinstance(expected, str) and isinstance(actual, str):
        return actual.strip().lower() == expected.strip().lower()
    return bool(actual == expected)


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "yes", "1", "y")
    return bool(value)


def _contains(actual: Any, expected: Any) -> bool:
    if isinstance(actual, str):
        return str(expected).lower() in actual.lower()
    if isinstance(actual, (list, tuple, set)):
        return expected in actual
    return False


OPS: dict[str, Callable[[Any, Any], bool]] = {
    "eq": _eq,
    "ne": lambda a, e: not _eq(a, e),
    "gt": _cmp(lambda a, e: a > e),
    "ge": _cmp(lambda a, e: a >= e),
    "lt": _cmp(lambda a, e: a < e),
    "le": _cmp(lambda a, e: a <= e),
    "in": lambda a, e: any(_eq(a, item) for item in e),
    "not_in": lambda a, e: not any(_eq(a, item) for item in e),
    "contains": _contains,
    "matches": lambda a, e: isinstance(a, str) and re.search(str(e), a, re.IGNORECASE) is not None,
}


def holds(condition: Condition, context: dict[str, Any]) -> bool:
    """A condition on a missing field is false, except ``exists`` which tests presence."""
    if condition.op == "exists":
        present = context.get(condition.field) is not None
        return present if condition.value is None else present == _truthy(condition.value)
    if condition.field not in context or context[condition.field] is None:
        return False
    return OPS[condition.op](context[condition.field], condition.value)


def describe(condition: Condition) -> str:
    return f"{condition.field} {condition.op} {condition.value!r}"
