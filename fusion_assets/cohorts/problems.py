"""How the importer speaks: one problem per table and column, with the fix; DuckDB errors made short."""

from __future__ import annotations

import re


class ImportProblem(Exception):
    """One problem with one table of a cohort; the importer collects them."""

    def __init__(self, where: str, problem: str, fix: str):
        self.where, self.problem, self.fix = where, problem, fix
        super().__init__(f"{where}: {problem} -> {fix}")


def qid(name: str) -> str:
    """A DuckDB identifier, quoted."""
    return '"' + str(name).replace('"', '""') + '"'


def strlit(value: object) -> str:
    """A DuckDB string literal."""
    return "'" + str(value).replace("'", "''") + "'"


# DuckDB quotes the offending line of a CSV ("Original Line: ..."): user data, never shown.
_ORIGINAL_LINE = re.compile(r"Original Line:[^\n]*\n?")


def short_error(exc: BaseException) -> str:
    """DuckDB's message without its dump of reader options or the data of the failing line."""
    text = str(exc).split("Possible Solution")[0]
    text = _ORIGINAL_LINE.sub("", text).split("\n\n")[0]
    return " ".join(text.split())[:400]
