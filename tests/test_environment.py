"""The three places that pin dependencies agree: pyproject, requirements.lock, environment.yml."""

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def lock_pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, version = line.split("==")
            pins[canonical(name)] = version
    return pins


def direct_dependencies() -> list[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = project["dependencies"] + project["optional-dependencies"]["dev"]
    return [canonical(re.split(r"[<>=!~ \[]", n)[0]) for n in names]


def environment_pins() -> dict[str, str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    return {canonical(p.split("==")[0]): p.split("==")[1] for p in pip}


def test_lock_pins_every_package_exactly():
    lines = [
        line
        for line in (ROOT / "requirements.lock").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert all(re.fullmatch(r"[A-Za-z0-9_.\-]+==[A-Za-z0-9_.+\-]+", line) for line in lines)
    assert len(lines) == len(lock_pins())


def test_direct_dependencies_are_locked():
    missing = [d for d in direct_dependencies() if d not in lock_pins()]
    assert missing == []


def test_environment_yml_pins_the_same_versions_as_the_lock():
    lock, env = lock_pins(), environment_pins()
    assert sorted(env) == sorted(direct_dependencies())
    differing = {n: (env[n], lock[n]) for n in env if env[n] != lock[n]}
    assert differing == {}


def test_python_version_agrees():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert "python=3.11" in env["dependencies"]
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["requires-python"] == ">=3.11,<3.12"


def test_known_traps_are_pinned_around():
    lock = lock_pins()
    # factor_analyzer 0.5.1 calls check_array(force_all_finite=...), removed in scikit-learn 1.8
    major, minor = (int(x) for x in lock["scikit-learn"].split(".")[:2])
    assert (major, minor) < (1, 8)
