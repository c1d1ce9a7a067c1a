"""Read a cohort spec file (YAML) describing a user's own data into a ``CohortSpec``.

The file says where the patients table is and, per modality, its kind, its
source (a CSV/parquet file or glob relative to the spec file's folder, or a
DuckDB query), its id and time columns and the kind's options.  It is
validated by pydantic models: the patients table, and per modality a
discriminated union on ``kind`` built from the kinds registry (so a
registered plug-in kind is a valid ``kind:`` with its own options).  Every
problem is reported at once, each naming the key and the fix, so a user never
meets a traceback for a typo; :func:`spec_json_schema` is the same models as a
JSON Schema for editors (``fusion-assets spec-schema``).  Nothing here reads the
data files; ``fusion_assets.cohorts.importer`` does (see docs/own-data.md).
"""

from __future__ import annotations

import difflib
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import duckdb
import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    create_model,
    model_validator,
)

from fusion_assets.cohorts.deployment_profile import DeploymentProfile
from fusion_assets.cohorts.spec import CohortSpec, ModalitySpec
from fusion_assets.cohorts.yaml_loader import YAMLProblem, load_spec_yaml
from fusion_assets.identifiers import (
    MODALITY_NAME,
    cohort_name_problem,
    default_cohort_name,
    modality_name_problem,
)
from fusion_assets.kinds import ModalityKind, get_kind, kind_names, registry_version
from fusion_assets.kinds.limits import MAX_MODALITIES
from fusion_assets.kinds.options import (
    SPEC_PROBLEM,
    Column,
    Hint,
    OptionalColumn,
    column_name,
    spec_problem,
)
from fusion_assets.kinds.registry import unknown_kind_hint

# ``index_time: none`` (or null): the dataset has no index time; alignment takes all rows.
NO_INDEX_TIME = "none"
DOCS = "docs/own-data.md"


class SpecError(ValueError):
    """A cohort spec file is invalid; the message lists every problem and its fix."""

    def __init__(self, path: Path, problems: list[str]):
        self.path = path
        self.problems = problems
        lines = [f"Cohort spec {path} is invalid ({len(problems)} problem(s)):"]
        lines += [f"  - {p}" for p in problems]
        lines.append(f"See {DOCS} for the spec format.")
        super().__init__("\n".join(lines))


# ------------------------------------------------------------------ field types
def _is_none(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip().lower() == NO_INDEX_TIME)


def _index_time(value: Any) -> Any:
    return None if _is_none(value) else column_name(value)


def _delimiter(value: Any) -> Any:
    if value is not None and not (isinstance(value, str) and len(value) >= 1):
        raise spec_problem(
            f"expected a delimiter such as ',' or ';', got {value!r}", "quote it: delimiter: ';'"
        )
    return value


def _time_format(value: Any) -> Any:
    if value is not None and not isinstance(value, str):
        raise spec_problem(f"expected a strptime format, got {value!r}", "write e.g. '%d/%m/%Y'")
    return value


def _positive_label(value: Any) -> Any:
    if value is not None and not isinstance(value, str | int | bool | float):
        raise spec_problem(
            f"expected one value, got {value!r}", "give the value that means label 1"
        )
    return value


_SOURCE_FIX = "give a file or glob relative to the spec file's folder, or {query: <DuckDB SQL>}"


def _source(value: Any) -> Any:
    if isinstance(value, str) and value.strip():
        return {"path": value.strip()}
    if isinstance(value, dict):
        return value
    problem = "missing" if value is None else f"expected a path or a mapping, got {value!r}"
    raise spec_problem(problem, _SOURCE_FIX)


def _sql(value: Any) -> Any:
    if value is not None and not (isinstance(value, str) and value.strip()):
        raise spec_problem("expected SQL text", _SOURCE_FIX)
    return value.strip() if isinstance(value, str) else value


def _cohort_name(value: Any) -> Any:
    if value is None:
        return None
    if not (isinstance(value, str) and value.strip()):
        raise spec_problem(f"expected text, got {value!r}", "give the cohort a name")
    problem = cohort_name_problem(value.strip())
    if problem:
        raise spec_problem(problem, "rename the cohort (`name:`)")
    return value.strip()


