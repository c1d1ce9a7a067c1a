"""The patients table's columns as landing SQL: ids, label, sex, age, each checked.

Functions of the running import (``imp``: :class:`fusion_assets.cohorts.importer.Importer`),
each returning the SQL of one landing column over the source table and
reporting what is wrong through ``imp.problem``.  Conversions that change a
value are exactly these, and documented in docs/own-data.md: ids trimmed of
spaces; labels 0/1, true/false, yes/no or ``positive_label``; sex codes to F/M
(``sex_values`` or the usual spellings); ages rounded to whole years, or left
out (NULL) with a warning when they are not on a year scale.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from fusion_assets.cohorts.problems import qid, strlit
from fusion_assets.cohorts.sources import SourceTable
from fusion_assets.kinds.sql import is_numeric_type

if TYPE_CHECKING:
    from fusion_assets.cohorts.importer import Importer

# Text that stands for "no value" and must never become a patient id.
ID_PLACEHOLDERS = ("nan", "null", "none", "na", "n/a", "<na>", "nat", "undefined")
_CONTROL = r"'[\x00-\x1F\x7F]'"
_SEX = {"F": ("F", "FEMALE", "W", "WOMAN"), "M": ("M", "MALE", "MAN")}
_TRUE = ("true", "yes", "y", "t", "1")
_FALSE = ("false", "no", "n", "f", "0")


def id_expr(imp: Importer, where: str, src: SourceTable, column: str, unique: bool) -> str:
    """Trimmed text ids; empty ids, placeholders ('NULL', 'NaN') and control characters refused."""
    raw = f"CAST({qid(column)} AS VARCHAR)"
    expr = f"trim({raw})"
    checks = (
        (f"{expr} IS NULL OR {expr} = ''", "are empty", "give every row an id, or drop those rows"),
        (
            f"lower({expr}) IN ({', '.join(strlit(p) for p in ID_PLACEHOLDERS)})",
            "are placeholders for a missing value",
            "give those rows their real ids, or drop them ('NULL' would become a patient)",
        ),
        (
            f"regexp_matches({raw}, {_CONTROL})",
            "contain control characters (tab, newline, ...)",
            "remove them (the same patient would otherwise have two ids)",
        ),
    )
    for condition, what, fix in checks:
        n, rows, values = imp.bad_rows(src, condition, raw)
        if n:
            shown = sorted({repr(v) for v in values})[:3]
            imp.problem(
                where,
                f"id column {column!r}: {n} of {src.n_rows} ids {what} (data rows {rows}, "
                f"values {', '.join(shown)})",
                fix,
            )
    if unique:
        _unique_ids(imp, where, src, column, expr)
    return expr


def _unique_ids(imp: Importer, where: str, src: SourceTable, column: str, expr: str) -> None:
    dupes = imp.con.execute(
        f"""SELECT count(*), sum(n), list(id ORDER BY first_row)[1:5],
                   list(rows ORDER BY first_row)[1:5]
            FROM (SELECT {expr} AS id, count(*) AS n, min(rowid) AS first_row,
                         list(rowid + 1 ORDER BY rowid)[1:3] AS rows
                  FROM {qid(src.table)} WHERE {expr} IS NOT NULL
                  GROUP BY 1 HAVING count(*) > 1)"""
    ).fetchone()
    if dupes[0]:
        examples = ", ".join(
            f"{i!r} at data rows {r}" for i, r in zip(dupes[2], dupes[3], strict=False)
        )
        imp.problem(
            where,
            f"id column {column!r}: {dupes[0]} id(s) appear more than once "
            f"({int(dupes[1])} rows; e.g. {examples})",
            "keep one row per patient in the patients table (a patient's repeated "
            "measurements belong in a modality)",
        )


def _positive_value(col: str, typ: str, positive: Any) -> str:
    """SQL true where the label equals ``positive`` (BOOLEAN columns match yes/no too)."""
    if isinstance(positive, bool) or typ == "BOOLEAN":
        word = str(positive).strip().lower()
        if word in _TRUE or word in _FALSE:
            return f"(TRY_CAST({col} AS BOOLEAN) = {'TRUE' if word in _TRUE else 'FALSE'})"
    if isinstance(positive, int | float) and not isinstance(positive, bool):
        return f"(TRY_CAST({col} AS DOUBLE) = {float(positive)!r})"
    return f"(trim(CAST({col} AS VARCHAR)) = {strlit(str(positive).strip())})"


def label_numeric(col: str, typ: str, positive: Any) -> str:
    """The label as 0/1 SQL (NULL where a value is neither)."""
    if positive is not None:
        value = _positive_value(col, typ, positive)
        return f"CASE WHEN {col} IS NULL THEN NULL WHEN {value} THEN 1 ELSE 0 END"
    if typ == "BOOLEAN":
        return f"CAST({col} AS INTEGER)"
    if is_numeric_type(typ):
        return f"TRY_CAST({col} AS DOUBLE)"
    low = f"lower(trim(CAST({col} AS VARCHAR)))"
    return (
        f"CASE WHEN {low} IN ('1', '1.0', 'true', 'yes') THEN 1 "
        f"WHEN {low} IN ('0', '0.0', 'false', 'no') THEN 0 END"
    )


def label_expr(imp: Importer, where: str, src: SourceTable, column: str, positive: Any) -> str:
    """0/1 labels; empty, other values, an unmatched ``positive_label`` or one class refused."""
    col = qid(column)
    numeric = label_numeric(col, src.columns[column], positive)
    n, rows, _ = imp.bad_rows(src, f"{col} IS NULL", col)
    ok = not n
    if n:
        imp.problem(
            where,
            f"label column {column!r} is empty on {n} of {src.n_rows} rows (data rows {rows})",
            "give every patient a label, or drop the unlabelled patients",
        )
    bad = f"{col} IS NOT NULL AND (({numeric}) IS NULL OR ({numeric}) NOT IN (0, 1))"
    n, rows, _ = imp.bad_rows(src, bad, col)
    if n:
        ok = False
        found = imp.distinct_values(src, col, bad)
        imp.problem(
            where,
            f"label column {column!r}: {n} of {src.n_rows} values are not 0/1 "
            f"(values {found}, data rows {rows})",
            "recode the label to 0/1, or set `patients.positive_label` to the value that means 1",
        )
    if ok:
        _two_classes(imp, where, src, column, numeric, positive)
    return f"CAST({numeric} AS INTEGER)"


def _two_classes(
    imp: Importer, where: str, src: SourceTable, column: str, numeric: str, positive: Any
) -> None:
    counts = dict(
        imp.con.execute(
            f"SELECT CAST({numeric} AS INTEGER), count(*) FROM {qid(src.table)} GROUP BY 1"
        ).fetchall()
    )
    if len(counts) < 2:
        values = imp.distinct_values(src, qid(column), "TRUE")
        unmatched = positive is not None and not counts.get(1)
        imp.problem(
            where,
            f"label column {column!r} has a single class ({next(iter(counts), '-')}) over all "
            f"{src.n_rows} patients"
            + (f": `positive_label` {positive!r} matches none of {values}" if unmatched else ""),
            "a classifier needs both classes: check `patients.label_column` / `positive_label`",
        )
        return
    smallest = min(counts.values())
    if smallest < imp.min_per_class:
        imp.problem(
            where,
            f"label column {column!r}: the cohort has {src.n_rows} patients, only {smallest} of "
            f"class {min(counts, key=counts.get)}; evaluation needs at least "
            f"{imp.min_per_class} of each class ({imp.min_per_class}-fold cross-validation)",
            "add patients, or check `patients.label_column` / `positive_label`",
        )


def _code_condition(col: str, code: Any) -> str:
    if isinstance(code, bool):
        return f"TRY_CAST({col} AS BOOLEAN) = {str(code).upper()}"
    if isinstance(code, int | float):
        return f"TRY_CAST({col} AS DOUBLE) = {float(code)!r}"
    return f"trim(CAST({col} AS VARCHAR)) = {strlit(str(code).strip())}"


def sex_expr(
    imp: Importer, where: str, src: SourceTable, column: str | None, codes: dict | None
) -> str:
    """F/M (NULL: unknown) from ``sex_values`` or the usual spellings; other values refused."""
    if not column:
        return "NULL::VARCHAR"
    col = qid(column)
    if codes:
        cases = " ".join(
            f"WHEN {_code_condition(col, code)} THEN {strlit(sex) if sex else 'NULL'}"
            for code, sex in codes.items()
        )
        known = " OR ".join(f"({_code_condition(col, code)})" for code in codes)
        expr, unmapped = f"CASE {cases} END", f"{col} IS NOT NULL AND NOT ({known})"
        fix = "add the codes to `patients.sex_values` (unknown: map them to an empty value)"
    else:
        up = f"upper(trim(CAST({col} AS VARCHAR)))"
        whens = " ".join(
            f"WHEN {up} IN ({', '.join(strlit(v) for v in spellings)}) THEN '{sex}'"
            for sex, spellings in _SEX.items()
        )
        expr, unmapped = (
            f"CASE {whens} END",
            f"{col} IS NOT NULL AND ({f'CASE {whens} END'}) IS NULL",
        )
        fix = "map them with `patients.sex_values` (e.g. {0: F, 1: M}), recode them, or drop `sex_column`"
    n, rows, _ = imp.bad_rows(src, unmapped, col)
    if n:
        values = imp.distinct_values(src, col, unmapped)
        imp.problem(
            where,
            f"sex column {column!r}: {n} values are neither F/M nor female/male nor a code of "
            f"`sex_values` (values {values}, data rows {rows})",
            fix,
        )
    return expr


def age_expr(imp: Importer, where: str, src: SourceTable, column: str | None) -> str:
    """Whole years; unusable values refused; a non-year scale left out (NULL) with a warning."""
    if not column:
        return "NULL::INTEGER"
    col, num = qid(column), f"TRY_CAST({qid(column)} AS DOUBLE)"
    n, rows, values = imp.bad_rows(src, f"{col} IS NOT NULL AND {num} IS NULL", col)
    if n:
        imp.problem(
            where,
            f"age column {column!r}: {n} values are not numbers (values {values}, data rows {rows})",
            "write ages in years as numbers (unknown: leave empty)",
        )
    unusable = f"{num} IS NOT NULL AND (isnan({num}) OR isinf({num}) OR abs({num}) >= 1e6)"
    n, rows, values = imp.bad_rows(src, unusable, col)
    if n:
        imp.problem(
            where,
            f"age column {column!r}: {n} values are not usable ages (values {values}, data rows {rows})",
            "write ages in years (unknown: leave the cell empty, not NaN)",
        )
        return "NULL::INTEGER"
    scale = age_scale(imp, src, column, num)
    if scale is not None:
        imp.note_age_scale(scale)
        return "NULL::INTEGER"
    return f"CAST(round({num}) AS INTEGER)"  # the landing contract stores whole years


def age_scale(imp: Importer, src: SourceTable, column: str, num: str) -> dict | None:
    """Why ``column`` does not hold ages in years (standardised, 0-1, months, days), or None."""
    low, median, fractional = imp.con.execute(
        f"""SELECT min({num}), median({num}), avg(CAST({num} <> round({num}) AS DOUBLE))
            FROM {qid(src.table)} WHERE {num} IS NOT NULL"""
    ).fetchone()
    if low is None:
        return None
    if low < 0:
        reason = f"negative values (minimum {low:.3g}): standardised, not years"
    elif median < 3 and fractional >= 0.5:
        reason = f"median {median:.3g} with fractional values: a 0-1 or standardised scale"
    elif median > 130:
        reason = f"median {median:.4g}: months or days, not years"
    else:
        return None
    return {
        "column": column,
        "years": False,
        "reason": reason,
        "median": None if math.isnan(median) else float(median),
        "action": "ages left out (NULL in the landing batch): no age-band subgroups",
    }
