"""Instrument definitions as data: items, factors, response scale, reverse keys and source."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np

from alliance.data.schemas import SchemaError, read_yaml, validate_document


@dataclass(frozen=True)
class Instrument:
    """A questionnaire's scoring key.

    Attributes
    ----------
    name, title
        Identifier and full name.
    rater
        Perspective the version is written for: client, therapist or observer.
    scale_min, scale_max
        The response scale (integer categories from ``scale_min`` to ``scale_max``, or the
        ends of a continuous scale).
    scale_step
        None for integer categories; the resolution of a continuous (visual analogue) scale,
        whose answers are ``scale_min + k * scale_step`` (the Session Rating Scale: 0.1).
    items
        Item IDs in instrument order.
    factors
        Factor (subscale) name -> item IDs.
    reverse_keyed
        Items scored as ``scale_min + scale_max - x``.
    labels
        Anchor label by response value (may be empty).
    source
        Citation of the publication giving the key.
    """

    name: str
    title: str
    rater: str
    scale_min: int
    scale_max: int
    items: tuple[str, ...]
    factors: dict[str, tuple[str, ...]]
    reverse_keyed: tuple[str, ...] = ()
    labels: dict[int, str] = field(default_factory=dict)
    total: bool = True
    source: str = ""
    path: str = ""
    scale_step: float | None = None

    @property
    def continuous(self) -> bool:
        """Whether the answers are measurements on a continuous scale, not categories."""
        return self.scale_step is not None

    def _needs_categories(self) -> None:
        if self.continuous:
            raise ValueError(
                f"instrument {self.name!r} has a continuous scale ({self.scale_min}-"
                f"{self.scale_max}, step {self.scale_step:g}), not response categories"
            )

    @property
    def categories(self) -> tuple[int, ...]:
        """All valid response values (ValueError for a continuous scale)."""
        self._needs_categories()
        return tuple(range(self.scale_min, self.scale_max + 1))

    @property
    def n_categories(self) -> int:
        """Number of response categories (ValueError for a continuous scale)."""
        self._needs_categories()
        return self.scale_max - self.scale_min + 1

    @property
    def response_bins(self) -> tuple[int, ...]:
        """The groups answers are counted in.

        The categories, or for a continuous scale the lower ends of its unit intervals
        ``[b, b + 1)`` (the last one closed).
        """
        if self.continuous:
            return tuple(range(self.scale_min, self.scale_max))
        return self.categories

    def response_bin(self, values: np.ndarray) -> np.ndarray:
        """The bin (:attr:`response_bins`) of each answer; NaN stays NaN."""
        values = np.asarray(values, dtype=float)
        if not self.continuous:
            return values
        return np.minimum(np.floor(values), self.scale_max - 1)

    def bin_label(self, b: int) -> str:
        """How a bin is shown: the category, or the interval of a continuous scale."""
        return f"{b}-{b + 1}" if self.continuous else str(b)


def is_builtin(instrument: Instrument) -> bool:
    """Whether ``instrument`` was loaded from the package's own files (not a user's YAML)."""
    folder = Path(str(resources.files("alliance.data").joinpath("instruments"))).resolve()
    return bool(instrument.path) and Path(instrument.path).resolve().parent == folder


def builtin_instruments() -> list[str]:
    """Names of the instruments shipped with the package."""
    folder = resources.files("alliance.data").joinpath("instruments")
    return sorted(
        p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml")
    )


def load_instrument(name_or_path: str | Path) -> Instrument:
    """Load a built-in instrument by name (``"wai_sr"``) or a user's instrument YAML by path.

    Raises
    ------
    ValueError
        If the name is neither a built-in instrument nor an existing file.
    SchemaError
        If the file does not fit the instrument schema or is inconsistent (a factor or reverse
        key naming an unknown item, an empty scale).
    """
    text = str(name_or_path)
    if text in builtin_instruments():
        path = Path(str(resources.files("alliance.data").joinpath("instruments", f"{text}.yaml")))
    elif text.endswith((".yaml", ".yml")) and Path(text).is_file():
        path = Path(text)
    else:
        raise ValueError(
            f"unknown instrument {text!r}: not a built-in instrument "
            f"({', '.join(builtin_instruments())}) and not an existing .yaml file"
        )
    return _load_instrument_file(str(path.resolve()), path.stat().st_mtime_ns)


@lru_cache(maxsize=64)
def _load_instrument_file(path_text: str, mtime_ns: int) -> Instrument:
    """Parse and check one instrument file (cached by path and modification time)."""
    path = Path(path_text)
    doc = read_yaml(path)
    validate_document(doc, "instrument", path)
    items = tuple(doc["items"])
    problems = []
    for factor, members in doc["factors"].items():
        unknown = sorted(set(members) - set(items))
        if unknown:
            problems.append(f"factor {factor!r} names unknown items {unknown}")
    unknown_rev = sorted(set(doc.get("reverse_keyed", [])) - set(items))
    if unknown_rev:
        problems.append(f"reverse_keyed names unknown items {unknown_rev}")
    if doc["scale"]["max"] <= doc["scale"]["min"]:
        problems.append(f"scale max must exceed min, got {doc['scale']}")
    step = doc["scale"].get("step")
    if step is not None:
        steps = (doc["scale"]["max"] - doc["scale"]["min"]) / step
        if abs(steps - round(steps)) > 1e-9:
            problems.append(f"scale step must divide max - min, got {doc['scale']}")
        if doc["scale"].get("labels"):
            problems.append("a continuous scale (step) has no category labels")
    if problems:
        raise SchemaError(f"{path}: " + "; ".join(problems))
    return Instrument(
        name=doc["name"],
        title=doc["title"],
        rater=doc["rater"],
        scale_min=int(doc["scale"]["min"]),
        scale_max=int(doc["scale"]["max"]),
        items=items,
        factors={k: tuple(v) for k, v in doc["factors"].items()},
        reverse_keyed=tuple(doc.get("reverse_keyed", [])),
        labels={int(k): str(v) for k, v in doc["scale"].get("labels", {}).items()},
        total=bool(doc.get("total", True)),
        source=" ".join(doc["source"].split()),
        path=str(path),
        scale_step=None if step is None else float(step),
    )