def _modality_name(name: Any) -> Any:
    problem = modality_name_problem(name)
    if problem:
        raise spec_problem(*problem)
    return name


@cache
def _time_zones() -> frozenset[str]:
    """The zone names DuckDB (which converts the times) knows."""
    with duckdb.connect() as con:
        return frozenset(
            r[0] for r in con.execute("SELECT name FROM pg_timezone_names()").fetchall()
        )


def _timezone(value: Any) -> Any:
    if value is None:
        return None
    if not isinstance(value, str) or value not in _time_zones():
        close = difflib.get_close_matches(str(value), sorted(_time_zones()), n=1, cutoff=0.6)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise spec_problem(
            f"{value!r} is not a time zone name",
            f"{hint}give an IANA name such as 'Europe/Berlin' or 'UTC'",
        )
    return value


_SEX_CODES = {"F": "F", "FEMALE": "F", "W": "F", "WOMAN": "F", "M": "M", "MALE": "M", "MAN": "M"}


def _sex_values(value: Any) -> Any:
    """``{0: F, 1: M}``: the source's codes -> F / M (empty: unknown)."""
    if value is None:
        return None
    fix = "map each code of the column to F or M, e.g. sex_values: {0: F, 1: M}"
    if not isinstance(value, dict) or not value:
        raise spec_problem(f"expected a mapping of codes to F/M, got {value!r}", fix)
    out = {}
    for code, sex in value.items():
        if isinstance(code, list | dict) or code is None:
            raise spec_problem(f"code {code!r} is not a value of the column", fix)
        mapped = None if sex in (None, "") else _SEX_CODES.get(str(sex).strip().upper())
        if sex not in (None, "") and mapped is None:
            raise spec_problem(f"code {code!r} maps to {sex!r}, not F or M", fix)
        out[code] = mapped
    return out


Delimiter = Annotated[str | None, BeforeValidator(_delimiter)]
TimeFormat = Annotated[str | None, BeforeValidator(_time_format)]
TimeZone = Annotated[str | None, BeforeValidator(_timezone, json_schema_input_type=str | None)]
ModalityName = Annotated[
    str, StringConstraints(pattern=MODALITY_NAME.pattern), BeforeValidator(_modality_name)
]


class SourceEntry(BaseModel):
    """``source:``: a path or glob (relative to the spec folder) or ``{query: SQL}``."""

    model_config = ConfigDict(extra="forbid")

    path: str | None = None
    query: Annotated[str | None, BeforeValidator(_sql)] = None

    @model_validator(mode="after")
    def _exactly_one(self) -> SourceEntry:
        if bool(self.path) == bool(self.query):
            raise spec_problem("give exactly one of `path` or `query`", _SOURCE_FIX)
        return self


Source = Annotated[
    SourceEntry,
    BeforeValidator(_source, json_schema_input_type=str | SourceEntry),
    Hint(_SOURCE_FIX),
]


class _TableKeys(BaseModel):
    """Keys every table of a spec has."""

    model_config = ConfigDict(extra="forbid")

    source: Source
    id_column: Column
    delimiter: Delimiter = None  # CSV only: sniffed when absent
    time_format: TimeFormat = None  # strptime format of text times
    timezone: TimeZone = None  # the zone of times written without one (default: UTC)


class PatientsEntry(_TableKeys):
    """``patients:``: one row per patient with its index time and label."""

    index_time: Annotated[
        str | None,
        BeforeValidator(_index_time, json_schema_input_type=str | None),
        Hint("name the index-time column, or write `index_time: none` if the data has none"),
    ]
    label_column: Column
    positive_label: Annotated[
        Any, BeforeValidator(_positive_label, json_schema_input_type=str | int | float | bool)
    ] = None
    sex_column: OptionalColumn = None
    sex_values: Annotated[
        dict[Any, Any] | None,
        BeforeValidator(_sex_values, json_schema_input_type=dict[str, str] | None),
    ] = None
    age_column: OptionalColumn = None
    site_column: OptionalColumn = None

    @model_validator(mode="after")
    def _sex_values_need_a_column(self) -> PatientsEntry:
        if self.sex_values and not self.sex_column:
            raise spec_problem(
                "`sex_values` maps the codes of `sex_column`, which is not given",
                "add `sex_column: <column>` or drop `sex_values`",
                "sex_values",
            )
        return self


