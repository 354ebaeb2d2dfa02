import hashlib
import json
import math
from pathlib import Path

import jsonschema
import numpy as np
import pandas as pd
import pyreadstat
import pytest
import yaml

from alliance.data.instruments import load_instrument
from alliance.data.schemas import load_schema
from alliance.simulate.demo import DEFAULT_SEED, simulate_demo

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data" / "demo"
CODEBOOKS = ROOT / "config" / "codebooks"
DATASETS = ["site_a", "site_b", "site_c", "published"]
WAI = load_instrument("wai_sr")
ITEMS = list(WAI.items)


def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def data_path(codebook):
    doc = yaml.safe_load(Path(codebook).read_text())
    return (Path(codebook).parent / doc["file"]).resolve()


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory):
    """The demo regenerated with the default seed in the committed folder layout."""
    base = tmp_path_factory.mktemp("demo")
    truth = simulate_demo(base / "data" / "demo", base / "config" / "codebooks")
    return base, truth


@pytest.fixture(scope="module")
def truth():
    return json.loads((DATA / "truth.json").read_text())


def quarantined_rows(truth, dataset):
    return {e["row"] for e in truth["injected_errors"][dataset]}


@pytest.fixture(scope="module")
def client(truth):
    """Client rows of the three item sites, read straight from the raw files (not via ingest).

    Injected bad rows are dropped; items on the 1-5 scale, missing codes as NaN.
    """
    frames = []
    a = pd.read_csv(DATA / "site_a.csv", dtype=str, keep_default_na=False)
    a = a.drop(index=[r - 1 for r in quarantined_rows(truth, "site_a")])
    a = a[a["rater"] == "client"]
    num = a[[*ITEMS, "phq9", "session"]].apply(pd.to_numeric)
    frames.append(num.assign(dataset="site_a", patient_id=a["patient_id"]))

    b, _ = pyreadstat.read_sav(DATA / "site_b.sav")  # -99 is declared user missing -> NaN
    b = b.drop(index=[r - 1 for r in quarantined_rows(truth, "site_b")])
    b = b.rename(columns={f"WAI{k}": item for k, item in enumerate(ITEMS, start=1)})
    b = b.rename(columns={"PHQ9": "phq9", "visit": "session", "client_code": "patient_id"})
    frames.append(b[["patient_id", "session", *ITEMS, "phq9"]].assign(dataset="site_b"))

    c = pd.read_excel(DATA / "site_c.xlsx", sheet_name="data", dtype=object, na_values=[])
    for session in range(1, 13):
        cols = [f"S{session}_Q{k}" for k in range(1, 13)] + [f"PHQ_S{session}"]
        block = c[cols].replace({999: np.nan, "n/a": np.nan}).apply(pd.to_numeric)
        attended = c[cols].notna().any(axis=1)
        block.columns = [*ITEMS, "phq9"]
        block[ITEMS] += 1
        block = block.assign(patient_id=c["Patient"], session=session, dataset="site_c")
        frames.append(block[attended])
    return pd.concat(frames, ignore_index=True)


# --------------------------------------------------------------------------- reproducibility


def test_regeneration_is_byte_identical(regenerated, truth):
    base, returned = regenerated
    new_data, new_books = base / "data" / "demo", base / "config" / "codebooks"
    committed = sorted(p.name for p in DATA.iterdir())
    assert committed == sorted(p.name for p in new_data.iterdir())
    assert {"site_a.csv", "site_b.sav", "site_c.xlsx", "published.csv", "truth.json"} <= set(
        committed
    )
    for name in committed:
        assert sha256(DATA / name) == sha256(new_data / name), name
    books = sorted(p.name for p in CODEBOOKS.glob("*.yaml"))
    assert books == [f"{d}.yaml" for d in sorted(DATASETS)]
    for name in books:
        assert sha256(CODEBOOKS / name) == sha256(new_books / name), name
        assert data_path(CODEBOOKS / name).is_file()
        assert data_path(new_books / name).parent == new_data.resolve()
    assert returned == truth
    for key, digest in truth["files"].items():
        folder, name = key.split("/")
        assert sha256({"data": DATA, "codebooks": CODEBOOKS}[folder] / name) == digest


def test_other_seed_and_layout_give_other_data_with_resolvable_paths(tmp_path, truth):
    data_dir, book_dir = tmp_path / "raw", tmp_path / "cfg" / "books" / "v1"
    other = simulate_demo(data_dir, book_dir, seed=DEFAULT_SEED + 1)
    assert other["generator"]["seed"] == DEFAULT_SEED + 1
    for name in ("site_a.csv", "site_b.sav", "site_c.xlsx", "published.csv"):
        assert sha256(data_dir / name) != sha256(DATA / name), name
    for dataset in DATASETS:
        assert (
            data_path(book_dir / f"{dataset}.yaml")
            == (data_dir / data_path(CODEBOOKS / f"{dataset}.yaml").name).resolve()
        )
    assert other["wai_sr"]["loadings"] != truth["wai_sr"]["loadings"]


