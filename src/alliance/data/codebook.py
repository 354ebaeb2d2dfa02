"""Dataset codebooks: load, validate and resolve the mapping from a raw export to tidy tables."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alliance.data.instruments import Instrument, load_instrument
from alliance.data.schemas import read_yaml, validate_document

RATERS = ("client", "therapist", "observer")


class CodebookError(ValueError):
    """A codebook that cannot be applied: names the codebook, the key and the column."""


@dataclass(frozen=True)
class Outcome:
    """An outcome measure's raw column, valid range and time point."""

    measure: str
    column: str
    min: float
    max: float
    integer: bool = True
    timepoint: str | None = None


@dataclass(frozen=True)
class Covariate:
    """A patient-level covariate column."""

    column: str
    name: str
    type: str = "numeric"
    min: float | None = None
    max: float | None = None
    values: dict[str, str] | None = None


@dataclass(frozen=True)
class Codebook:
    """A validated codebook with its paths resolved and its instrument loaded.

    Attributes mirror ``codebook.schema.yaml``; ``file`` is absolute, ``instrument`` is an
    :class:`~alliance.data.instruments.Instrument` (``None`` for ``kind: effects``).
    """

    path: Path
    dataset: str
    kind: str
    file: Path
    format: str
    read: dict[str, Any]
    layout: str
    sessions: tuple[int, ...]
    ids: dict[str, str]
    rater: str
    rater_values: dict[str, str]
    groups: tuple[str, ...]
    group_columns: dict[str, str]
    instrument: Instrument | None
    item_columns: dict[str, str]
    recode_shift: int
    recode_map: dict[float, int] | None
    missing_codes: tuple[Any, ...]
    outcomes: tuple[Outcome, ...]
    covariates: tuple[Covariate, ...]
    effects: dict[str, Any] = field(default_factory=dict)
    strict: bool = False
    declared_missing: bool = True
    raw: dict[str, Any] = field(default_factory=dict)

    def item_column(self, item: str, session: int | None = None) -> str:
        """Raw column of ``item`` (for the wide layout, at ``session``)."""
        template = self.item_columns[item]
        return template.format(session=session) if self.layout == "wide" else template

    def outcome_column(self, outcome: Outcome, session: int | None = None) -> str:
        """Raw column of ``outcome`` (for the wide layout, at ``session``)."""
        if self.layout == "wide" and outcome.timepoint is None:
            return outcome.column.format(session=session)
        return outcome.column


def _item_templates(doc: dict[str, Any], instrument: Instrument, path: Path) -> dict[str, str]:
    """Map item ID -> raw column template from an explicit map or a pattern."""
    spec = doc["items"]
    wide = doc.get("layout", "long") == "wide"
    if "map" in spec:
        unknown = sorted(set(spec["map"]) - set(instrument.items))
        if unknown:
            raise CodebookError(
                f"{path}: key 'items.map' names items {unknown} that instrument "
                f"{instrument.name!r} does not have (its items: {', '.join(instrument.items)})"
            )
        absent = [item for item in instrument.items if item not in spec["map"]]
        if absent:
            raise CodebookError(
                f"{path}: key 'items.map' lacks instrument items {absent}; map every item"
            )
        templates = dict(spec["map"])
    else:
        templates = {}
        for number, item in enumerate(instrument.items, start=1):
            try:
                # keep {session} as a placeholder for the wide layout
                templates[item] = spec["pattern"].format(number=number, session="{session}")
            except (KeyError, IndexError, ValueError) as exc:
                raise CodebookError(
                    f"{path}: key 'items.pattern' {spec['pattern']!r} is not a valid pattern "
                    f"(use {{number}} and, wide, {{session}}): {exc}"
                ) from None
    shared: dict[str, list[str]] = {}
    for item, template in templates.items():
        shared.setdefault(template, []).append(item)
    shared = {col: items for col, items in shared.items() if len(items) > 1}
    if shared:
        key = "items.map" if "map" in spec else "items.pattern"
        listing = "; ".join(f"{', '.join(items)} -> {col!r}" for col, items in shared.items())
        raise CodebookError(
            f"{path}: key '{key}' maps several items to one column ({listing}); every item "
            "needs its own column"
        )
    for item, template in templates.items():
        if wide and "{session}" not in template:
            raise CodebookError(
                f"{path}: wide layout needs {{session}} in the column of item {item}, "
                f"got {template!r}"
            )
    return templates


def _group_names(doc: dict[str, Any]) -> dict[str, str]:
    """Tidy group name -> raw column, in codebook order."""
    out = {}
    for group in doc.get("groups", []):
        if isinstance(group, str):
            out[group] = group
        else:
            out[group["name"]] = group["column"]
    return out


def _value_labels(values: dict[Any, Any] | None) -> dict[str, str] | None:
    """Categorical code -> label with codes as text (``1`` and ``1.0`` both read ``"1"``)."""
    if values is None:
        return None
    out = {}
    for code, label in values.items():
        key = str(code)
        if isinstance(code, float) and code.is_integer():
            key = str(int(code))
        out[key] = str(label)
    return out


