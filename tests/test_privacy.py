"""Private and safe: data never runs as HTML, patient IDs stay out of reports and figures."""

import json
import re

import pandas as pd
import pytest

from alliance.report.summary import markdown_table, markdown_to_html, write_summary
from alliance.tables import md_text

SCRIPT = "<script>alert('x')</script>"
IMAGE = '<img src="http://example.org/beacon.png" onerror="alert(1)">'


def _ingest_report(root, name, warnings):
    folder = root / name / "ingest"
    folder.mkdir(parents=True)
    report = {
        "dataset": name,
        "kind": "items",
        "format": "csv",
        "layout": "long",
        "rows_in": 10,
        "rows_kept": 10,
        "rows_quarantined": 0,
        "reasons": {},
        "tidy": {"patients": 5, "therapists": 2},
        "item_cells": 120,
        "item_nonresponse": 0,
        "warnings": warnings,
    }
    (folder / "ingest_report.json").write_text(json.dumps(report))


def _no_live_html(page: str) -> None:
    """No tag of the page comes from the data: only the page's own markup is there."""
    tags = set(re.findall(r"<\s*([A-Za-z!/][^\s>]*)", page))
    allowed = {"!DOCTYPE", "html", "head", "meta", "title", "style", "body", "h1", "h2", "p"}
    allowed |= {"table", "thead", "tbody", "tr", "th", "td", "ul", "li", "strong", "em", "code"}
    allowed |= {f"/{t}" for t in allowed}
    assert tags <= allowed, tags - allowed
    assert "onerror" not in page.replace("onerror=&quot;", "")  # only as escaped text


def test_md_text_makes_html_inert():
    assert md_text(SCRIPT) == "\\<script>alert('x')\\</script>"
    assert md_text("P(OR < 1) and a <= b") == "P(OR < 1) and a <= b"  # readable where safe
    assert md_text("a\\<b>") == "a\\\\\\<b>"  # a data backslash cannot undo the escape
    assert md_text("two\nlines") == "two lines"
    table = markdown_table(pd.DataFrame({SCRIPT: ["a|b"]}))
    assert table.splitlines()[2] == "| a\\|b |"


def test_html_page_escapes_raw_html_links_and_title():
    text = (
        f"# T\n\n{SCRIPT}\n\n{IMAGE}\n\n[click](http://example.org) ![x](http://example.org/a.png)"
    )
    page = markdown_to_html(text, title="</title><script>x</script>")
    _no_live_html(page)
    assert "&lt;script&gt;alert(" in page
    assert "href" not in page and "src=" not in page.replace("src=&quot;", "")
    assert "<title>&lt;/title&gt;&lt;script&gt;x&lt;/script&gt;</title>" in page


def test_summary_escapes_a_planted_column_header(tmp_path):
    """A column header of the export reaches the summary through an ingest warning."""
    _ingest_report(
        tmp_path,
        "site_x",
        [f"columns not named in the codebook are ignored: ['{SCRIPT}', '{IMAGE}']"],
    )
    describe = tmp_path / "site_x" / "describe"
    describe.mkdir()
    (describe / "summary.json").write_text(
        json.dumps({"efa": {"warnings": [f"item {SCRIPT} has no variance"]}})
    )
    config = {"datasets": {"site_x": {}}, "seed": 1}
    text = write_summary(tmp_path, config, tmp_path / "summary.md")
    assert "\\<script>alert('x')\\</script>" in text  # inert in any CommonMark renderer
    assert SCRIPT not in text
    page = (tmp_path / "summary.html").read_text()
    _no_live_html(page)
    assert page.count("&lt;script&gt;alert(") == 2  # the ingest and the EFA warning, as text


@pytest.mark.parametrize("title", ["Results summary", "a & b"])
def test_page_title_is_escaped(title):
    page = markdown_to_html("x", title=title)
    assert f"<title>{title.replace('&', '&amp;')}</title>" in page


# --------------------------------------------------------------------- patient IDs

PATIENTS = [f"PX{k:04d}" for k in range(1, 7)]


def _idata_with_random_effects(rng, stuck_patient=False):
    """A posterior with population, therapist-level and per-patient parameters."""
    import arviz as az
    import numpy as np

    draws = rng.standard_normal((2, 500, len(PATIENTS)))
    if stuck_patient:
        draws[:, :, 2] = 1.0  # a constant chain: undefined R-hat, the worst parameter
    return az.from_dict(
        posterior={
            "b_within": rng.standard_normal((2, 500)),
            "u_raw": rng.standard_normal((2, 500, 2)),
            "v_raw": draws,
            "z_obs": rng.standard_normal((2, 500, 3)),
            "x_missing": rng.standard_normal((2, 500, 4)),
        },
        coords={"therapist": ["T01", "T02"], "patient": PATIENTS, "obs": [0, 1, 2]},
        dims={"u_raw": ["therapist"], "v_raw": ["patient"], "z_obs": ["obs"]},
        sample_stats={"diverging": np.zeros((2, 500), dtype=bool)},
    )


