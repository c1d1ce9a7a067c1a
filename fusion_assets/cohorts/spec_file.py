"""Read a cohort spec file (YAML) describing a user's own data into a ``CohortSpec``.

The file says where the patients table is and, per modality, its kind, its
source (a CSV/parquet file or glob relative to the spec file's folder, or a
DuckDB query), its id and time columns and its features.  It is validated on
load: every problem is reported at once, each naming the key, the file and the
fix, so a user never meets a traceback for a typo.  Nothing here reads the data
files; ``fusion_assets.cohorts.importer`` does (see docs/own-data.md).
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any

import yaml

from fusion_assets.cohorts.spec import MODALITY_KINDS, CohortSpec, ModalitySpec

# Table names the warehouse uses for itself; a modality may not take them.
RESERVED_NAMES = frozenset({"patients", "oracle", "batches", "provenance", "availability"})
# Modality names become DuckDB tables, Dagster asset names and partition keys.
NAME_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,62}$")

TOP_KEYS = ("name", "description", "patients", "modalities")
PATIENT_KEYS = (
    "source",
    "id_column",
    "index_time",
    "label_column",
    "positive_label",
    "sex_column",
    "age_column",
    "site_column",
    "delimiter",
    "time_format",
)
COMMON_MODALITY_KEYS = ("kind", "source", "id_column", "time_column", "delimiter", "time_format")
KIND_KEYS: dict[str, tuple[str, ...]] = {
    "tabular": ("features",),
    "omics": ("features", "format", "n_features", "list_column", "index_column", "value_column"),
    "image": ("pixels_column", "height", "width", "channels"),
    "timeseries": ("channels", "window_days", "n_bins"),
    "text": ("text_column",),
}
ALL_MODALITY_KEYS = tuple(
    dict.fromkeys(COMMON_MODALITY_KEYS + tuple(k for ks in KIND_KEYS.values() for k in ks))
)
# Defaults for the time-series resampling grid (days before index time, bins).
DEFAULT_WINDOW_DAYS = 28
DEFAULT_N_BINS = 28
# ``index_time: none`` (or null): the dataset has no index time; alignment takes all rows.
NO_INDEX_TIME = "none"
REGEX_PREFIX = "regex:"


class SpecError(ValueError):
    """A cohort spec file is invalid; the message lists every problem and its fix."""

    def __init__(self, path: Path, problems: list[str]):
        self.path = path
        self.problems = problems
        lines = [f"Cohort spec {path} is invalid ({len(problems)} problem(s)):"]
        lines += [f"  - {p}" for p in problems]
        lines.append("See docs/own-data.md for the spec format.")
        super().__init__("\n".join(lines))


class _Problems:
    """Collects problems so one error reports all of them."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, key: str, problem: str, fix: str) -> None:
        self.items.append(f"key `{key}`: {problem} -> {fix}")

    def unknown_keys(self, where: str, mapping: dict, allowed: tuple[str, ...]) -> None:
        for key in mapping:
            if key in allowed:
                continue
            close = difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.6)
            hint = f"did you mean `{close[0]}`?" if close else f"allowed keys: {', '.join(allowed)}"
            self.add(f"{where}{key}", "unknown key", hint)


def _is_none(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip().lower() == NO_INDEX_TIME)


def _column(p: _Problems, where: str, value: Any, required: bool) -> str | None:
    """A column name: a non-empty string (numbers are accepted as their text)."""
    if value is None:
        if required:
            p.add(where, "missing", "name the column of the source that holds it")
        return None
    if isinstance(value, bool) or not isinstance(value, str | int) or str(value) == "":
        p.add(where, f"expected a column name, got {value!r}", "write the column name as text")
        return None
    return str(value)


def _positive_int(p: _Problems, where: str, value: Any, default: int | None) -> int | None:
    if value is None:
        if default is None:
            p.add(where, "missing", "give a whole number greater than 0")
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        p.add(where, f"expected a whole number > 0, got {value!r}", "give a whole number > 0")
        return default
    return value