class ModalityKeys(_TableKeys):
    """Keys every modality has, whatever its kind."""

    kind: str
    time_column: OptionalColumn = None  # rows at/after the index time are never used


COMMON_MODALITY_KEYS = (
    "kind",
    "source",
    "id_column",
    "time_column",
    "delimiter",
    "time_format",
    "timezone",
)
TOP_HINTS = {
    "patients": "add a `patients:` section (source, id_column, label_column, index_time)",
    "modalities": "add at least one modality: "
    "`modalities: {<name>: {kind: ..., source: ..., id_column: ...}}`",
}


# ------------------------------------------------------------------ models from the registry
def kind_keys(kind: ModalityKind) -> tuple[str, ...]:
    """The keys a spec file may give a modality of ``kind`` (common keys first)."""
    return COMMON_MODALITY_KEYS + tuple(kind.file_options().model_fields)


def _entry_model(kind: ModalityKind) -> type[BaseModel]:
    title = "".join(part.capitalize() for part in kind.name.split("_"))
    return create_model(
        f"{title}Modality",
        __base__=(kind.file_options(), ModalityKeys),
        __doc__=f"A modality of kind ``{kind.name}``.",
        kind=(Literal[kind.name], ...),  # type: ignore[valid-type]
    )


_document_cache: dict[int, type[BaseModel]] = {}


def spec_document_model() -> type[BaseModel]:
    """The spec file's pydantic model, for the kinds registered now."""
    version = registry_version()
    if version not in _document_cache:
        entries = tuple(_entry_model(get_kind(name)) for name in kind_names())
        entry: Any = (
            Annotated[Union[entries], Field(discriminator="kind")]  # noqa: UP007
            if len(entries) > 1
            else entries[0]
        )
        _document_cache.clear()
        _document_cache[version] = create_model(
            "CohortSpecFile",
            __config__=ConfigDict(extra="forbid", title="fusion_assets cohort spec"),
            name=(Annotated[str | None, BeforeValidator(_cohort_name)], None),
            description=(str | None, None),
            patients=(PatientsEntry, ...),
            modalities=(Annotated[dict[ModalityName, entry], Field(min_length=1)], ...),
            deployment=(DeploymentProfile | None, None),
        )
    return _document_cache[version]


def spec_json_schema() -> dict[str, Any]:
    """JSON Schema of a cohort spec file (for editors; YAML language servers read it)."""
    schema = spec_document_model().model_json_schema()
    # modality names are keys matching NAME_PATTERN (patternProperties); no other names
    schema["properties"]["modalities"]["additionalProperties"] = False
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}


# ------------------------------------------------------------------ errors as problems
def _line(loc: list, problem: str, fix: str) -> str:
    return f"key `{'.'.join(str(part) for part in loc)}`: {problem} -> {fix}"


def _raw_entry(raw: dict, name: Any) -> Any:
    modalities = raw.get("modalities")
    return modalities.get(name) if isinstance(modalities, dict) else None


def _raw_kind(raw: dict, name: Any) -> Any:
    entry = _raw_entry(raw, name)
    return entry.get("kind") if isinstance(entry, dict) else None


def _allowed_keys(parent: list, raw: dict) -> tuple[str, ...]:
    if not parent:
        return tuple(spec_document_model().model_fields)
    if parent[-1] == "source":
        return tuple(SourceEntry.model_fields)
    if parent == ["patients"]:
        return tuple(PatientsEntry.model_fields)
    return kind_keys(get_kind(_raw_kind(raw, parent[1])))


