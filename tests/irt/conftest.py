"""Fixtures of the IRT tests."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

import numpy as np
import pytest


@pytest.fixture
def perturb_start(monkeypatch: pytest.MonkeyPatch) -> Callable[[ModuleType], None]:
    """Return ``perturb(module)``: the module's ``_start`` moved by 0.1% (seeded), so the
    optimizer takes another path, as another CPU's rounding makes it do."""

    def perturb(module: ModuleType) -> None:
        start = module._start
        noise = np.random.default_rng(7)

        def moved(*args):
            x = start(*args)
            return x * (1 + 1e-3 * noise.normal(size=x.shape))

        monkeypatch.setattr(module, "_start", moved)

    return perturb
