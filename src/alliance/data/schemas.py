"""Load the package's JSON Schemas and validate documents against them with located errors."""

from __future__ import annotations

from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml


class SchemaError(ValueError):
    """A document (codebook, instrument, config) that does not fit its schema."""


@cache
def load_schema(name: str) -> dict[str, Any]:
    """Return the schema ``name`` (for example ``"codebook"``) of ``alliance/data/schemas``."""
    text = resources.files("alliance.data").joinpath("schemas", f"{name}.schema.yaml").read_text()
    return yaml.safe_load(text)


@cache
def _validator(schema_name: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(load_schema(schema_name))


def validate_document(document: Any, schema_name: str, source: str | Path) -> None:
    """Validate ``document`` against schema ``schema_name``.

    Parameters
    ----------
    document
        The parsed YAML/JSON document.
    schema_name
        Name of a schema in ``alliance/data/schemas`` without the ``.schema.yaml`` suffix.
    source
        The file the document came from, named in the error.

    Raises
    ------
    SchemaError
        Listing every violation with its key path, for example
        ``codebook.yaml: at 'instruments/0/items': ...``.
    """
    validator = _validator(schema_name)
    errors = sorted(validator.iter_errors(document), key=lambda e: list(map(str, e.path)))
    if errors:
        lines = []
        for error in errors:
            where = "/".join(str(p) for p in error.path) or "(top level)"
            lines.append(f"  at '{where}': {error.message}")
        raise SchemaError(f"{source}: does not fit the {schema_name} schema:\n" + "\n".join(lines))


def read_yaml(path: str | Path) -> Any:
    """Read a YAML file, naming the file in any parse error."""
    path = Path(path)
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the C loader is ~8x faster
    try:
        return yaml.load(path.read_text(), Loader=loader)  # noqa: S506 - a safe loader
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise SchemaError(f"{path}: is a directory, not a YAML file") from None
    except UnicodeDecodeError as exc:
        raise SchemaError(f"{path}: is not UTF-8 text: {exc.reason} at byte {exc.start}") from None
    except yaml.YAMLError as exc:
        raise SchemaError(f"{path}: is not valid YAML: {exc}") from None
