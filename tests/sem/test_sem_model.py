"""Tests for alliance.sem.model: syntax, parameter tables, matrices and the Jacobian."""

from __future__ import annotations

import numpy as np
import pytest

from alliance.sem.model import ModelSpec, SyntaxError_, builtin_models, parse_syntax, start_values

HZ = "visual =~ x1 + x2 + x3\ntextual =~ x4 + x5 + x6\nspeed =~ x7 + x8 + x9"


def test_parse_comments_multiline_and_modifiers():
    text = """
    # a comment
    f1 =~ x1 + 0.5*x2 +   ! another comment
          a*x3 + NA*x4
    f2 =~ start(0.7)*x5 + x6; x1 ~~ x5
    x2 ~~ c(b1, b2)*x6
    """
    st = parse_syntax(text)
    assert [(s.lhs, s.op, s.rhs) for s in st] == [
        ("f1", "=~", "x1"),
        ("f1", "=~", "x2"),
        ("f1", "=~", "x3"),
        ("f1", "=~", "x4"),
        ("f2", "=~", "x5"),
        ("f2", "=~", "x6"),
        ("x1", "~~", "x5"),
        ("x2", "~~", "x6"),
    ]
    assert st[1].modifier.fixed == (0.5,)
    assert st[2].modifier.label == ("a",)
    assert np.isnan(st[3].modifier.fixed[0])
    assert st[4].modifier.start == (0.7,)
    assert st[7].modifier.label == ("b1", "b2")


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("f1 x1 + x2", "no operator"),
        ("f1 =~ ", "nothing on the right"),
        ("f1 =~ x1 + + x2", "empty term"),
        ("f1 =~ x1\nd <~ x1", "not supported"),
        ("f1 =~ x1\nd := a*b", "unknown labels"),
        ("1f =~ x1", "invalid left-hand side"),
        ("f1 =~ x1 + 2x", "invalid variable name"),
        ("", "no formulas"),
        ("x1 ~~ x2", "at least one factor"),
        ("f =~ x1 + x2 + x3\ny ~ x1", "latent-on-latent"),
    ],
)
def test_syntax_errors(text, match):
    with pytest.raises(ValueError, match=match):
        ModelSpec.from_syntax(text)


def test_syntax_error_is_value_error():
    assert issubclass(SyntaxError_, ValueError)


def test_marker_defaults_like_lavaan():
    spec = ModelSpec.from_syntax(HZ)
    assert spec.ov == [f"x{i}" for i in range(1, 10)]
    assert spec.lv == ["visual", "textual", "speed"]
    assert spec.npar == 21
    first = spec.find("visual", "=~", "x1")
    assert first.free == 0 and first.value == 1.0
    assert spec.find("visual", "~~", "textual").free > 0
    assert [r.name() for r in spec.rows(1, "~~")][-3:] == [
        "visual~~textual",
        "visual~~speed",
        "textual~~speed",
    ]


def test_std_lv_frees_loadings_and_fixes_variances():
    spec = ModelSpec.from_syntax(HZ, std_lv=True)
    assert spec.find("visual", "=~", "x1").free > 0
    var = spec.find("visual", "~~", "visual")
    assert var.free == 0 and var.value == 1.0
    assert spec.npar == 21


def test_fixed_values_labels_and_equality():
    spec = ModelSpec.from_syntax(
        "f =~ x1 + a*x2 + a*x3 + x4\nx1 ~~ 0.2*x2\nf2 =~ x5 + b*x6 + c*x7\nb == c"
    )
    assert spec.find("f", "=~", "x2").free == spec.find("f", "=~", "x3").free
    assert spec.find("f2", "=~", "x6").free == spec.find("f2", "=~", "x7").free
    cov = spec.find("x1", "~~", "x2")
    assert cov.free == 0 and cov.value == pytest.approx(0.2)
    with pytest.raises(ValueError, match="unknown label"):
        ModelSpec.from_syntax("f =~ x1 + a*x2 + x3\na == zz")


def test_meanstructure_and_multigroup_equalities():
    spec = ModelSpec.from_syntax(
        HZ, group_labels=["a", "b"], group_equal=["loadings", "intercepts"]
    )
    assert spec.meanstructure
    assert spec.npar == 48  # lavaan's scalar model on holzinger
    assert spec.find("visual", "=~", "x2", 1).free == spec.find("visual", "=~", "x2", 2).free
    assert spec.find("visual", "~1", "", 1).free == 0
    assert spec.find("visual", "~1", "", 2).free > 0
    assert spec.find("x1", "~~", "x1", 1).free != spec.find("x1", "~~", "x1", 2).free
    partial = ModelSpec.from_syntax(
        HZ, group_labels=["a", "b"], group_equal=["loadings"], group_partial=["visual=~x2"]
    )
    assert partial.find("visual", "=~", "x2", 1).free != partial.find("visual", "=~", "x2", 2).free
    with pytest.raises(ValueError, match="unknown group_equal"):
        ModelSpec.from_syntax(HZ, group_labels=["a", "b"], group_equal=["slopes"])


