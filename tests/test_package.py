"""What importing the package does to its environment."""

import os
import subprocess
import sys

PRINT_FLAGS = (
    "import alliance, os, pytensor; "
    "print(os.environ.get('PYTENSOR_FLAGS', '')); print(repr(pytensor.config.blas__ldflags))"
)


def run(env_update, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTENSOR_FLAGS", "PYTENSORRC")}
    env["PYTENSORRC"] = str(tmp_path / "absent.rc")
    env.update(env_update)
    out = subprocess.run(
        [sys.executable, "-c", PRINT_FLAGS], env=env, capture_output=True, text=True, check=True
    )
    return out.stdout.splitlines(), out.stderr


def test_pytensor_reaches_blas_through_numpy_without_probing(tmp_path):
    lines, err = run({}, tmp_path)
    assert lines == ["blas__ldflags=", "''"]
    assert "could not link to a BLAS" not in err


def test_a_users_pytensor_settings_are_kept(tmp_path):
    lines, _ = run({"PYTENSOR_FLAGS": "floatX=float64"}, tmp_path)
    assert lines[0] == "floatX=float64,blas__ldflags="
    lines, _ = run({"PYTENSOR_FLAGS": "blas__ldflags=-lopenblas"}, tmp_path)
    assert lines[0] == "blas__ldflags=-lopenblas"
    rc = tmp_path / "pytensorrc"
    rc.write_text("[blas]\nldflags = -lblas\n")
    lines, _ = run({"PYTENSORRC": str(rc)}, tmp_path)
    assert lines[0] == ""


def test_each_schema_has_one_copy():
    """The codebook, instrument and measure schemas ship with the library (what the code reads,
    installed or not); workflow/schemas may show them only as links to those files, never as
    copies that could drift."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    library = root / "src" / "alliance" / "data" / "schemas"
    names = {p.name for p in library.glob("*.yaml")}
    assert {"codebook.schema.yaml", "instrument.schema.yaml"} <= names
    for shown in (root / "workflow" / "schemas").glob("*.yaml"):
        if shown.name in names:
            assert shown.is_symlink(), f"{shown} copies {library / shown.name}: link it instead"
            assert shown.resolve() == (library / shown.name).resolve()
