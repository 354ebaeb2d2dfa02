import pandas as pd

from alliance.report import _apa, markdown_table, methods_paragraph, versions


def test_methods_paragraph_follows_config():
    config = {
        "seed": 11,
        "scoring": {"min_answered_share": 0.5},
        "describe": {"session": 4, "rater": "therapist", "parallel_iterations": 250},
    }
    text = methods_paragraph(config, versions())
    assert "at least 50% of a scale's items" in text
    assert "the therapist ratings of session 4" in text
    assert "(250 random data sets, 95th percentile, seed 11)" in text
    assert f"pandas {versions()['pandas']}" in text


def test_apa_numbers_and_tables():
    assert _apa(0.8312) == ".83"
    assert _apa(-0.2) == "-.20"
    assert _apa(None) == "NA"
    table = markdown_table(pd.DataFrame({"a": [1, 2], "b": ["x", "y"]}))
    assert table.splitlines() == ["| a | b |", "|---|---|", "| 1 | x |", "| 2 | y |"]