def test_ordered_slots_for_wlsmv():
    spec = ModelSpec.from_syntax("f =~ y1 + y2 + y3", ordered=["y1", "y2", "y3"],
                                 n_thresholds={"y1": 2, "y2": 2, "y3": 3})  # fmt: skip
    assert len(spec.threshold_index) == 7
    assert spec.find("y1", "~~", "y1").computed
    assert spec.find("y1", "~1").free == 0
    x = start_values(spec, [np.eye(3)])
    x[[r.free - 1 for r in spec.rows(1, "|")]] = np.linspace(-1, 1, 7)
    imp = spec.implied(x)[0]
    np.testing.assert_allclose(np.diag(imp.sigma), 1.0)
    with pytest.raises(ValueError, match="n_thresholds"):
        ModelSpec.from_syntax("f =~ y1 + y2 + y3", ordered=["y1"])


def _numeric_jacobian(spec, x, group=1, h=1e-6):
    q = len(x)
    dsig = np.zeros((q, spec.p, spec.p))
    dmu = np.zeros((q, spec.p))
    dtau = np.zeros((q, len(spec.threshold_index)))
    for k in range(q):
        e = np.zeros(q)
        e[k] = h
        a, b = spec.implied(x + e, group)[0], spec.implied(x - e, group)[0]
        dsig[k] = (a.sigma - b.sigma) / (2 * h)
        dmu[k] = (a.mu - b.mu) / (2 * h)
        dtau[k] = (a.tau - b.tau) / (2 * h)
    return dsig, dmu, dtau


@pytest.mark.parametrize(
    ("model", "kwargs"),
    [
        (HZ + "\nx1 ~~ x4", {"meanstructure": True}),
        (HZ + "\ng =~ visual + textual + speed", {"meanstructure": True}),
        ("f =~ y1 + y2 + y3 + y4", {"ordered": ["y1", "y2", "y3", "y4"],
                                    "n_thresholds": {f"y{i}": 2 for i in range(1, 5)},
                                    "group_labels": ["a", "b"],
                                    "group_equal": ["loadings", "thresholds"]}),
    ],
)  # fmt: skip
def test_jacobian_matches_numeric(rng, model, kwargs):
    spec = ModelSpec.from_syntax(model, **kwargs)
    x = 0.5 + rng.random(spec.npar) * 0.5
    for g in range(1, spec.ngroups + 1):
        ana = spec.jacobian(x, g)
        num = _numeric_jacobian(spec, x, g)
        for a, b in zip(ana, num, strict=True):
            np.testing.assert_allclose(a, b, atol=1e-6)


def test_chain_rule_gradient_matches_jacobian(rng):
    spec = ModelSpec.from_syntax(HZ + "\ng =~ visual + textual + speed", meanstructure=True)
    x = 0.5 + rng.random(spec.npar) * 0.5
    gs = rng.standard_normal((9, 9))
    gs = gs + gs.T
    gm = rng.standard_normal(9)
    dsig, dmu, _ = spec.jacobian(x)
    expected = np.einsum("kij,ij->k", dsig, gs) + dmu @ gm
    np.testing.assert_allclose(spec.chain(x, 1, gs, gm), expected, atol=1e-10)


def test_builtin_models(wai_sr):
    models = builtin_models(wai_sr)
    assert set(models) == {
        "one_factor",
        "correlated",
        "two_factor",
        "bifactor",
        "second_order",
        "esem",
        "bifactor_esem",
    }
    for text in models.values():
        spec = ModelSpec.from_syntax(text)
        assert set(spec.ov) == set(wai_sr.items)
    bif = ModelSpec.from_syntax(models["bifactor"])
    assert all(r.free == 0 for r in bif.rows(1, "~~") if r.lhs in bif.lv and r.lhs != r.rhs)
    second = ModelSpec.from_syntax(models["second_order"])
    # just-identified structural part: same number of parameters as three correlated factors
    assert second.npar == ModelSpec.from_syntax(models["correlated"]).npar
    assert "just-identified" in builtin_models.__doc__
