"""The structured condition of the policy files (field / op / value): used by rules.yaml and
decisions.yaml alike, evaluated by ``conditions.holds``. Never code."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, model_validator

from .strict import Strict

Op = Literal["eq", "ne", "gt", "ge", "lt", "le", "in", "not_in", "contains", "matches", "exists"]


class Condition(Strict):
    field: str = Field(description="Name of a structured context field, e.g. environment, record_count.")
    op: Op = Field(description="Comparison operator.")
    value: Any = Field(default=None, description="Value to compare with (a list for in/not_in).")

    @model_validator(mode="after")
    def _value_fits_op(self) -> "Condition":
        if self.op in ("in", "not_in") and not isinstance(self.value, list):
            raise ValueError(f"op {self.op} needs a list value")
        if self.op in ("gt", "ge", "lt", "le") and not isinstance(self.value, (int, float)):
            raise ValueError(f"op {self.op} needs a number value")
        if self.op == "matches":
            compile_pattern(str(self.value))
        return self


def compile_pattern(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern, re.IGNORECASE)
    except re.error as exc:
        raise ValueError(f"invalid regular expression {pattern!r}: {exc}") from None