def _source(p: _Problems, where: str, value: Any, base_dir: Path) -> dict[str, Any] | None:
    """``source``: a path or glob (relative to the spec folder) or ``{query: SQL}``."""
    fix = "give a file or glob relative to the spec file's folder, or {query: <DuckDB SQL>}"
    if isinstance(value, str) and value.strip():
        return {"path": value.strip(), "query": None, "base_dir": str(base_dir)}
    if isinstance(value, dict):
        p.unknown_keys(f"{where}.", value, ("path", "query"))
        path, query = value.get("path"), value.get("query")
        if bool(path) == bool(query):
            p.add(where, "give exactly one of `path` or `query`", fix)
            return None
        if query is not None and not (isinstance(query, str) and query.strip()):
            p.add(f"{where}.query", "expected SQL text", fix)
            return None
        return {
            "path": str(path).strip() if path else None,
            "query": query.strip() if query else None,
            "base_dir": str(base_dir),
        }
    p.add(
        where, "missing" if value is None else f"expected a path or a mapping, got {value!r}", fix
    )
    return None


def _features(p: _Problems, where: str, value: Any) -> list[str] | str | None:
    """A list of column names, a glob (``lab_*``) or a regex (``regex:^g\\d+$``)."""
    if value is None:
        return None
    if isinstance(value, list) and value and all(isinstance(v, str | int) for v in value):
        names = [str(v) for v in value]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            p.add(where, f"columns listed twice: {dupes}", "list each column once")
        return names
    if isinstance(value, str) and value.strip():
        if value.startswith(REGEX_PREFIX):
            try:
                re.compile(value[len(REGEX_PREFIX) :])
            except re.error as exc:
                p.add(where, f"invalid regular expression ({exc})", "fix the pattern")
                return None
        return value
    p.add(
        where,
        f"expected a list of column names or a pattern, got {value!r}",
        "write e.g. [age, bmi], 'lab_*' or 'regex:^lab_[0-9]+$'",
    )
    return None


def _table_keys(p: _Problems, where: str, raw: dict) -> dict[str, Any]:
    """Keys shared by the patients table and every modality."""
    delimiter = raw.get("delimiter")
    if delimiter is not None and not (isinstance(delimiter, str) and len(delimiter) >= 1):
        p.add(
            f"{where}.delimiter",
            f"expected a delimiter such as ',' or ';', got {delimiter!r}",
            "quote it: delimiter: ';'",
        )
        delimiter = None
    time_format = raw.get("time_format")
    if time_format is not None and not isinstance(time_format, str):
        p.add(
            f"{where}.time_format",
            f"expected a strptime format, got {time_format!r}",
            "write e.g. '%d/%m/%Y'",
        )
        time_format = None
    return {"delimiter": delimiter, "time_format": time_format}


def _patients(p: _Problems, raw: Any, base_dir: Path) -> tuple[dict[str, Any] | None, bool]:
    """The patients table description and whether the cohort has index times."""
    if not isinstance(raw, dict):
        p.add(
            "patients",
            "missing or not a mapping",
            "add a `patients:` section (source, id_column, label_column, index_time)",
        )
        return None, False
    p.unknown_keys("patients.", raw, PATIENT_KEYS)
    source = _source(p, "patients.source", raw.get("source"), base_dir)
    index_raw = raw.get("index_time", "<missing>")
    if index_raw == "<missing>":
        p.add(
            "patients.index_time",
            "missing",
            "name the index-time column, or write `index_time: none` if the data has none",
        )
        index_col = None
    elif _is_none(index_raw):
        index_col = None
    else:
        index_col = _column(p, "patients.index_time", index_raw, required=True)
    positive = raw.get("positive_label")
    if positive is not None and not isinstance(positive, str | int | bool | float):
        p.add(
            "patients.positive_label",
            f"expected one value, got {positive!r}",
            "give the value that means label 1",
        )
    desc = {
        **(source or {}),
        "id_column": _column(p, "patients.id_column", raw.get("id_column"), required=True),
        "index_time": index_col,
        "label_column": _column(p, "patients.label_column", raw.get("label_column"), required=True),
        "positive_label": positive,
        **{
            k: _column(p, f"patients.{k}", raw.get(k), required=False)
            for k in ("sex_column", "age_column", "site_column")
        },
        **_table_keys(p, "patients", raw),
    }
    return desc, index_col is not None


