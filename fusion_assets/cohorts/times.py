"""Times as SQL: a source's time column to a naive UTC timestamp, exactly as the spec says.

- ``time_format`` always wins: CSV time columns are read as text (never typed by
  DuckDB's sniffer, which reads ``01/03/2024`` as 1 March whatever the format
  says) and parsed with ``strptime``.
- Without a format, text is ISO 8601: naive (``2024-03-01 08:30``) or zoned
  (``...Z``, ``...+02:00``, ``... UTC``, ``... Europe/Berlin``).  Zoned values
  are converted to UTC; naive ones are taken as written, or as times of the
  spec's ``timezone`` when it names one.  A column mixing naive and zoned values
  is refused unless ``timezone`` says what the naive ones mean.
- Nothing depends on the machine's time zone: every conversion names its zone
  (the importer's connection also runs with ``TimeZone = 'UTC'``).
"""

from __future__ import annotations

from dataclasses import dataclass

from fusion_assets.cohorts.problems import strlit

# A time of day followed by a zone: Z, an offset, UTC/GMT, or an IANA name (Area/City).
_TIME = r"\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?"
_OFFSET = rf"^(.*{_TIME})\s*([zZ]|[+-]\d{{2}}(?::?\d{{2}})?|UTC|GMT|utc|gmt)$"
_NAMED = rf"^(.*{_TIME})\s+([A-Za-z_]+(?:/[A-Za-z0-9_+-]+)+)$"
_TEXT_TYPES = ("VARCHAR",)


@dataclass(frozen=True)
class TimeParse:
    """SQL of a parsed time column and, for text, which values carry a zone."""

    expr: str  # naive UTC TIMESTAMP (NULL where a value does not parse)
    zoned: str | None = None  # a condition true for values written with a zone


def _naive(ts: str, timezone: str | None) -> str:
    """A naive timestamp; with ``timezone``, read as that zone's wall time and made UTC."""
    return f"timezone('UTC', timezone({strlit(timezone)}, {ts}))" if timezone else ts


def _text(col: str, fmt: str | None, timezone: str | None) -> TimeParse:
    text = f"trim(CAST({col} AS VARCHAR))"
    if fmt:
        parsed = f"try_strptime({text}, {strlit(fmt)})"
        if "%z" in fmt or "%Z" in fmt:
            return TimeParse(f"timezone('UTC', {parsed})")
        return TimeParse(_naive(parsed, timezone))
    # offsets applied by hand: DuckDB's TIMESTAMPTZ cast refuses '08:30+02' (no seconds)
    stamp, off = (f"regexp_extract({text}, '{_OFFSET}', {i})" for i in (1, 2))
    digits = f"replace(substr({off}, 2), ':', '')"
    minutes = (
        f"(CASE WHEN left({off}, 1) = '-' THEN -1 ELSE 1 END) * (TRY_CAST(left({digits}, 2) "
        f"AS INTEGER) * 60 + CASE WHEN length({digits}) = 4 THEN TRY_CAST(right({digits}, 2) "
        "AS INTEGER) ELSE 0 END)"
    )
    offset_utc = (
        f"TRY_CAST({stamp} AS TIMESTAMP) - to_minutes(CASE WHEN upper({off}) IN ('Z', 'UTC', "
        f"'GMT') THEN 0 ELSE {minutes} END)"
    )
    local, zone = (f"regexp_extract({text}, '{_NAMED}', {i})" for i in (1, 2))
    has_offset = f"regexp_matches({text}, '{_OFFSET}')"
    named = f"({zone} <> '' AND {zone} IN (SELECT name FROM pg_timezone_names()))"
    expr = f"""CASE WHEN {has_offset} THEN {offset_utc}
                    WHEN {named} THEN timezone('UTC', timezone({zone}, TRY_CAST({local} AS TIMESTAMP)))
                    ELSE {_naive(f"TRY_CAST({text} AS TIMESTAMP)", timezone)} END"""
    return TimeParse(expr, zoned=f"({has_offset} OR {named})")


def parse_time(col: str, sql_type: str, fmt: str | None, timezone: str | None) -> TimeParse | None:
    """How to read the (quoted) column ``col`` of DuckDB type ``sql_type``; None if no time type."""
    if sql_type.startswith("TIMESTAMP WITH TIME ZONE"):
        return TimeParse(f"timezone('UTC', {col})")
    if sql_type.startswith(("TIMESTAMP", "DATE")):
        return TimeParse(_naive(f"CAST({col} AS TIMESTAMP)", timezone))
    if sql_type in _TEXT_TYPES:
        return _text(col, fmt, timezone)
    return None