def load_codebook(path: str | Path, *, check_file: bool = True) -> Codebook:
    """Read, validate and resolve a codebook YAML.

    Parameters
    ----------
    path
        The codebook file; its ``file`` is resolved relative to the codebook's folder.
    check_file
        Whether the data file must exist. The workflow's remote jobs (Kubernetes pods) parse the
        codebooks before their inputs are downloaded from storage, so they skip the check (the
        submitting process has made it).

    Raises
    ------
    alliance.data.schemas.SchemaError
        If the YAML does not fit ``codebook.schema.yaml`` (every violation listed with its key).
    CodebookError
        If it fits the schema but cannot be applied: unknown instrument, items that are not the
        instrument's, a wide layout without ``{session}`` in its column patterns, or a data file
        that does not exist.
    """
    path = Path(path)
    doc = read_yaml(path)
    validate_document(doc, "codebook", path)
    kind = doc.get("kind", "items")
    file = Path(doc["file"])
    try:
        file = (path.parent / file).resolve() if not file.is_absolute() else file
        file.resolve()  # raises for a symlink loop
        exists = file.is_file()
    except (OSError, RuntimeError) as exc:  # a symlink loop (RuntimeError before Python 3.13)
        raise CodebookError(
            f"{path}: key 'file' names {doc['file']!r}, which cannot be resolved: {exc}"
        ) from None
    if check_file and not exists:
        what = "is a directory" if file.is_dir() else "does not exist"
        raise CodebookError(f"{path}: key 'file' names {doc['file']!r}, which {what} ({file})")
    read = dict(doc.get("read", {}))
    if "dictionary" in read:  # a REDCap data dictionary, relative to the codebook
        dictionary = Path(read["dictionary"])
        dictionary = dictionary if dictionary.is_absolute() else (path.parent / dictionary)
        if check_file and not dictionary.is_file():
            raise CodebookError(
                f"{path}: key 'read.dictionary' names {read['dictionary']!r}, which does not "
                f"exist ({dictionary.resolve()})"
            )
        read["dictionary"] = str(dictionary.resolve())
    instrument = None
    templates: dict[str, str] = {}
    if kind == "items":
        try:
            name = doc["instrument"]
            if name.endswith((".yaml", ".yml")) and not Path(name).is_absolute():
                candidate = (path.parent / name).resolve()
                name = str(candidate) if candidate.is_file() else name
            instrument = load_instrument(name)
        except ValueError as exc:
            raise CodebookError(f"{path}: key 'instrument': {exc}") from None
        templates = _item_templates(doc, instrument, path)
    layout = doc.get("layout", "long")
    sessions = list(doc.get("sessions", ()))
    repeated = sorted({s for s in sessions if sessions.count(s) > 1})
    if repeated:
        raise CodebookError(
            f"{path}: key 'sessions' lists sessions {repeated} more than once, got {sessions}; "
            "each session's columns are read once"
        )
    if kind == "items" and layout == "long" and "session" not in doc["ids"]:
        raise CodebookError(f"{path}: key 'ids.session' is required for the long layout")
    for outcome in doc.get("outcomes", []):
        if layout == "wide" and "timepoint" not in outcome and "{session}" not in outcome["column"]:
            raise CodebookError(
                f"{path}: wide layout needs {{session}} in outcome column {outcome['column']!r} "
                "or a fixed 'timepoint'"
            )
        if outcome["max"] <= outcome["min"]:
            raise CodebookError(
                f"{path}: outcome {outcome['measure']!r} needs max > min, got "
                f"{outcome['min']}..{outcome['max']}"
            )
    recode = doc.get("recode", {})
    recode_map = None
    if "map" in recode:
        try:
            recode_map = {float(k): int(v) for k, v in recode["map"].items()}
        except ValueError:
            raise CodebookError(
                f"{path}: key 'recode.map' needs numeric raw values, got {list(recode['map'])}"
            ) from None
    return Codebook(
        path=path.resolve(),
        dataset=doc["dataset"],
        kind=kind,
        file=file,
        format=doc["format"],
        read=read,
        layout=layout,
        sessions=tuple(doc.get("sessions", ())),
        ids=dict(doc.get("ids", {})),
        rater=doc.get("rater", instrument.rater if instrument else "client"),
        rater_values={str(k): v for k, v in doc.get("rater_values", {}).items()},
        groups=tuple(_group_names(doc)),
        group_columns=_group_names(doc),
        instrument=instrument,
        item_columns=templates,
        recode_shift=int(recode.get("shift", 0)),
        recode_map=recode_map,
        missing_codes=tuple(doc.get("missing_codes", ())),
        outcomes=tuple(
            Outcome(
                measure=o["measure"],
                column=o["column"],
                min=float(o["min"]),
                max=float(o["max"]),
                integer=bool(o.get("integer", True)),
                timepoint=o.get("timepoint"),
            )
            for o in doc.get("outcomes", [])
        ),
        covariates=tuple(
            Covariate(
                column=c["column"],
                name=c.get("name", c["column"]),
                type=c.get("type", "numeric"),
                min=c.get("min"),
                max=c.get("max"),
                values=_value_labels(c.get("values")),
            )
            for c in doc.get("covariates", [])
        ),
        effects=dict(doc.get("effects", {})),
        strict=bool(doc.get("strict", False)),
        declared_missing=bool(doc.get("declared_missing", True)),
        raw=doc,
    )