def _kind_options(p: _Problems, where: str, kind: str, raw: dict, source: dict) -> dict[str, Any]:
    """Validate the kind's keys; fill ``source`` (columns) and return ``options``."""
    options: dict[str, Any] = {}
    if kind == "tabular":
        features = _features(p, f"{where}.features", raw.get("features"))
        source["features"] = features
        if isinstance(features, list):
            options["features"] = features
    elif kind == "omics":
        fmt = raw.get("format", "dense")
        if fmt not in ("dense", "sparse"):
            p.add(
                f"{where}.format",
                f"{fmt!r} is not an omics format",
                "write `format: dense` or `format: sparse`",
            )
            fmt = "dense"
        options["format"] = fmt
        n = raw.get("n_features")
        if n is not None:
            options["n_features"] = _positive_int(p, f"{where}.n_features", n, None)
        if fmt == "dense":
            features = _features(p, f"{where}.features", raw.get("features"))
            list_col = _column(p, f"{where}.list_column", raw.get("list_column"), required=False)
            if (features is None) == (list_col is None):
                p.add(
                    where,
                    "a dense omics modality needs exactly one of `features` (columns to pack into one vector) or `list_column` (a column already holding the vector)",
                    "add `features: 'regex:...'` or `list_column: <column>`",
                )
            source["features"], source["list_column"] = features, list_col
            if isinstance(features, list):
                options.setdefault("n_features", len(features))
        else:
            for key in ("index_column", "value_column"):
                source[key] = _column(p, f"{where}.{key}", raw.get(key), required=True)
    elif kind == "image":
        source["pixels_column"] = _column(
            p, f"{where}.pixels_column", raw.get("pixels_column"), required=True
        )
        options["height"] = _positive_int(p, f"{where}.height", raw.get("height"), None)
        options["width"] = _positive_int(p, f"{where}.width", raw.get("width"), None)
        options["channels"] = _positive_int(p, f"{where}.channels", raw.get("channels"), 1)
    elif kind == "timeseries":
        channels = raw.get("channels")
        if not (
            isinstance(channels, list) and channels and all(isinstance(c, str) for c in channels)
        ):
            p.add(
                f"{where}.channels",
                f"expected a list of column names, got {channels!r}",
                "list the channel columns, e.g. [heart_rate, steps]",
            )
            channels = []
        options["channels"] = list(channels)
        options["window_days"] = _positive_int(
            p, f"{where}.window_days", raw.get("window_days"), DEFAULT_WINDOW_DAYS
        )
        options["n_bins"] = _positive_int(p, f"{where}.n_bins", raw.get("n_bins"), DEFAULT_N_BINS)
    elif kind == "text":
        source["text_column"] = _column(
            p, f"{where}.text_column", raw.get("text_column"), required=True
        )
    return options


