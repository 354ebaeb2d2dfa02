"""Three-level model, CR2 robust tests and multi-moderator meta-regression against metafor 3.8-1
and clubSandwich 0.5.8 (tests/data/metafor/metafor_multilevel.json, made by meta_multilevel.R).

Tolerances: the REML optimum here (Fisher scoring to 1e-10) and metafor's (nlminb, relative
change of the likelihood 1e-10) agree to about 3e-8 relative in sigma2, so estimates, SEs and
variance components are checked to 1e-6 relative and p values to 1e-4 relative (the project's
standard). Profile-likelihood bounds: metafor's uniroot stops at tol = 1e-8 in the tight
reference (checked to 1e-6 relative) and at eps^0.25 = 1.2e-4 by default (checked to that,
absolute, for the bound where the tight run failed to converge).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from alliance.meta import pooling as meta
from alliance.meta.analysis import pool_effects
from alliance.meta.moderators import moderator_analysis
from alliance.meta.multilevel import Blocks, profile_ci, rma_mv
from alliance.meta.robust import robust_rma, robust_rma_mv

REF_DIR = Path(__file__).parent / "data" / "metafor"
EST = 1e-6
PVAL = 1e-4


@pytest.fixture(scope="module")
def ref() -> dict:
    return json.loads((REF_DIR / "metafor_multilevel.json").read_text())


@pytest.fixture(scope="module")
def k11() -> pd.DataFrame:
    return pd.read_csv(REF_DIR / "konstantopoulos2011.csv")


@pytest.fixture(scope="module")
def molloy() -> pd.DataFrame:
    data = pd.read_csv(REF_DIR / "molloy2014_moderators.csv")
    data["yi"] = meta.fisher_z(data["r"])
    data["vi"] = meta.fisher_z_variance(data["n"])
    return data


@pytest.fixture(scope="module")
def three(k11: pd.DataFrame):
    return rma_mv(k11["yi"], k11["vi"], k11["district"], k11["school"])


def close(ours: float, theirs: float, rel: float = EST) -> None:
    assert ours == pytest.approx(theirs, rel=rel, abs=1e-12)


def check_coefficients(ours: list[dict], theirs: list[dict], p_key: str = "pval") -> None:
    assert [c["term"] for c in ours] == [c["term"] for c in theirs]
    for a, b in zip(ours, theirs, strict=True):
        for key in ("estimate", "se", "statistic"):
            close(a[key], b[key])
        close(a[p_key], b["pval"], PVAL)
        if "df" in b:
            close(a["df"], b["df"])


def test_three_level_matches_rma_mv(three, ref: dict) -> None:
    r = ref["three_level"]["tight"]
    np.testing.assert_allclose(three.sigma2, r["sigma2"], rtol=EST)
    c = r["coefficients"][0]
    close(three.beta[0], c["estimate"])
    close(three.se[0], c["se"])
    close(three.statistic[0], c["statistic"])
    close(three.pval[0], c["pval"], PVAL)
    close(three.ci_lb[0], c["ci.lb"])
    close(three.ci_ub[0], c["ci.ub"])
    close(three.loglik, r["logLik"], 1e-9)
    close(three.QE, r["QE"], 1e-9)
    close(three.QE_p, r["QE_pval"], PVAL)
    assert (three.blocks.n_clusters, three.blocks.n_studies) == tuple(r["s_nlevels"])
    # I2 per level with metafor's typical sampling variance (Cheung's for intercept-only)
    close(three.typical_vi, r["typical_vi"], 1e-9)
    np.testing.assert_allclose(three.I2, r["I2"], rtol=EST)
    close(three.I2_total, r["I2_total"])
    assert three.converged


def test_three_level_default_metafor_run_agrees(three, ref: dict) -> None:
    np.testing.assert_allclose(three.sigma2, ref["three_level"]["default"]["sigma2"], rtol=EST)


def test_three_level_profile_ci(three, ref: dict) -> None:
    tight = ref["three_level"]["profile_ci"]
    default = ref["three_level"]["profile_ci_default"]
    between = profile_ci(three, 0)
    within = profile_ci(three, 1)
    assert between["level"] == "between_clusters" and within["level"] == "within_clusters"
    close(between["ci.lb"], tight[0]["ci.lb"])
    close(between["ci.ub"], tight[0]["ci.ub"])
    close(within["ci.lb"], tight[1]["ci.lb"])
    # metafor's tight run could not find this bound; its default uniroot tol is eps^0.25
    assert tight[1]["ci.ub"] is None
    assert within["ci.ub"] == pytest.approx(default[1]["ci.ub"], abs=np.finfo(float).eps ** 0.25)
    assert not (within["ci.lb_at_limit"] or within["ci.ub_at_limit"])


def test_three_level_reduces_to_two_level_when_clusters_are_studies(molloy) -> None:
    """Each effect its own cluster: sigma2 splits tau2 arbitrarily, their sum is tau2."""
    labels = [f"s{i}" for i in range(len(molloy))]
    fit = rma_mv(molloy["yi"], molloy["vi"], labels, labels)
    two = meta.rma(molloy["yi"], molloy["vi"], threshold=1e-12)  # the exact optimum
    assert fit.sigma2.sum() == pytest.approx(two.tau2, rel=1e-6)
    assert fit.beta[0] == pytest.approx(two.beta[0], rel=1e-6)


def test_blocks_nest_study_labels_within_clusters() -> None:
    blocks = Blocks(["a", "a", "b", "b", "b"], ["1", "1", "1", "2", "2"])
    assert blocks.n_clusters == 2
    assert blocks.n_studies == 3  # a/1, b/1, b/2
    same = {g.idx.shape[1]: g.same_study[0] for g in blocks.groups}
    np.testing.assert_array_equal(same[2], np.ones((2, 2)))
    np.testing.assert_array_equal(same[3], [[1, 0, 0], [0, 1, 1], [0, 1, 1]])


def test_three_level_rejects_one_cluster() -> None:
    with pytest.raises(ValueError, match="at least 2 clusters, got 1"):
        rma_mv([0.1, 0.2, 0.3], [0.01, 0.02, 0.03], ["a"] * 3, ["1", "2", "3"])


def test_robust_three_level_matches_clubsandwich(three, ref: dict) -> None:
    out = robust_rma_mv(three)
    check_coefficients(out, ref["three_level"]["robust"], p_key="pvalue")
    assert out[0]["clusters"] == 11


def test_robust_two_level_matches_clubsandwich(molloy: pd.DataFrame, ref: dict) -> None:
    fit = meta.rma(molloy["yi"], molloy["vi"])
    out = robust_rma(fit, molloy["study"])
    check_coefficients(out, ref["two_level"]["robust"], p_key="pvalue")
    assert out[0]["clusters"] == molloy["study"].nunique()


def test_robust_needs_two_clusters(molloy: pd.DataFrame) -> None:
    fit = meta.rma(molloy["yi"], molloy["vi"])
    with pytest.raises(ValueError, match="at least 2 clusters, got 1"):
        robust_rma(fit, ["one"] * len(molloy))


def test_moderators_knapp_hartung_match_metafor(molloy: pd.DataFrame, ref: dict) -> None:
    r = ref["two_level"]["moderators"]
    out = moderator_analysis(
        molloy["yi"],
        molloy["vi"],
        molloy,
        ["meanage", "controls"],
        robust=True,
        robust_cluster=molloy["study"],
    )
    check_coefficients(out["coefficients"], r["coefficients"])
    assert {c["df"] for c in out["coefficients"]} == {r["ddf"]}
    close(out["QM"], r["QM"])
    assert out["QM_df"] == r["QM_df"]
    close(out["QM_pval"], r["QM_pval"], PVAL)
    close(out["QE"], r["QE"])
    close(out["s2w"], r["s2w"])
    # tau2 is near 0 here (2e-6): REML's threshold 1e-5 bounds the agreement absolutely
    assert out["tau2"] == pytest.approx(r["tau2"], abs=1e-9)
    close(out["R2"], r["R2"])
    check_coefficients(out["robust"], r["robust"], p_key="pvalue")


def test_moderators_three_level_match_rma_mv(k11: pd.DataFrame, ref: dict) -> None:
    r = ref["three_level"]["moderators"]
    out = moderator_analysis(
        k11["yi"],
        k11["vi"],
        k11,
        ["year"],
        cluster=k11["district"],
        study=k11["school"],
        robust=True,
    )
    check_coefficients(out["coefficients"], r["coefficients"])
    close(out["QM"], r["QM"])
    assert out["QM_df"] == r["QM_df"]
    np.testing.assert_allclose(out["sigma2"], r["sigma2"], rtol=EST)
    assert out["R2"] == r["R2"] == 0
    check_coefficients(out["robust"], r["robust"], p_key="pvalue")


def test_moderators_reject_unknown_column(molloy: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match=r"moderator columns \['dose'\] not in effects"):
        moderator_analysis(molloy["yi"], molloy["vi"], molloy, ["dose"])


def test_three_level_recovers_simulated_truth(rng: np.random.Generator) -> None:
    """500 clusters of 4 effects: the REML variance components land near the truth."""
    n_clusters, per = 500, 4
    cluster = np.repeat(np.arange(n_clusters), per)
    v = rng.uniform(0.01, 0.05, cluster.size)
    y = (
        0.3
        + rng.normal(0, np.sqrt(0.04), n_clusters)[cluster]
        + rng.normal(0, np.sqrt(0.02), cluster.size)
        + rng.normal(0, np.sqrt(v))
    )
    fit = rma_mv(y, v, cluster, np.arange(cluster.size))
    assert fit.beta[0] == pytest.approx(0.3, abs=4 * fit.se[0])
    assert fit.sigma2[0] == pytest.approx(0.04, abs=0.01)
    assert fit.sigma2[1] == pytest.approx(0.02, abs=0.01)


def test_pool_effects_three_level_layout(k11: pd.DataFrame, ref: dict) -> None:
    """yi, vi input with a cluster: the main model is rma.mv, the two-level one is kept."""
    effects = k11.assign(study=k11["school"].astype(str))[["study", "yi", "vi", "district"]]
    out = pool_effects(effects, cluster="district", robust=True, selection="step")
    r = ref["three_level"]["tight"]
    assert out["meta"]["measure"] == "GEN" and out["meta"]["model"] == "three-level"
    assert "pooled_r" not in out and "pooled_z" not in out
    close(out["pooled"]["estimate"], r["coefficients"][0]["estimate"])
    np.testing.assert_allclose(out["heterogeneity"]["sigma2"], r["sigma2"], rtol=EST)
    np.testing.assert_allclose(out["heterogeneity"]["I2"], r["I2"], rtol=EST)
    assert [c["level"] for c in out["heterogeneity_ci"]["sigma2"]] == [
        "between_clusters",
        "within_clusters",
    ]
    close(out["robust"]["se"], ref["three_level"]["robust"][0]["se"])
    assert out["robust"]["cluster_by"] == "district"
    assert out["two_level"]["heterogeneity"]["tau2"] > 0
    assert {s["cluster"] for s in out["studies"]} == {str(d) for d in k11["district"]}
    assert sum(s["weight_pct"] for s in out["studies"]) == pytest.approx(100)
    assert out["bias"]["selection"]["type"] == "stepfun"
    assert "r" not in out["leave_one_out"][0]


def test_pool_effects_rejects_bad_yi_vi_and_cluster(k11: pd.DataFrame) -> None:
    effects = k11.assign(study=k11["school"].astype(str))[["study", "yi", "vi", "district"]]
    with pytest.raises(ValueError, match=r"missing \['vi'\]"):
        pool_effects(effects.drop(columns="vi"))
    bad = effects.assign(vi=effects["vi"].where(effects.index != 3, 0.0))
    with pytest.raises(
        ValueError, match=r"vi must be a positive number, got bad values for \['4'\]"
    ):
        pool_effects(bad)
    with pytest.raises(ValueError, match="cluster column 'site' not in effects"):
        pool_effects(effects, cluster="site")
    gap = effects.assign(district=effects["district"].where(effects.index != 0))
    with pytest.raises(ValueError, match=r"cluster column 'district' is empty for studies \['1'\]"):
        pool_effects(gap, cluster="district")


def test_cli_meta_three_level(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from alliance.cli import main

    out = tmp_path / "meta.json"
    args = [str(REF_DIR / "konstantopoulos2011.csv"), "--out", str(out), "--cluster", "district"]
    assert main(["meta", *args, "--robust", "--moderator", "year"]) == 0  # yi, vi: no Bayes
    result = json.loads(out.read_text())
    assert result["moderators"]["moderators"] == ["year"]
    assert result["bayes"]["status"] == "skipped"
    assert "sigma2 = 0.0651 (between clusters)" in capsys.readouterr().out
    assert main(["meta", *args[:3], "--cluster", "nope", "--no-bayes"]) == 2
    assert "cluster column 'nope' not in effects" in capsys.readouterr().err


def test_report_meta_section_three_level(k11: pd.DataFrame, ref: dict, tmp_path: Path) -> None:
    """The summary's rows hold the three-level, robust, bias and moderator numbers (checked
    against metafor / clubSandwich above), formatted."""
    from alliance.report.summary import meta_section

    effects = k11.assign(study=k11["school"].astype(str))[["study", "yi", "vi", "district", "year"]]
    result = pool_effects(
        effects, cluster="district", robust=True, selection="step", moderators=["year"]
    )
    (tmp_path / "meta").mkdir()
    (tmp_path / "meta" / "meta.json").write_text(json.dumps(result))
    text, warnings = meta_section(tmp_path)
    assert warnings == []
    rows = dict(
        tuple(c.strip() for c in line.strip("|").split("|"))
        for line in text.splitlines()[2:]
        if line.startswith("| ")
    )
    tight = ref["three_level"]["tight"]
    ci = ref["three_level"]["profile_ci"]
    assert rows["Pooled effect [95% CI]"].startswith("0.185 [0.019, 0.350]")
    between = "sigma2 between clusters (effect-size scale) [95% CI, profile likelihood]"
    assert rows[between] == (
        f"{tight['sigma2'][0]:.4f} [{ci[0]['ci.lb']:.4f}, {ci[0]['ci.ub']:.4f}]".replace("0.", ".")
    )
    assert rows["I2 between clusters, within clusters (total)"] == (
        f"{tight['I2'][0]:.1f}%, {tight['I2'][1]:.1f}% ({tight['I2_total']:.1f}%)"
    )
    rob = ref["three_level"]["robust"][0]
    key = "Cluster-robust test (CR2, Satterthwaite df; 11 clusters by district)"
    assert (
        rows[key] == f"SE = {rob['se']:.4f}, t({rob['df']:.1f}) = {rob['statistic']:.2f}, p = .054"
    )
    tf = ref["two_level"]["bias_konstantopoulos"]["trimfill"]
    tf_key = next(k for k in rows if k.startswith("Trim-and-fill"))
    assert "effects as independent" in tf_key
    assert rows[tf_key].startswith(f"{tf['k0']} on the {tf['side']}; {tf['estimate']:.3f}")
    assert rows["Moderators (year; t tests)"].startswith("F(1, 54) = 0.32, p = .576")


def test_pool_effects_rejects_bad_selection(molloy: pd.DataFrame) -> None:
    effects = molloy[["study", "r", "n"]]
    with pytest.raises(ValueError, match=r"steps must lie in \(0, 1\], got \[1.5\]"):
        pool_effects(effects, selection="step", steps=(1.5,))
    with pytest.raises(ValueError, match="selection must be 'step', 'beta' or None"):
        pool_effects(effects, selection="logistic")


def test_pooling_table_gives_each_dataset_its_own_cluster() -> None:
    from alliance.meta.stage import pooling_table

    effects = pd.DataFrame(
        {
            "study": ["site_a", "s1", "s2"],
            "r": [0.3, 0.2, 0.25],
            "n": [100, 80, 90],
            "paper": [None, "P1", "P1"],
        }
    )
    assert pooling_table(effects, "paper")["paper"].tolist() == ["site_a", "P1", "P1"]
    assert pooling_table(effects, None) is effects
    with pytest.raises(ValueError, match="meta.cluster: column 'lab' is not in the published"):
        pooling_table(effects, "lab")
    with pytest.raises(ValueError, match="pools the datasets' correlations"):
        pooling_table(effects.assign(yi=0.1, vi=0.01), None)
