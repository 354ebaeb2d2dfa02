"""The rest of lavaan's model syntax against lavaan 0.6-14, and the standardized residual
covariances of ordered items.

References (lavaan 0.6-14; tests never call R):

* ``tests/data/lavaan/syntax/lavaan_syntax.json`` (``make_syntax.R``): defined parameters
  ``:=`` with delta-method SEs (ML, MLR, WLSMV), inequality constraints that bind (``l3 > 0.9``
  under ML, ``t2 > 1.2`` under MLR and WLSMV), group-specific labels ``c(a, b)*x`` in
  multi-group fits (ML and WLSMV) and ``std.lv`` (one and two groups, with loadings and
  intercepts held equal, and WLSMV);
* ``tests/data/lavaan/std_residual/lavaan_std_residual.json`` (``make_std_residual.R``): one
  factor, six 4-category items and ``y1 ~~ y2``, ML and WLSMV in the delta and theta
  parameterizations (issue 16: the WLSMV residual correlation was divided by the total SDs).

Tolerances as ``/work/shared/reference/README.md``: ML/MLR estimates, SEs and indices within
1e-3, chi-squares within 0.01 (absolute); WLSMV estimates within 2e-3 (absolute), SEs and
chi-squares within 1% (relative).
"""

from __future__ import annotations

import json

import pandas as pd
import pytest
from conftest import LAVAAN, dataset

from alliance.sem.api import fit_cfa
from alliance.sem.model import ModelSpec
from alliance.sem.syntax import SyntaxError_, parse_syntax

SYNTAX = json.loads((LAVAAN / "syntax" / "lavaan_syntax.json").read_text())
STD = json.loads((LAVAAN / "std_residual" / "lavaan_std_residual.json").read_text())
ONE_FACTOR = pd.read_csv(LAVAAN / "std_residual" / "one_factor_4cat.csv")


def wai() -> pd.DataFrame:
    return dataset("wai_ml").assign(site=lambda d: d["site"].astype(str))


#: reference block -> (data, fit_cfa keyword arguments)
CASES = {
    "defined_ml": (lambda: dataset("holzinger_ml"), {}),
    "defined_mlr": (lambda: dataset("holzinger_ml"), {"estimator": "MLR"}),
    "inequality_ml": (lambda: dataset("holzinger_ml"), {}),
    "group_labels_ml": (lambda: dataset("holzinger_ml"), {"group": "school"}),
    "std_lv_group_ml": (lambda: dataset("holzinger_ml"), {"group": "school", "std_lv": True}),
    "std_lv_metric_ml": (
        lambda: dataset("holzinger_ml"),
        {"group": "school", "std_lv": True, "group_equal": ("loadings", "intercepts")},
    ),
    "std_lv_wlsmv": (wai, {"estimator": "WLSMV", "std_lv": True}),
    "defined_wlsmv": (wai, {"estimator": "WLSMV"}),
    "group_labels_wlsmv": (wai, {"estimator": "WLSMV", "group": "site"}),
    "inequality_wlsmv": (wai, {"estimator": "WLSMV"}),
    "inequality_mlr": (wai, {"estimator": "MLR"}),
}


def key(row: dict) -> tuple:
    return (row["lhs"], row["op"], row["rhs"], row.get("group", 1) or 1)


def check_block(ours: dict, ref: dict, wlsmv: bool) -> None:
    est_tol = 2e-3 if wlsmv else 1e-3
    for name in ("npar", "df"):
        assert ours["fit_all"][name] == ref["fit"][name], name
    chisq = ("chisq", "chisq.scaled") if wlsmv or "chisq.scaled" in ref["fit"] else ("chisq",)
    for name in chisq:
        tol = {"rel": 0.01} if wlsmv else {"abs": 0.01}
        assert ours["fit_all"][name] == pytest.approx(ref["fit"][name], **tol), name
    robust = ("cfi.robust", "rmsea.robust") if "cfi.robust" in ref["fit"] else ()
    for name in ("cfi", "tli", "rmsea", "srmr", *robust):
        assert ours["fit_all"][name] == pytest.approx(ref["fit"][name], abs=est_tol), name
    for block, col in (("parameters", "est"), ("standardized", "est.std")):
        mine = {key(r): r for r in ours[block]}
        assert len(mine) == len(ref[block]), block
        for row in ref[block]:
            got = mine[key(row)]
            assert got[col] == pytest.approx(row[col], abs=est_tol), (block, key(row))
            if row["se"] == 0:
                assert got["se"] == 0, (block, key(row))
            elif wlsmv:
                assert got["se"] == pytest.approx(row["se"], rel=0.01), (block, key(row))
            else:
                assert got["se"] == pytest.approx(row["se"], abs=1e-3), (block, key(row))


@pytest.mark.parametrize("case", list(CASES))
def test_syntax_matches_lavaan(case):
    ref = SYNTAX[case]
    data, kwargs = CASES[case]
    out = fit_cfa(data(), ref["model"], **kwargs)
    assert out["converged"] is True
    check_block(out, ref, kwargs.get("estimator") == "WLSMV")


def test_defined_parameter_rows_have_lavaan_layout():
    out = fit_cfa(dataset("holzinger_ml"), SYNTAX["defined_ml"]["model"])
    rows = [r for r in out["parameters"] if r["op"] == ":="]
    assert [(r["lhs"], r["rhs"], r["label"]) for r in rows] == [
        ("ratio", "l2/l3", "ratio"),
        ("gap", "l5-l6", "gap"),
        ("prod", "l2*l3+exp(l5)/10", "prod"),
    ]
    multi = fit_cfa(dataset("holzinger_ml"), SYNTAX["group_labels_ml"]["model"], group="school")
    (row,) = [r for r in multi["parameters"] if r["op"] == ":="]
    assert row["group"] == 0 and row["block"] == 0