def _modality(
    p: _Problems, name: Any, raw: Any, base_dir: Path, has_index_time: bool
) -> ModalitySpec | None:
    where = f"modalities.{name}"
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        p.add(
            where,
            f"modality name {name!r} is not usable as a table name",
            "use letters, digits and _ (starting with a letter)",
        )
        return None
    if name in RESERVED_NAMES:
        p.add(
            where,
            f"{name!r} is reserved by the warehouse",
            f"rename the modality (e.g. {name}_data)",
        )
        return None
    if not isinstance(raw, dict):
        p.add(where, "expected a mapping with kind, source, id_column ...", "see docs/own-data.md")
        return None
    kind = raw.get("kind")
    if kind not in MODALITY_KINDS:
        close = difflib.get_close_matches(str(kind), MODALITY_KINDS, n=1)
        hint = f"did you mean `{close[0]}`?" if close else f"use one of {', '.join(MODALITY_KINDS)}"
        p.add(
            f"{where}.kind", "missing" if kind is None else f"{kind!r} is not a modality kind", hint
        )
        p.unknown_keys(f"{where}.", raw, ALL_MODALITY_KEYS)
        return None
    allowed = COMMON_MODALITY_KEYS + KIND_KEYS[kind]
    for key in raw:
        if key in allowed:
            continue
        if key in ALL_MODALITY_KEYS:
            p.add(
                f"{where}.{key}",
                f"not an option of a {kind} modality",
                f"remove it (allowed: {', '.join(allowed)})",
            )
        else:
            p.unknown_keys(f"{where}.", {key: None}, allowed)
    source = _source(p, f"{where}.source", raw.get("source"), base_dir) or {}
    source["id_column"] = _column(p, f"{where}.id_column", raw.get("id_column"), required=True)
    time_col = _column(p, f"{where}.time_column", raw.get("time_column"), required=False)
    source.update(_table_keys(p, where, raw))
    options = _kind_options(p, where, kind, raw, source)
    if kind == "timeseries" and (time_col is None or not has_index_time):
        p.add(
            where,
            "a timeseries modality is resampled over the days before the index time, so it needs a `time_column` and a patients `index_time` column",
            "add both, or describe the series as a tabular modality",
        )
    # Without an index time there is nothing to cut at: every row is usable.
    timed = time_col is not None and has_index_time
    source["time_column"] = time_col if timed else None
    source["ignored_time_column"] = time_col if (time_col and not timed) else None
    return ModalitySpec(name=name, kind=kind, timed=timed, options=options, source=source)


def parse_spec(raw: Any, path: Path) -> CohortSpec:
    """Validate a loaded YAML document; ``path`` names the file in errors and anchors sources."""
    p = _Problems()
    base_dir = path.resolve().parent
    if not isinstance(raw, dict):
        raise SpecError(
            path, ["the file is not a YAML mapping -> start from the example in docs/own-data.md"]
        )
    p.unknown_keys("", raw, TOP_KEYS)
    default_name = path.parent.name if path.stem in ("cohort", "spec") else path.stem
    name = raw.get("name", default_name)
    if not isinstance(name, str) or not name.strip():
        p.add("name", f"expected text, got {name!r}", "give the cohort a name")
        name = default_name
    patients, has_index_time = _patients(p, raw.get("patients"), base_dir)
    mods_raw = raw.get("modalities")
    modalities: list[ModalitySpec] = []
    if not isinstance(mods_raw, dict) or not mods_raw:
        p.add(
            "modalities",
            "missing or empty",
            "add at least one modality: `modalities: {<name>: {kind: ..., source: ..., id_column: ...}}`",
        )
    else:
        for mod_name, mod_raw in mods_raw.items():
            m = _modality(p, mod_name, mod_raw, base_dir, has_index_time)
            if m is not None:
                modalities.append(m)
    if p.items:
        raise SpecError(path, p.items)
    assert patients is not None
    return CohortSpec(
        name=name.strip(),
        modalities=tuple(modalities),
        has_oracle=False,
        patients_source=patients,
    )


def read_spec_file(path: str | Path) -> CohortSpec:
    """Read and validate the cohort spec at ``path`` (errors: :class:`SpecError`)."""
    path = Path(path)
    if not path.is_file():
        raise SpecError(
            path,
            [
                f"file not found (looked in {path.resolve()}) -> check the path, or FUSION_COHORT_SPEC"
            ],
        )
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise SpecError(
            path, [f"not valid YAML: {exc} -> fix the syntax at the position shown"]
        ) from None
    return parse_spec(raw, path)
