import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from alliance.data.instruments import Instrument
from alliance.describe.reliability import alpha_by_factor, alpha_table, cronbach_alpha, pairwise_cov

HOLZ = Path(__file__).parent / "data" / "holzinger1939"
# Reference files written by psych 2.2.9 (R 4.2.2) with the shared tools/alpha.R (check.keys =
# FALSE); see tests/data/holzinger1939/README.md. (file, data file, use)
GOLDEN = [
    ("psych_alpha.json", "holzinger1939.csv", "pairwise"),
    ("psych_alpha_missing_pairwise.json", "holzinger1939_missing.csv", "pairwise"),
    ("psych_alpha_missing_complete.json", "holzinger1939_missing.csv", "complete"),
]
ALPHA_KEYS = ["raw_alpha", "std_alpha", "G6_smc", "average_r", "median_r", "ase"]
# Our implementation matches psych to ~1e-14; 1e-6 is the tolerance asked of alpha-type values
# and is used for every statistic (S/N, mean, sd and item statistics included).
TOL = 1e-6


def _cases():
    for ref_file, data_file, use in GOLDEN:
        with open(HOLZ / ref_file) as fh:
            scales = json.load(fh)["scales"]
        for name in scales:
            yield pytest.param(ref_file, data_file, use, name, id=f"{ref_file}-{name}")


@pytest.mark.parametrize(("ref_file", "data_file", "use", "scale"), list(_cases()))
def test_matches_psych_alpha(ref_file, data_file, use, scale):
    with open(HOLZ / ref_file) as fh:
        ref = json.load(fh)["scales"][scale]
    data = pd.read_csv(HOLZ / data_file)[ref["items"]]
    if use == "complete":  # alpha.R drops incomplete rows before psych::alpha
        data = data.dropna()
    res = cronbach_alpha(data, use=use)

    assert res["n_obs"] == ref["n_obs_rows"]
    assert res["n_complete"] == ref["n_complete"]
    for key in ALPHA_KEYS + ["S_N", "mean", "sd"]:
        assert res[key] == pytest.approx(ref[key], abs=TOL), key
    for bound in ("lower", "alpha", "upper"):
        assert res["feldt_ci"][bound] == pytest.approx(ref["feldt_ci"][bound], abs=TOL)

    dropped = pd.DataFrame(ref["alpha_if_dropped"]).set_index("item")
    np.testing.assert_allclose(
        res["alpha_if_dropped"][["raw_alpha", "std_alpha"]].to_numpy(),
        dropped[["raw_alpha", "std_alpha"]].to_numpy(),
        rtol=0,
        atol=TOL,
    )
    stats = pd.DataFrame(ref["item_stats"]).set_index("item")
    assert res["item_stats"]["n"].tolist() == stats["n"].tolist()
    np.testing.assert_allclose(
        res["item_stats"][["r_cor", "r_drop", "mean", "sd"]].to_numpy(),
        stats[["r.cor", "r.drop", "mean", "sd"]].to_numpy(),
        rtol=0,
        atol=TOL,
    )


def test_pairwise_cov_matches_pandas():
    data = pd.read_csv(HOLZ / "holzinger1939_missing.csv")[[f"x{i}" for i in range(1, 10)]]
    cov, n = pairwise_cov(data.to_numpy())
    # pandas also uses pairwise-complete observations with pairwise means.
    np.testing.assert_allclose(cov, data.cov().to_numpy(), rtol=1e-12)
    assert n[0, 1] == (data["x1"].notna() & data["x2"].notna()).sum()
    assert n[0, 0] == data["x1"].notna().sum()


def test_two_items_closed_form(rng):
    x = rng.normal(size=(200, 1))
    data = pd.DataFrame({"a": x[:, 0] + rng.normal(size=200), "b": x[:, 0] + rng.normal(size=200)})
    res = cronbach_alpha(data)
    cov = np.cov(data.to_numpy(), rowvar=False)
    # k = 2: alpha = 2 (1 - (v1 + v2) / (v1 + v2 + 2 c)) = 4 c / (v1 + v2 + 2 c)
    expected = 4 * cov[0, 1] / (cov[0, 0] + cov[1, 1] + 2 * cov[0, 1])
    assert res["raw_alpha"] == pytest.approx(expected, abs=1e-12)
    assert res["alpha_if_dropped"]["raw_alpha"].isna().all()