@pytest.mark.parametrize("seed", [-1, 1.5, "1", True, None])
def test_bad_seed_is_rejected(tmp_path, seed):
    with pytest.raises(ValueError, match=r"seed must be a non-negative integer, got"):
        simulate_demo(tmp_path / "d", tmp_path / "c", seed=seed)


# --------------------------------------------------------------------------- codebooks


@pytest.mark.parametrize("dataset", DATASETS)
def test_codebook_fits_schema(dataset):
    path = CODEBOOKS / f"{dataset}.yaml"
    text = path.read_text()
    assert text.startswith("# GENERATED by alliance.simulate.demo")
    doc = yaml.safe_load(text)
    jsonschema.Draft202012Validator(load_schema("codebook")).validate(doc)
    assert doc["dataset"] == dataset
    assert data_path(path).is_file()


# --------------------------------------------------------------------------- recovery


def test_top_category_share_is_a_ceiling(client, truth):
    answers = client[ITEMS].to_numpy().ravel()
    answers = answers[~np.isnan(answers)]
    assert set(np.unique(answers)) == {1.0, 2.0, 3.0, 4.0, 5.0}
    share = np.mean(answers == 5)
    assert share == pytest.approx(0.45, abs=0.05)
    assert share == pytest.approx(truth["wai_sr"]["expected_top_category_share"], abs=0.05)


def test_item_nonresponse_rate(client, truth):
    straight = {p for s in truth["sample"].values() for p in s["straightliners"]}
    rows = client[~client["patient_id"].isin(straight)]
    share = rows[ITEMS].isna().to_numpy().mean()
    assert share == pytest.approx(truth["wai_sr"]["item_nonresponse_rate"], abs=0.004)


def test_phq9_intake_mean_and_sd(client, truth):
    intake = client.loc[client["session"] == 1, "phq9"].dropna()
    assert len(intake) > 950
    assert intake.mean() == pytest.approx(truth["outcome"]["phq9"]["intake_mean"], abs=1.0)
    assert intake.std() == pytest.approx(truth["outcome"]["phq9"]["intake_sd"], abs=0.7)
    later = client.groupby("session")["phq9"].mean()
    assert later.loc[12] < later.loc[1] - 3  # declining over sessions


def test_goal_task_correlate_more_than_bond_task(client, truth):
    rows = client[client["session"] == 3]
    scores = pd.DataFrame({f: rows[list(items)].mean(axis=1) for f, items in WAI.factors.items()})
    r = scores.corr()
    phi = truth["wai_sr"]["factor_correlations"]
    assert phi["goal_task"] - phi["bond_task"] == pytest.approx(0.18)
    assert r.loc["goal", "task"] - r.loc["bond", "task"] > 0.08
    assert r.loc["goal", "task"] - r.loc["bond", "goal"] > 0.08
    # observed correlations are attenuated latent ones, never above them
    assert 0.6 < r.loc["goal", "task"] < phi["goal_task"]
    assert 0.45 < r.loc["bond", "task"] < phi["bond_task"]


def test_published_mean_z_near_truth(truth):
    pub = pd.read_csv(DATA / "published.csv")
    valid = pub.drop(index=[r - 1 for r in quarantined_rows(truth, "published")])
    assert len(valid) == truth["published"]["k"]
    assert valid["r"].abs().lt(1).all()
    z = np.arctanh(valid["r"].to_numpy())
    se = math.sqrt(truth["published"]["tau_z"] ** 2 + np.mean(1 / (valid["n"] - 3)))
    se_mean = se / math.sqrt(len(z))
    assert truth["published"]["mu_z"] == pytest.approx(math.atanh(0.278), abs=1e-6)
    assert z.mean() == pytest.approx(truth["published"]["mu_z"], abs=3 * se_mean)


def patients():
    return pd.read_csv(DATA / "truth_patients.csv")


def test_patient_level_partial_r_and_within_slope(truth):
    pat = patients()
    out = truth["outcome"]
    x, y, z = pat["alliance_session3"], pat["phq9_session12_latent"], pat["phq9_intake_latent"]
    rxy, rxz, ryz = x.corr(y), x.corr(z), y.corr(z)
    partial = (rxy - rxz * ryz) / math.sqrt((1 - rxz**2) * (1 - ryz**2))
    # SE of a correlation near .28 with n = 1000 is about .03
    assert partial == pytest.approx(out["patient_level_partial_r"]["value"], abs=0.07)
    design = np.column_stack(
        [np.ones(len(pat)), pat["alliance_patient"], pat["alliance_therapist"], z]
    )
    coef = np.linalg.lstsq(design, pat["phq9_change_latent"], rcond=None)[0]
    assert coef[1] == pytest.approx(out["b_within_points_per_sd"], abs=0.4)
    assert coef[3] == pytest.approx(out["phq9"]["baseline_slope"], abs=0.05)
    assert out["b_between_points_per_sd"] < out["b_within_points_per_sd"]  # contextual effect


