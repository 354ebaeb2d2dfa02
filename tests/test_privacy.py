"""Private and safe: data never runs as HTML, patient IDs stay out of reports and figures."""

import json
import re

import pandas as pd
import pytest

from alliance.report import markdown_table, markdown_to_html, write_summary
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