def test_alpha_by_factor_reverses_with_instrument_scale():
    holz = pd.read_csv(HOLZ / "holzinger1939_missing.csv")
    instrument = Instrument(
        name="hs",
        title="Holzinger-Swineford tests",
        rater="client",
        scale_min=0,
        scale_max=10,
        items=tuple(f"x{i}" for i in range(1, 10)),
        factors={
            "visual": ("x1", "x2", "x3"),
            "textual": ("x4", "x5", "x6"),
            "speed": ("x7", "x8", "x9"),
        },
        reverse_keyed=("x2",),
    )
    results = alpha_by_factor(holz, instrument)
    assert list(results) == ["visual", "textual", "speed", "total"]
    flipped = holz[["x1", "x2", "x3"]].assign(x2=10 - holz["x2"])
    direct = cronbach_alpha(flipped)
    assert results["visual"]["raw_alpha"] == pytest.approx(direct["raw_alpha"], abs=1e-12)
    # Unreversed scales equal the psych reference (the total is psych's "all9" scale).
    with open(HOLZ / "psych_alpha_missing_pairwise.json") as fh:
        ref = json.load(fh)["scales"]
    assert results["textual"]["raw_alpha"] == pytest.approx(ref["textual"]["raw_alpha"], abs=TOL)
    table = alpha_table(results)
    assert list(table.index) == ["visual", "textual", "speed", "total"]
    assert table.loc["speed", "feldt_lower"] == pytest.approx(ref["speed"]["feldt_ci"]["lower"])
    assert table.loc["total", "n_items"] == 9


def test_alpha_by_factor_skips_rows_without_answers(items_table, wai_sr):
    table = items_table.copy()
    table.loc[table.index[:5], list(wai_sr.factors["bond"])] = np.nan
    results = alpha_by_factor(table, wai_sr)
    has_bond = table[list(wai_sr.factors["bond"])].notna().any(axis=1).sum()
    assert results["bond"]["n_obs"] == has_bond
    assert results["task"]["n_obs"] == len(table)


def test_constant_item_dropped_with_warning(rng):
    data = pd.DataFrame(rng.normal(size=(50, 3)), columns=["a", "b", "c"]).assign(d=3.0)
    with pytest.warns(
        UserWarning, match=r"items without variance \(or answers\) were dropped.*\['d'\]"
    ):
        res = cronbach_alpha(data)
    assert res["items"] == ["a", "b", "c"]
    assert res["dropped_items"] == ["d"]


def test_negative_item_noted(rng):
    f = rng.normal(size=300)
    data = pd.DataFrame({f"i{j}": f + rng.normal(size=300) for j in range(3)})
    data["i3"] = -f + rng.normal(size=300)
    res = cronbach_alpha(data)
    assert any("['i3']" in w and "reversed" in w for w in res["warnings"])


def test_unknown_use():
    with pytest.raises(ValueError, match="use must be one of .*, got 'listwise'"):
        cronbach_alpha(pd.DataFrame({"a": [1.0, 2.0], "b": [2.0, 1.0]}), use="listwise")


def test_needs_two_items():
    with pytest.raises(ValueError, match=r"at least two items with variance, got \['a'\]"):
        cronbach_alpha(pd.DataFrame({"a": [1.0, 2.0, 3.0]}))


def test_items_never_answered_together():
    data = pd.DataFrame(
        {"a": [1.0, 2.0, 3.0, np.nan, np.nan, np.nan], "b": [np.nan, np.nan, np.nan, 1, 2, 4]}
    )
    with pytest.raises(ValueError, match="must share at least two answered rows, got 0"):
        cronbach_alpha(data)