def test_summaries_keep_population_parameters_only(rng):
    from alliance.bayes.diagnostics import per_patient_names, population_summary, summarize

    idata = _idata_with_random_effects(rng)
    assert per_patient_names(idata) == ["v_raw", "z_obs", "x_missing"]
    table = population_summary(idata)
    assert table["parameter"].tolist() == ["b_within", "u_raw[T01]", "u_raw[T02]"]
    # the kept rows are exactly the full summary's rows of those parameters
    full = summarize(idata).set_index("parameter")
    pd.testing.assert_frame_equal(table.set_index("parameter"), full.loc[table["parameter"]])


def test_failures_name_no_patient(rng):
    from alliance.bayes.diagnostics import check

    result = check(_idata_with_random_effects(rng, stuck_patient=True))
    assert result["status"] == "fail"
    text = json.dumps(result)
    assert "v_raw (a patient's value)" in text
    assert not any(p in text for p in PATIENTS)


def test_process_model_summary_has_no_patient_rows(rng, tmp_path):
    from alliance.process.bayes_api import _summary_table
    from alliance.process.bayes_models import ProcessFit

    idata = _idata_with_random_effects(rng)
    fit = ProcessFit("growth", "pass", idata={"growth": idata, "outcome": idata})
    table = _summary_table(fit)
    assert set(table["parameter"]) == {"b_within", "u_raw[T01]", "u_raw[T02]"}
    assert table["stage"].tolist() == ["growth"] * 3 + ["outcome"] * 3
    per_patient = _summary_table(fit, per_patient=True)
    assert {f"v_raw[{p}]" for p in PATIENTS} <= set(per_patient["parameter"])
    assert not set(table["parameter"]) & set(per_patient["parameter"])


def _figure_text(fig) -> str:
    """Every text of a matplotlib figure (titles, labels, ticks, legends) and its SVG."""
    import io

    import matplotlib as mpl
    from matplotlib.text import Text

    texts = [t.get_text() for t in fig.findobj(Text)]
    buffer = io.StringIO()
    with mpl.rc_context({"svg.fonttype": "none"}):  # text stays text in the SVG
        fig.savefig(buffer, format="svg")
    return "\n".join(texts) + buffer.getvalue()


def test_rupture_trajectories_show_no_patient_id():
    from alliance.process.plots import rupture_trajectories_figure

    scores = pd.DataFrame(
        [
            {"patient_id": p, "session": s, "rater": "client", "total_mean": 4.0 - (s == 4)}
            for p in PATIENTS
            for s in range(1, 7)
        ]
    )
    episodes = pd.DataFrame(
        {
            "patient_id": PATIENTS[:4],
            "rupture_session": [4] * 4,
            "pre_level": [4.0] * 4,
            "rupture_score": [3.0] * 4,
            "status": ["repaired", "unrepaired", "censored", "repaired"],
            "repair_session": [5, None, None, 5],
            "repair_score": [4.0, None, None, 4.0],
        }
    )
    fig = rupture_trajectories_figure(scores, episodes)
    text = _figure_text(fig)
    assert "Case 1" in text and "Case 4" in text
    assert not any(p in text for p in PATIENTS)


#: Files that hold patient IDs (or raw rows): they stay in the dataset folders.
PER_PATIENT_FILES = (
    "quarantine.csv",
    "ruptures_episodes.csv",
    "ruptures_patients.csv",
    "person_period.parquet",
    "per_patient.csv",
    "idata.nc",
    "items.parquet",
    "outcomes.parquet",
    "patients.parquet",
    "attendance.parquet",
    "scores.parquet",
    "truth_patients.csv",
)


def test_report_attaches_no_per_patient_file():
    """Every file Snakemake's report embeds (report() outputs of the rules) is population-level."""
    from pathlib import Path

    rules = Path(__file__).resolve().parents[1] / "workflow" / "rules"
    reported = []
    for path in sorted(rules.glob("*.smk")):
        text = path.read_text(encoding="utf-8")
        reported += re.findall(r"report\(\s*(?:directory\()?\s*\"([^\"]+)\"", text)
    assert len(reported) > 15  # the parse found the report items
    leaking = [p for p in reported if p.endswith(PER_PATIENT_FILES)]
    assert leaking == []
