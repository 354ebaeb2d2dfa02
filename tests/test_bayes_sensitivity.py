import pandas as pd
import pytest

from alliance.bayes.sensitivity import sensitivity_table


def write_summary(path, mean, sd=0.1):
    pd.DataFrame(
        {
            "parameter": ["b_alliance", "sigma"],
            "mean": [mean, 1.0],
            "sd": [sd, 0.05],
            "eti95_low": [mean - 0.2, 0.9],
            "eti95_high": [mean + 0.2, 1.1],
        }
    ).to_csv(path, index=False)
    return path


def test_shift_in_default_sd_units(tmp_path):
    files = {
        1: write_summary(tmp_path / "a.csv", -0.30),
        0.5: write_summary(tmp_path / "b.csv", -0.28),
        2: write_summary(tmp_path / "c.csv", -0.35),
    }
    table = sensitivity_table(files).set_index("parameter")
    assert list(table.index) == ["b_alliance"]  # only key effects are tabled
    assert table.loc["b_alliance", "max_shift_sd"] == pytest.approx(0.5)
    assert table.loc["b_alliance", "mean_x0.5"] == -0.28
    assert table.loc["b_alliance", "eti95_x2"] == "[-0.550, -0.150]"


def test_default_scale_required(tmp_path):
    with pytest.raises(ValueError, match=r"default prior scale 1 is needed, got scales \[0.5\]"):
        sensitivity_table({0.5: write_summary(tmp_path / "b.csv", -0.3)})
