"""Building blocks of a kind's spec options: typed fields whose errors say what to write.

A kind's options are a pydantic model deriving from :class:`KindOptions`
(frozen, unknown keys rejected).  The field types here validate the way a
cohort spec file is read (a column name is text, a count a whole number > 0,
features a list or a pattern) and raise :func:`spec_problem` errors carrying
the problem and its fix, which ``fusion_assets.cohorts.spec_file`` turns into
``key `...`: problem -> fix`` lines.  :class:`Hint` on a field says what to do
when it is missing.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from annotated_types import Gt
from pydantic import BaseModel, BeforeValidator, ConfigDict
from pydantic_core import PydanticCustomError

from fusion_assets.identifiers import reserved_problem

# Features may be chosen by a regular expression: ``features: "regex:^lab_"``.
REGEX_PREFIX = "regex:"
# The pydantic error type of every problem raised here.
SPEC_PROBLEM = "spec_problem"


class Hint(str):
    """Field metadata: the fix shown when a required key is missing."""

    __slots__ = ()


def spec_problem(problem: str, fix: str, key: str | None = None) -> PydanticCustomError:
    """A validation error with its fix; ``key`` names a sub-key (e.g. from a model validator)."""
    return PydanticCustomError(
        SPEC_PROBLEM, "{problem}", {"problem": problem, "fix": fix, "key": key}
    )


class KindOptions(BaseModel):
    """Base of every kind's options: immutable, unknown keys are errors."""

    model_config = ConfigDict(frozen=True, extra="forbid")


# ----------------------------------------------------------------- field types
def column_name(value: Any) -> Any:
    """A column name as text (numbers are accepted); None passes."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int) or str(value) == "":
        raise spec_problem(
            f"expected a column name, got {value!r}", "write the column name as text"
        )
    return str(value)


def _positive_int(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise spec_problem(f"expected a whole number > 0, got {value!r}", "give a whole number > 0")
    return value


def positive_int_at_most(limit: int, fix: str, optional: bool = False) -> Any:
    """A whole number > 0 and at most ``limit`` (kinds/limits.py); ``fix`` says what to do."""

    def check(value: Any) -> Any:
        value = _positive_int(value)
        if value is not None and value > limit:
            raise spec_problem(f"{value:,} is over the limit of {limit:,}", fix)
        return value

    if optional:
        return Annotated[int | None, BeforeValidator(check, json_schema_input_type=int | None)]
    return Annotated[
        int,
        Gt(0),
        BeforeValidator(check, json_schema_input_type=int),
        Hint(f"give a whole number from 1 to {limit:,}"),
    ]


def refuse_reserved(names: list[str] | None, rename: str, key: str) -> None:
    """A spec problem (at option ``key``) if a listed column takes a reserved name."""
    for name in names or []:
        problem = reserved_problem(name, "column", rename)
        if problem:
            raise spec_problem(*problem, key)


def _features(value: Any) -> Any:
    """A list of column names, a glob (``lab_*``) or a regex (``regex:^g\\d+$``)."""
    if value is None:
        return None
    if isinstance(value, list) and value and all(isinstance(v, str | int) for v in value):
        names = [str(v) for v in value]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise spec_problem(f"columns listed twice: {dupes}", "list each column once")
        return names
    if isinstance(value, str) and value.strip():
        if value.startswith(REGEX_PREFIX):
            try:
                re.compile(value[len(REGEX_PREFIX) :])
            except re.error as exc:
                raise spec_problem(
                    f"invalid regular expression ({exc})", "fix the pattern"
                ) from None
        return value
    raise spec_problem(
        f"expected a list of column names or a pattern, got {value!r}",
        "write e.g. [age, bmi], 'lab_*' or 'regex:^lab_[0-9]+$'",
    )


def _column_list(value: Any) -> Any:
    if isinstance(value, list) and value and all(isinstance(c, str) for c in value):
        return value
    raise spec_problem(
        f"expected a list of column names, got {value!r}",
        "list the columns, e.g. [heart_rate, steps]",
    )


COLUMN_HINT = Hint("name the column of the source that holds it")
_COLUMN = BeforeValidator(column_name, json_schema_input_type=str | int)

#: A column of the user's source (numbers are accepted as their text).
Column = Annotated[str, _COLUMN, COLUMN_HINT]
OptionalColumn = Annotated[str | None, _COLUMN]
#: A whole number > 0 (``true`` and ``2.5`` are refused, unlike pydantic's lax int).
PositiveInt = Annotated[
    int,
    Gt(0),
    BeforeValidator(_positive_int, json_schema_input_type=int),
    Hint("give a whole number greater than 0"),
]
OptionalPositiveInt = Annotated[
    int | None, BeforeValidator(_positive_int, json_schema_input_type=int | None)
]
#: Features: a list of column names, a glob or ``regex:<pattern>``.
FeatureSelection = Annotated[
    list[str] | str | None, BeforeValidator(_features, json_schema_input_type=list[str] | str)
]
#: A non-empty list of column names.
ColumnList = Annotated[
    list[str],
    BeforeValidator(_column_list, json_schema_input_type=list[str]),
    Hint("list the columns, e.g. [heart_rate, steps]"),
]


def listed(selection: list[str] | str | None) -> list[str] | None:
    """The explicitly listed columns of a feature selection (None for a pattern or absent)."""
    return list(selection) if isinstance(selection, list) else None