def test_inequality_at_its_bound_has_se_zero_and_a_note():
    out = fit_cfa(dataset("holzinger_ml"), SYNTAX["inequality_ml"]["model"])
    row = next(r for r in out["parameters"] if r.get("label") == "l3")
    assert row["est"] == pytest.approx(0.9, abs=1e-8)
    assert row["se"] == 0 and row["z"] is None and row["free"] is True
    assert any("inequality bound" in n and "l3" in n for n in out["meta"]["notes"])
    # an inequality that does not bind changes nothing
    free = fit_cfa(dataset("holzinger_ml"), SYNTAX["defined_ml"]["model"])
    loose = SYNTAX["defined_ml"]["model"] + "\nl3 > 0.1"
    assert fit_cfa(dataset("holzinger_ml"), loose)["fit"]["chisq"] == pytest.approx(
        free["fit"]["chisq"], abs=1e-8
    )


def test_inequality_on_its_own_line_is_read_as_one():
    # before issue 16 the line was glued to the previous formula in the error message
    st = parse_syntax("visual =~ x1 + l2*x2 + l3*x3\nl3 > 0.9\n0.1 < l2")
    assert [(s.lhs, s.op, s.rhs, s.line) for s in st[3:]] == [
        ("l3", ">", "0.9", 2),
        ("0.1", "<", "l2", 3),
    ]
    spec = ModelSpec.from_syntax("visual =~ x1 + l2*x2 + l3*x3\nl3 > 0.9\n0.1 < l2")
    assert [(b.label, b.op, b.value) for b in spec.bounds] == [("l3", ">", 0.9), ("l2", ">", 0.1)]


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        ("l2 > l3", r"line 2: inequality constraint 'l2 > l3' \(operator '>'\) is supported "
                    "between one label and a number only"),
        ("l2 + l3 < 2", r"line 2: .*\(operator '<'\)"),
        ("l9 > 0", "line 2: .*unknown label 'l9'"),
        ("ratio := l2 / l9", r"line 2: 'ratio := l2/l9' uses unknown labels \['l9'\]"),
        ("l2 == 2*l3", "line 2: operator '==' is supported between two labels only"),
        ("f2 <~ x1 + x2", "line 2: operator '<~'"),
        ("r := l2 / import(l3)", "line 2: only sqrt, exp, log"),
    ],
)  # fmt: skip
def test_unsupported_constraints_name_line_and_operator(extra, match):
    with pytest.raises(SyntaxError_, match=match):
        ModelSpec.from_syntax(f"visual =~ x1 + l2*x2 + l3*x3\n{extra}")


@pytest.mark.parametrize(
    ("block", "kwargs"),
    [
        ("ml", {}),
        ("wlsmv_delta", {"estimator": "WLSMV"}),
        ("wlsmv_theta", {"estimator": "WLSMV", "parameterization": "theta"}),
    ],
)
def test_standardized_residual_covariance_matches_lavaan(block, kwargs):
    ref = STD[block]
    out = fit_cfa(ONE_FACTOR, STD["meta"]["model"], **kwargs)
    check_block(out, ref, kwargs.get("estimator") == "WLSMV")
    mine = {key(r): r for r in out["standardized"]}
    want = next(r for r in ref["standardized"] if (r["lhs"], r["rhs"]) == ("y1", "y2"))
    got = mine[("y1", "~~", "y2", 1)]["est.std"]
    # the residual correlation: covariance over the residual SDs (was over the total SDs)
    assert got == pytest.approx(want["est.std"], abs=2e-3)
    theta = {key(r): r["est"] for r in out["parameters"]}
    cov, v1, v2 = (theta[k] for k in (("y1", "~~", "y2", 1), ("y1", "~~", "y1", 1),
                                      ("y2", "~~", "y2", 1)))  # fmt: skip
    assert got == pytest.approx(cov / (v1 * v2) ** 0.5, rel=1e-9)


def test_cli_std_lv_and_continuous_wlsmv(tmp_path, capsys):
    from alliance.cli import main

    data = LAVAAN / "holzinger1939" / "holzinger1939.csv"
    model = LAVAAN / "holzinger1939" / "holzinger.lav"
    out = tmp_path / "fit.json"
    args = ["cfa", str(data), "--model", str(model), "--estimator", "WLSMV", "--continuous"]
    assert main([*args, "--std-lv", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    ref = json.loads((LAVAAN / "wlsmv_continuous" / "lavaan_wlsmv_continuous.json").read_text())
    assert result["meta"]["std.lv"] is True and result["meta"]["ordered"] == []
    assert result["fit"]["chisq.scaled"] == pytest.approx(
        ref["single"]["fit"]["chisq.scaled"], rel=0.01
    )
    loading = next(r for r in result["parameters"] if (r["lhs"], r["rhs"]) == ("visual", "x1"))
    assert loading["free"] is True
    assert main([*args, "--ordered", "--out", str(out)]) == 2
    assert "--continuous is for WLSMV" in capsys.readouterr().err


def test_wlsmv_meta_says_its_missing_default_differs_from_lavaan():
    out = fit_cfa(wai(), SYNTAX["std_lv_wlsmv"]["model"], "WLSMV", "pairwise")
    note = out["meta"]["missing_note"]
    assert out["meta"]["missing"] == "pairwise"
    assert "defaults to missing = 'pairwise'" in note and "lavaan's default is 'listwise'" in note
    assert (
        "missing_note"
        not in fit_cfa(dataset("holzinger_ml"), SYNTAX["defined_ml"]["model"])["meta"]
    )
