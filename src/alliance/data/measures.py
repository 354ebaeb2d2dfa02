"""Outcome measures as data: the range and direction of a total score, and its source.

A codebook's ``outcomes[].measure`` names a measure. The built-in ones (``phq9``, ``gad7``,
``core10``, ``oq45``, ``ors``) live in ``alliance/data/measures/*.yaml``; each gives the range
of the total, whether totals are whole numbers, whether lower or higher is better and the
publication that gives the scoring (never the item text). The draft command uses them to find
outcome columns and their ranges; :func:`alliance.meta.effects.dataset_effect` takes the sign of the
alliance-outcome correlation from ``better``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

from alliance.data.schemas import SchemaError, read_yaml, validate_document


@dataclass(frozen=True)
class Measure:
    """An outcome measure's total score.

    Attributes
    ----------
    name, title
        Identifier (as in codebooks and config) and full name.
    min, max
        The range of the total.
    integer
        Whether totals are whole numbers.
    better
        ``"lower"`` (symptom or distress measures) or ``"higher"`` (well-being, functioning).
    items
        Number of items the total sums (0 when not given).
    source
        Citation of the publication that gives the scoring.
    """

    name: str
    title: str
    min: float
    max: float
    better: str
    source: str
    integer: bool = True
    items: int = 0


def _folder() -> Path:
    return Path(str(resources.files("alliance.data").joinpath("measures")))


def builtin_measures() -> list[str]:
    """Names of the outcome measures shipped with the package."""
    return sorted(p.name.removesuffix(".yaml") for p in _folder().iterdir() if p.suffix == ".yaml")


@cache
def load_measure(name: str) -> Measure:
    """The built-in measure ``name``.

    Raises
    ------
    ValueError
        If ``name`` is not a built-in measure (the message lists them).
    SchemaError
        If its file does not fit ``measure.schema.yaml`` or its range is empty.
    """
    if name not in builtin_measures():
        raise ValueError(
            f"unknown outcome measure {name!r}: the built-in measures are "
            f"{', '.join(builtin_measures())}"
        )
    path = _folder() / f"{name}.yaml"
    doc = read_yaml(path)
    validate_document(doc, "measure", path)
    if doc["max"] <= doc["min"]:
        raise SchemaError(f"{path}: max must exceed min, got {doc['min']}..{doc['max']}")
    return Measure(
        name=doc["name"],
        title=doc["title"],
        min=float(doc["min"]),
        max=float(doc["max"]),
        better=doc["better"],
        source=" ".join(doc["source"].split()),
        integer=bool(doc.get("integer", True)),
        items=int(doc.get("items", 0)),
    )


def lower_is_better(name: str) -> bool | None:
    """Whether lower totals of measure ``name`` are better; ``None`` for an unknown measure."""
    if name not in builtin_measures():
        return None
    return load_measure(name).better == "lower"