def _field_hint(loc: list, raw: dict) -> str | None:
    """The :class:`Hint` of the field at ``loc`` (what to write when it is missing)."""
    field = loc[-1]
    if len(loc) == 1:
        return TOP_HINTS.get(field)
    if loc[-2] == "source":
        return _SOURCE_FIX
    if loc[0] == "patients":
        model: type[BaseModel] = PatientsEntry
    else:
        kind = get_kind(_raw_kind(raw, loc[1]))
        model = ModalityKeys if field in ModalityKeys.model_fields else kind.file_options()
    info = model.model_fields.get(field)
    return next((m for m in (info.metadata if info else []) if isinstance(m, Hint)), None)


def _unknown_key(loc: list, raw: dict) -> str:
    parent, key = loc[:-1], str(loc[-1])
    allowed = _allowed_keys(parent, raw)
    if len(parent) == 2 and parent[0] == "modalities":
        others = {k for name in kind_names() for k in kind_keys(get_kind(name))}
        if key in others:
            kind = _raw_kind(raw, parent[1])
            fix = f"remove it (allowed: {', '.join(allowed)})"
            return _line(loc, f"not an option of a {kind} modality", fix)
    close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
    hint = f"did you mean `{close[0]}`?" if close else f"allowed keys: {', '.join(allowed)}"
    return _line(loc, "unknown key", hint)


def _unknown_kind(loc: list, raw: dict) -> list[str]:
    entry = _raw_entry(raw, loc[1])
    kind = entry.get("kind")
    problems = [
        _line(
            [*loc, "kind"],
            "missing" if kind is None else f"{kind!r} is not a modality kind",
            unknown_kind_hint(kind),
        )
    ]
    every = tuple(dict.fromkeys(k for name in kind_names() for k in kind_keys(get_kind(name))))
    for key in entry:
        if key not in every:
            close = difflib.get_close_matches(str(key), every, n=1, cutoff=0.6)
            hint = f"did you mean `{close[0]}`?" if close else f"allowed keys: {', '.join(every)}"
            problems.append(_line([*loc, key], "unknown key", hint))
    return problems


def _problems(error: Any, raw: dict) -> list[str]:
    """One pydantic error as spec problems (``key `...`: problem -> fix``)."""
    loc, error_type, ctx = list(error["loc"]), error["type"], error.get("ctx") or {}
    if len(loc) >= 3 and loc[0] == "modalities" and loc[2] in ("[key]", _raw_kind(raw, loc[1])):
        del loc[2]  # the dict-key marker or the discriminator tag
    if error_type == SPEC_PROBLEM:
        return [_line(loc + ([ctx["key"]] if ctx.get("key") else []), ctx["problem"], ctx["fix"])]
    if error_type == "extra_forbidden":
        return [_unknown_key(loc, raw)]
    if error_type in ("union_tag_invalid", "union_tag_not_found"):
        return _unknown_kind(loc, raw)
    if loc[:1] == ["modalities"] and len(loc) == 2 and error_type == "model_attributes_type":
        return [_line(loc, "expected a mapping with kind, source, id_column ...", f"see {DOCS}")]
    if error_type == "missing":
        return [_line(loc, "missing", _field_hint(loc, raw) or f"see {DOCS}")]
    if len(loc) == 1 and loc[0] in TOP_HINTS:
        what = "missing or not a mapping" if loc[0] == "patients" else "missing or empty"
        return [_line(loc, what, TOP_HINTS[loc[0]])]
    # a plug-in kind's own field types: pydantic's message, the value and the field's hint
    problem = f"{error['msg'][:1].lower()}{error['msg'][1:]} (got {error.get('input')!r})"
    return [_line(loc, problem, _field_hint(loc, raw) or f"see {DOCS}")]


def _kind_problems(raw: dict) -> list[str]:
    """What each modality's kind says about the file beyond its options (e.g. timing)."""
    patients = raw.get("patients") if isinstance(raw.get("patients"), dict) else {}
    has_index_time = "index_time" in patients and not _is_none(patients["index_time"])
    modalities = raw.get("modalities") if isinstance(raw.get("modalities"), dict) else {}
    problems = []
    for name, entry in modalities.items():
        if not isinstance(entry, dict) or entry.get("kind") not in kind_names():
            continue
        has_time = entry.get("time_column") is not None
        for problem, fix in get_kind(entry["kind"]).spec_problems(has_time, has_index_time):
            problems.append(_line(["modalities", name], problem, fix))
    return problems