def test_latent_variance_shares(truth):
    pat = patients().drop_duplicates("patient_id")
    shares = truth["alliance"]["variance_shares"]
    assert sum(shares.values()) == pytest.approx(1.0)
    assert pat["alliance_patient"].var() == pytest.approx(shares["patient"], abs=0.08)
    therapists = pat.drop_duplicates(["dataset", "therapist_id"])
    assert len(therapists) == truth["design"]["total_therapists"]
    assert 40 <= len(therapists) <= 80
    assert therapists["alliance_therapist"].var() == pytest.approx(shares["therapist"], abs=0.04)


def test_ruptures_dropout_and_straightlining_are_recorded(client, truth):
    pat = patients()
    episodes = truth["ruptures"]["episodes"]
    assert len(pat) == truth["design"]["total_patients"] == 1000
    assert len(episodes) / len(pat) == pytest.approx(truth["ruptures"]["patient_share"], abs=0.04)
    assert {(e["dataset"], e["patient_id"], e["session"]) for e in episodes} == set(
        pat.loc[
            pat["rupture_session"] > 0, ["dataset", "patient_id", "rupture_session"]
        ].itertuples(index=False, name=None)
    )
    assert all(truth["ruptures"]["sessions"][0] <= e["session"] <= 12 for e in episodes)
    # dropout depends on low alliance: dropouts had lower latent early alliance
    dropped = pat["dropped_out"]
    assert 0.2 < dropped.mean() < 0.6
    early = pat.groupby("dropped_out")["alliance_session3"].mean()
    assert early.loc[True] < early.loc[False] - 0.1
    # observed sessions per patient match the recorded last session
    seen = client.groupby(["dataset", "patient_id"])["session"].max()
    last = pat.set_index(["dataset", "patient_id"])["last_session"]
    assert (seen.reindex(last.index).dropna() == last.loc[seen.index]).all()
    # straight-liners answer every item alike in every client row
    straight = {p for s in truth["sample"].values() for p in s["straightliners"]}
    rows = client[client["patient_id"].isin(straight)]
    assert len(rows) > 0
    assert rows[ITEMS].eq(rows[ITEMS[0]], axis=0).all(axis=None)


# --------------------------------------------------------------------------- injected errors


def test_injected_errors_are_in_the_files(truth):
    raw = {
        "site_a": pd.read_csv(DATA / "site_a.csv", dtype=str, keep_default_na=False),
        "site_b": pyreadstat.read_sav(DATA / "site_b.sav", user_missing=True)[0],
        "published": pd.read_csv(DATA / "published.csv", dtype=str, keep_default_na=False),
    }
    reasons = {
        "missing_id", "invalid_session", "non_numeric", "not_on_scale", "out_of_range",
        "outcome_out_of_range", "duplicate_row", "duplicate_key_conflict", "invalid_r",
    }  # fmt: skip
    assert set(truth["injected_errors"]) == set(DATASETS)
    for dataset, frame in raw.items():
        expected = truth["expected_ingest"][dataset]
        assert expected["rows_in"] == len(frame)
        assert expected["rows_in"] == expected["rows_kept"] + expected["rows_quarantined"]
        for err in truth["injected_errors"][dataset]:
            assert err["reason"] in reasons
            row = frame.iloc[err["row"] - 1]
            if err["reason"] == "duplicate_row":
                assert row.equals(frame.iloc[err["row"] - 2])
            elif dataset != "site_b" or err["value"] != "":
                value = row[err["column"]]
                assert str(value).removesuffix(".0") == err["value"], err
    a = truth["expected_ingest"]["site_a"]
    # 8 injected problems: the conflict quarantines 2 rows, a missing ID, session 0 and an exact
    # repeat 1 row each; a bad answer or PHQ-9 score (4) quarantines only its cell
    assert a["rows_quarantined"] == 5
    assert truth["expected_ingest"]["site_c"]["rows_quarantined"] == 0


def test_ingest_quarantines_exactly_the_injected_rows(truth):
    ingest = pytest.importorskip("alliance.data.ingest")
    for dataset in DATASETS:
        result = ingest.ingest(CODEBOOKS / f"{dataset}.yaml")
        expected = truth["expected_ingest"][dataset]
        for key in ("rows_in", "rows_kept", "rows_quarantined", "reasons"):
            assert result.report[key] == expected[key], (dataset, key)
        lines = result.quarantine
        got = set(zip(lines["row"].astype(int), lines["reason"], strict=True))
        want = {(e["row"], e["reason"]) for e in truth["injected_errors"][dataset]}
        assert got == want, dataset