def _name_problems(raw: dict) -> list[str]:
    """Modality names that collide in DuckDB (case-insensitive), and too many modalities."""
    modalities = raw.get("modalities") if isinstance(raw.get("modalities"), dict) else {}
    names = [str(n) for n in modalities]
    problems = []
    for name in names:
        same = [n for n in names if n.lower() == name.lower()]
        if len(same) > 1 and name == same[0]:
            problems.append(
                _line(
                    ["modalities", name],
                    f"modalities {same} differ only in case; DuckDB tables ignore case",
                    "give them names that differ in letters, not only in case",
                )
            )
    if len(names) > MAX_MODALITIES:
        problems.append(
            _line(
                ["modalities"],
                f"{len(names)} modalities, over the limit of {MAX_MODALITIES}",
                "merge related tables into one modality (e.g. several lab panels as one tabular)",
            )
        )
    return problems


# ------------------------------------------------------------------ the CohortSpec
def _source_desc(source: SourceEntry, base_dir: Path) -> dict[str, Any]:
    return {"path": source.path, "query": source.query, "base_dir": str(base_dir)}


def _patients_source(entry: PatientsEntry, base_dir: Path) -> dict[str, Any]:
    keys = ("id_column", "index_time", "label_column", "positive_label", "sex_column")
    keys += ("sex_values", "age_column", "site_column", "delimiter", "time_format", "timezone")
    return {**_source_desc(entry.source, base_dir), **{k: getattr(entry, k) for k in keys}}


def _modality(name: str, entry: Any, base_dir: Path, has_index_time: bool) -> ModalitySpec:
    kind = get_kind(entry.kind)
    # Without an index time there is nothing to cut at: every row is usable.
    timed = entry.time_column is not None and has_index_time
    source = {
        **_source_desc(entry.source, base_dir),
        "id_column": entry.id_column,
        "time_column": entry.time_column if timed else None,
        "ignored_time_column": entry.time_column if not timed else None,
        "delimiter": entry.delimiter,
        "time_format": entry.time_format,
        "timezone": entry.timezone,
    }
    options = entry.model_dump(include=set(kind.Options.model_fields))
    return ModalitySpec(name, entry.kind, timed=timed, options=options, source=source)


def parse_spec(raw: Any, path: Path) -> CohortSpec:
    """Validate a loaded YAML document; ``path`` names the file in errors and anchors sources."""
    if not isinstance(raw, dict):
        raise SpecError(
            path, [f"the file is not a YAML mapping -> start from the example in {DOCS}"]
        )
    problems = []
    try:
        doc: Any = spec_document_model().model_validate(raw)
    except ValidationError as exc:
        problems = [p for error in exc.errors() for p in _problems(error, raw)]
    problems += _kind_problems(raw) + _name_problems(raw)
    if problems:
        raise SpecError(path, problems)
    if doc.deployment is not None:
        try:
            doc.deployment.check(list(doc.modalities))
        except ValueError as exc:
            raise SpecError(
                path, [f"key `deployment`: {exc} -> name the modalities of this spec"]
            ) from None
    base_dir = path.resolve().parent
    has_index_time = doc.patients.index_time is not None
    # the folder name (for cohort.yaml / spec.yaml) or the file name, made a safe name
    default_name = base_dir.name if path.stem in ("cohort", "spec") else path.stem
    return CohortSpec(
        name=doc.name or default_cohort_name(default_name),
        modalities=tuple(
            _modality(name, entry, base_dir, has_index_time)
            for name, entry in doc.modalities.items()
        ),
        has_oracle=False,
        patients_source=_patients_source(doc.patients, base_dir),
        deployment=doc.deployment,
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
        raw = load_spec_yaml(path.read_text(encoding="utf-8"))
    except YAMLProblem as exc:
        raise SpecError(path, [str(exc)]) from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise SpecError(
            path, [f"not valid YAML: {exc} -> fix the syntax at the position shown"]
        ) from None
    return parse_spec(raw, path)
