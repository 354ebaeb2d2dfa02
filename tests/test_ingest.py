import json

import numpy as np
import pandas as pd
import pyreadstat
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alliance.data.codebook import CodebookError, load_codebook
from alliance.data.ingest import IngestError, classify, ingest, ingest_to
from alliance.data.schemas import SchemaError

ITEMS = [f"Q{i}" for i in range(1, 13)]


def make_long(rng, n_patients=6, n_sessions=3, low=1, high=5):
    """A valid long export: patient x session rows, 12 items, PHQ-9, age, site."""
    rows = []
    for p in range(1, n_patients + 1):
        for s in range(1, n_sessions + 1):
            answers = rng.integers(low, high + 1, size=12)
            row = {"pid": f"P{p:03d}", "ther": f"T{p % 2}", "sess": s, "site": "A"}
            row.update({q: int(a) for q, a in zip(ITEMS, answers, strict=True)})
            row["PHQ"] = int(rng.integers(0, 28))
            row["age"] = 20 + p
            rows.append(row)
    return pd.DataFrame(rows)


def codebook_doc(file, fmt="csv", **extra):
    doc = {
        "dataset": "toy",
        "file": str(file),
        "format": fmt,
        "ids": {"patient": "pid", "therapist": "ther", "session": "sess"},
        "groups": ["site"],
        "instrument": "wai_sr",
        "items": {"pattern": "Q{number}"},
        "missing_codes": [-99, "n/a"],
        "outcomes": [{"measure": "phq9", "column": "PHQ", "min": 0, "max": 27}],
        "covariates": [{"column": "age", "type": "numeric", "min": 16, "max": 99}],
    }
    doc.update(extra)
    return doc


def write_case(tmp_path, frame, fmt="csv", **extra):
    data = tmp_path / f"export.{fmt}"
    if fmt == "csv":
        frame.to_csv(data, index=False)
    elif fmt == "parquet":
        frame.to_parquet(data, index=False)
    elif fmt == "xlsx":
        frame.to_excel(data, index=False)
    elif fmt == "sav":
        pyreadstat.write_sav(frame, str(data))
    path = tmp_path / "codebook.yaml"
    path.write_text(yaml.safe_dump(codebook_doc(data.name, fmt, **extra)))
    return path


def corrupt(frame, row, column, value):
    frame = frame.astype(object)
    frame.loc[row - 1, column] = value
    return frame


def assert_reconciles(result, rows_in):
    rep = result.report
    q = result.quarantine
    assert rep["rows_in"] == rows_in
    assert rep["rows_in"] == rep["rows_kept"] + rep["rows_quarantined"]
    row_scope = q["scope"] == "row"
    assert rep["rows_quarantined"] == q.loc[row_scope, "row"].nunique()
    in_kept = ~row_scope & ~q["row"].isin(q.loc[row_scope, "row"])
    assert rep["cells_quarantined"] == in_kept.sum()
    # a kept row is in the tidy items (or is a wide row without any attended session)
    assert set(q.loc[row_scope, "row"]).isdisjoint(set(result.items.get("source_row", [])))
    # every tidy item row is an attended session with a kept record
    if result.attendance is not None and len(result.items):
        key = ["patient_id", "session", "rater"]
        att = result.attendance
        assert set(map(tuple, result.items[key].astype(str).to_numpy())) <= set(
            map(tuple, att.loc[att["kept"], key].astype(str).to_numpy())
        )


def test_valid_export_keeps_every_row(tmp_path, rng):
    frame = make_long(rng)
    result = ingest(write_case(tmp_path, frame))
    assert_reconciles(result, len(frame))
    assert result.report["rows_quarantined"] == 0
    assert len(result.items) == len(frame)
    # values pass through unchanged, mapped to instrument item IDs
    first = result.items.iloc[0]
    assert first["wai_01"] == frame.loc[0, "Q1"]
    assert first["wai_12"] == frame.loc[0, "Q12"]
    assert result.items["session"].dtype == "Int64"
    assert set(result.outcomes["measure"]) == {"phq9"}
    assert result.outcomes["value"].sum() == frame["PHQ"].sum()
    assert len(result.patients) == 6
    assert result.patients["age"].tolist() == [21.0, 22.0, 23.0, 24.0, 25.0, 26.0]


@pytest.mark.parametrize(
    ("column", "value", "reason", "scope"),
    [
        ("Q3", "9", "out_of_range", "cell"),
        ("Q3", "0", "out_of_range", "cell"),
        ("Q3", "x", "non_numeric", "cell"),
        ("Q3", "3.5", "not_on_scale", "cell"),
        ("Q3", "inf", "out_of_range", "cell"),
        ("Q3", "nan", "non_numeric", "cell"),
        ("pid", "", "missing_id", "row"),
        ("ther", " ", "missing_id", "row"),
        ("pid", "1.2345678901234567e+19", "inexact_id", "row"),
        ("pid", "1.23457E+19", "inexact_id", "row"),
        ("pid", "inf", "inexact_id", "row"),
        ("ther", "-Infinity", "inexact_id", "row"),
        ("sess", "0", "invalid_session", "row"),
        ("sess", "-2", "invalid_session", "row"),
        ("sess", "2.5", "invalid_session", "row"),
        ("sess", "first", "invalid_session", "row"),
        ("sess", "1e20", "invalid_session", "row"),
        ("sess", "inf", "invalid_session", "row"),
        ("sess", "-inf", "invalid_session", "row"),
        ("sess", "9223372036854775808", "invalid_session", "row"),
        ("PHQ", "40", "outcome_out_of_range", "cell"),
        ("PHQ", "-1", "outcome_out_of_range", "cell"),
        ("PHQ", "12.5", "outcome_out_of_range", "cell"),
        ("PHQ", "severe", "outcome_non_numeric", "cell"),
        ("PHQ", "inf", "outcome_out_of_range", "cell"),
        ("age", "200", "covariate_invalid", "cell"),
        ("age", "inf", "covariate_invalid", "cell"),
    ],
)
def test_bad_value_is_quarantined_with_reason(tmp_path, rng, column, value, reason, scope):
    frame = corrupt(make_long(rng), 4, column, value)
    result = ingest(write_case(tmp_path, frame))
    assert_reconciles(result, len(frame))
    line = result.quarantine.iloc[0]
    assert len(result.quarantine) == 1
    got = (line["row"], line["column"], line["reason"], line["scope"])
    assert got == (4, column, reason, scope)
    assert line["value"] == value
    assert result.report["reasons"] == {reason: 1}
    if scope == "row":  # an ID or session problem: the record is quarantined
        assert result.report["rows_quarantined"] == 1
        assert result.report["cells_quarantined"] == 0
        assert 4 not in set(result.items["source_row"])
        # row 4 (P002, session 1) still attests the session unless its ID or session is bad
        attested = ("P002", 1) in result.attendance.set_index(["patient_id", "session"]).index
        assert attested == (column == "ther")
    else:  # a bad answer: the cell is set missing, the attended session is kept
        assert result.report["rows_quarantined"] == 0
        assert result.report["cells_quarantined"] == 1
        assert result.report["cell_reasons"] == {reason: 1}
        assert 4 in set(result.items["source_row"])
        kept = result.items.set_index("source_row").loc[4]
        if column == "Q3":
            assert pd.isna(kept["wai_03"])
            assert kept["wai_04"] == frame.loc[3, "Q4"]
        if column == "PHQ":
            assert 4 not in set(result.outcomes["source_row"])
        if column == "age":  # patient-level: the patient's other rows give the age
            assert result.patients.set_index("patient_id").loc["P002", "age"] == 22


def test_missing_codes_are_missing_not_quarantined(tmp_path, rng):
    frame = corrupt(make_long(rng), 2, "Q1", "-99")
    frame = corrupt(frame, 3, "Q2", "n/a")
    frame = corrupt(frame, 5, "Q4", "")
    frame = corrupt(frame, 6, "PHQ", "-99")
    result = ingest(write_case(tmp_path, frame))
    assert_reconciles(result, len(frame))
    assert result.report["rows_quarantined"] == 0
    assert result.report["missing_codes_seen"] == {"-99": 2, "n/a": 1}
    assert result.report["item_nonresponse"] == 3
    by_row = result.items.set_index("source_row")
    assert pd.isna(by_row.loc[2, "wai_01"])
    assert pd.isna(by_row.loc[3, "wai_02"])
    assert len(result.outcomes) == len(frame) - 1


def test_exact_duplicate_keeps_first(tmp_path, rng):
    frame = make_long(rng)
    frame = pd.concat([frame, frame.iloc[[1]]], ignore_index=True)
    result = ingest(write_case(tmp_path, frame))
    assert_reconciles(result, len(frame))
    assert result.quarantine[["row", "reason"]].values.tolist() == [[len(frame), "duplicate_row"]]
    assert 2 in set(result.items["source_row"])


def test_conflicting_duplicate_quarantines_all(tmp_path, rng):
    frame = make_long(rng)
    twin = frame.iloc[[1]].copy()
    twin["Q5"] = 1 if frame.loc[1, "Q5"] != 1 else 2
    frame = pd.concat([frame, twin], ignore_index=True)
    result = ingest(write_case(tmp_path, frame))
    assert_reconciles(result, len(frame))
    assert sorted(result.quarantine["row"]) == [2, len(frame)]
    assert set(result.quarantine["reason"]) == {"duplicate_key_conflict"}


def test_several_problems_in_one_row_count_once(tmp_path, rng):
    frame = corrupt(make_long(rng), 3, "Q1", "7")
    frame = corrupt(frame, 3, "Q2", "abc")
    frame = corrupt(frame, 5, "Q2", "abc")
    frame = corrupt(frame, 5, "sess", "")
    result = ingest(write_case(tmp_path, frame))
    assert_reconciles(result, len(frame))
    assert result.report["rows_quarantined"] == 1  # row 5: its session is missing
    assert result.report["rows_with_quarantined_cells"] == 1  # row 3, kept
    assert result.report["cells_quarantined"] == 2
    assert len(result.quarantine) == 4
    assert result.report["reasons"] == {"invalid_session": 1, "non_numeric": 2, "out_of_range": 1}
    assert result.report["cell_reasons"] == {"non_numeric": 1, "out_of_range": 1}


def test_strict_mode_names_file_row_and_column(tmp_path, rng):
    frame = corrupt(make_long(rng), 5, "Q7", "6")
    path = write_case(tmp_path, frame, strict=True)
    with pytest.raises(
        IngestError, match=r"codebook\.yaml.*export\.csv.*row 5, column 'Q7'.*'6'.*line 6 of"
    ):
        ingest(path)
    # the same file without strict quarantines the cell
    assert ingest(path, strict=False).report["cells_quarantined"] == 1


def test_recode_shift_maps_0_4_to_1_5(tmp_path, rng):
    frame = make_long(rng, low=0, high=4)
    frame = corrupt(frame, 2, "Q1", "5")  # 5 + 1 = 6 is off the 1-5 scale
    result = ingest(write_case(tmp_path, frame, recode={"shift": 1}))
    assert_reconciles(result, len(frame))
    assert result.quarantine["reason"].tolist() == ["out_of_range"]
    kept = result.items.set_index("source_row")
    assert kept["wai_01"].min() >= 1
    assert kept["wai_01"].max() <= 5
    assert kept.loc[1, "wai_03"] == frame.loc[0, "Q3"] + 1
    assert result.report["values_recoded"] == len(frame) * 12


def test_recode_map_rejects_unlisted_values(tmp_path, rng):
    frame = make_long(rng)
    frame = corrupt(frame, 1, "Q2", "9")
    mapping = {1: 5, 2: 4, 3: 3, 4: 2, 5: 1}
    result = ingest(write_case(tmp_path, frame, recode={"map": mapping}))
    assert result.quarantine[["row", "reason"]].values.tolist() == [[1, "out_of_range"]]
    assert result.items.iloc[0]["wai_01"] == 6 - frame.loc[0, "Q1"]


def test_rater_column_and_codes(tmp_path, rng):
    frame = make_long(rng)
    frame["who"] = [1, 2] * (len(frame) // 2)
    frame = corrupt(frame, 3, "who", 7)
    path = write_case(
        tmp_path,
        frame,
        ids={"patient": "pid", "therapist": "ther", "session": "sess", "rater": "who"},
        rater_values={"1": "client", "2": "therapist"},
    )
    result = ingest(path)
    assert_reconciles(result, len(frame))
    assert result.quarantine[["row", "reason"]].values.tolist() == [[3, "invalid_rater"]]
    assert set(result.items["rater"]) == {"client", "therapist"}


@pytest.mark.parametrize("fmt", ["parquet", "xlsx", "sav"])
def test_other_formats_give_the_same_tables(tmp_path, rng, fmt):
    frame = make_long(rng)
    frame.loc[2, "Q1"] = -99
    reference = ingest(_csv(tmp_path, frame))
    result = ingest(write_case(tmp_path, frame, fmt=fmt))
    pd.testing.assert_frame_equal(result.items, reference.items)
    pd.testing.assert_frame_equal(result.outcomes, reference.outcomes)
    assert result.report["missing_codes_seen"] == {"-99": 1}


def _csv(tmp_path, frame):
    folder = tmp_path / "csv"
    folder.mkdir()
    return write_case(folder, frame)


def test_sav_value_labels_and_user_missing(tmp_path, rng):
    frame = make_long(rng).astype({q: float for q in ITEMS})
    frame.loc[0, "Q1"] = -99.0
    data = tmp_path / "export.sav"
    labels = {1.0: "Seldom", 5.0: "Always", -99.0: "not answered"}
    pyreadstat.write_sav(
        frame,
        str(data),
        variable_value_labels={q: labels for q in ITEMS},
        missing_ranges={q: [-99.0] for q in ITEMS},
    )
    doc = codebook_doc("export.sav", "sav", missing_codes=[])
    (tmp_path / "cb.yaml").write_text(yaml.safe_dump(doc))
    result = ingest(tmp_path / "cb.yaml")
    assert result.report["rows_quarantined"] == 0
    assert result.report["missing_codes_seen"] == {"-99": 1}
    assert any(
        "declared in export.sav are treated as missing only in the columns that declare them: "
        "-99 in Q1, Q2" in w
        for w in result.report["warnings"]
    )
    assert pd.isna(result.items.iloc[0]["wai_01"])


def wide_frame(rng, n=5, sessions=(1, 2, 3)):
    rows = []
    for p in range(n):
        row = {"ID": 100 + p, "THER": "t1", "SITE": "C"}
        for s in sessions:
            for k in range(1, 13):
                row[f"S{s}_I{k}"] = int(rng.integers(0, 5))
            row[f"PHQ_S{s}"] = int(rng.integers(0, 28))
        rows.append(row)
    return pd.DataFrame(rows)


def wide_doc(**extra):
    return {
        "dataset": "wide",
        "file": "wide.csv",
        "format": "csv",
        "layout": "wide",
        "sessions": [1, 2, 3],
        "ids": {"patient": "ID", "therapist": "THER"},
        "groups": ["SITE"],
        "instrument": "wai_sr",
        "items": {"pattern": "S{session}_I{number}"},
        "recode": {"shift": 1},
        "missing_codes": [999],
        "outcomes": [{"measure": "phq9", "column": "PHQ_S{session}", "min": 0, "max": 27}],
        **extra,
    }


def test_wide_layout_melts_sessions(tmp_path, rng):
    frame = wide_frame(rng).astype(object)
    for k in range(1, 13):  # patient 2 skipped session 3 entirely
        frame.loc[1, f"S3_I{k}"] = ""
    frame.loc[1, "PHQ_S3"] = ""
    frame.loc[3, "S2_I4"] = 999
    frame.loc[4, "S1_I1"] = 7  # 7 + 1 = 8: off the scale, the cell is quarantined
    frame.to_csv(tmp_path / "wide.csv", index=False)
    (tmp_path / "cb.yaml").write_text(yaml.safe_dump(wide_doc()))
    result = ingest(tmp_path / "cb.yaml")
    assert_reconciles(result, 5)
    assert result.quarantine[["row", "column", "reason", "scope"]].values.tolist() == [
        [5, "S1_I1", "out_of_range", "cell"]
    ]
    assert len(result.items) == 5 * 3 - 1  # patient 2 missed session 3
    kept = result.items.set_index(["patient_id", "session"])
    assert pd.isna(kept.loc[("104", 1), "wai_01"])
    assert kept.loc[("104", 1), "wai_02"] == frame.loc[4, "S1_I2"] + 1
    assert result.items["patient_id"].iloc[0] == "100"
    kept = result.items.set_index(["patient_id", "session"])
    assert kept.loc[("100", 2), "wai_05"] == frame.loc[0, "S2_I5"] + 1
    assert pd.isna(kept.loc[("103", 2), "wai_04"])
    assert result.report["missing_codes_seen"] == {"999": 1}
    assert len(result.outcomes) == 5 * 3 - 1


def test_effects_table(tmp_path):
    table = pd.DataFrame(
        {
            "Study": ["A", "B", "C", "D", "", "F"],
            "r": ["0.3", "1.2", "0.1", "x", "0.2", "0.25"],
            "N": ["50", "80", "3", "60", "40", "70.5"],
        }
    )
    table.to_csv(tmp_path / "eff.csv", index=False)
    doc = {
        "dataset": "pub",
        "kind": "effects",
        "file": "eff.csv",
        "format": "csv",
        "effects": {"study": "Study", "r": "r", "n": "N"},
    }
    (tmp_path / "cb.yaml").write_text(yaml.safe_dump(doc))
    result = ingest(tmp_path / "cb.yaml")
    assert_reconciles(result, 6)
    assert result.effects["study"].tolist() == ["A"]
    assert result.report["reasons"] == {
        "invalid_n": 2,
        "invalid_r": 2,
        "missing_study": 1,
    }


# ---------------------------------------------------------------- errors that stop


def test_missing_column_names_codebook_key_and_column(tmp_path, rng):
    frame = make_long(rng).drop(columns=["Q7"])
    path = write_case(tmp_path, frame)
    with pytest.raises(
        IngestError, match=r"codebook\.yaml: key 'items\.pattern' names column 'Q7'"
    ):
        ingest(path)


def test_missing_outcome_column(tmp_path, rng):
    frame = make_long(rng).drop(columns=["PHQ"])
    with pytest.raises(IngestError, match=r"key 'outcomes\[0\]\.column' names column 'PHQ'"):
        ingest(write_case(tmp_path, frame))


def test_unknown_instrument(tmp_path, rng):
    path = write_case(tmp_path, make_long(rng), instrument="wai_99")
    with pytest.raises(
        CodebookError, match=r"codebook\.yaml: key 'instrument': unknown instrument"
    ):
        load_codebook(path)


def test_schema_violation_lists_key(tmp_path, rng):
    path = write_case(tmp_path, make_long(rng), format="spss")
    with pytest.raises(SchemaError, match=r"(?s)codebook\.yaml.*at 'format'"):
        load_codebook(path)
    path.write_text(yaml.safe_dump({**codebook_doc("export.csv"), "colour": "blue"}))
    with pytest.raises(SchemaError, match=r"'colour' was unexpected"):
        load_codebook(path)


def test_missing_file(tmp_path, rng):
    path = write_case(tmp_path, make_long(rng))
    (tmp_path / "export.csv").unlink()
    with pytest.raises(CodebookError, match=r"codebook\.yaml: key 'file' names 'export\.csv'"):
        load_codebook(path)
    # a remote job (Kubernetes pod) parses the codebook before the file arrives from storage
    codebook = load_codebook(path, check_file=False)
    assert codebook.file == (tmp_path / "export.csv").resolve()


def test_wrong_format_is_named(tmp_path, rng):
    frame = make_long(rng)
    path = write_case(tmp_path, frame)
    doc = yaml.safe_load(path.read_text())
    doc["format"] = "xlsx"
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(IngestError, match=r"key 'format' says 'xlsx', but .*export\.csv cannot be"):
        ingest(path)


def test_unreadable_file(tmp_path, rng):
    path = write_case(tmp_path, make_long(rng), fmt="parquet")
    (tmp_path / "export.parquet").write_bytes(b"\x00\x01 not parquet")
    with pytest.raises(IngestError, match=r"cannot be read as parquet"):
        ingest(path)


def test_item_map_must_cover_instrument(tmp_path, rng):
    path = write_case(tmp_path, make_long(rng), items={"map": {"wai_01": "Q1"}})
    with pytest.raises(CodebookError, match=r"key 'items\.map' lacks instrument items"):
        load_codebook(path)


def test_unused_columns_are_reported(tmp_path, rng):
    frame = make_long(rng)
    frame["notes"] = "x"
    result = ingest(write_case(tmp_path, frame))
    assert any("notes" in w for w in result.report["warnings"])


def test_written_outputs(tmp_path, rng):
    frame = corrupt(make_long(rng), 2, "Q1", "8")
    path = write_case(tmp_path, frame)
    report = ingest_to(path, tmp_path / "out")
    on_disk = json.loads((tmp_path / "out" / "ingest_report.json").read_text())
    assert on_disk == report
    quarantine = pd.read_csv(tmp_path / "out" / "quarantine.csv")
    assert quarantine.columns.tolist() == ["row", "column", "value", "reason", "detail", "scope"]
    items = pd.read_parquet(tmp_path / "out" / "items.parquet")
    assert len(items) == report["rows_kept"]


def test_classify_matches_codes_numerically():
    cells = classify(pd.Series(["-99", "-99.0", " n/a ", "3", "", "abc"]), (-99, "n/a"))
    assert cells.code.notna().tolist() == [True, True, True, False, False, False]
    assert cells.blank.tolist() == [False, False, False, False, True, False]
    assert cells.non_numeric.tolist() == [False, False, False, False, False, True]
    assert cells.value.iloc[3] == 3


# ---------------------------------------------------------------- property: nothing is lost

CORRUPTIONS = st.sampled_from(["9", "x", "3.5", "", "-99", "0", "-1", "2", None])


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    edits=st.lists(
        st.tuples(
            st.integers(1, 18),
            st.sampled_from(["pid", "ther", "sess", "Q1", "Q6", "Q12", "PHQ", "age"]),
            CORRUPTIONS,
        ),
        max_size=12,
    ),
    duplicate=st.lists(st.integers(1, 18), max_size=3),
)
def test_random_corruption_never_loses_a_row(tmp_path_factory, edits, duplicate):
    tmp = tmp_path_factory.mktemp("prop")
    frame = make_long(np.random.default_rng(1))
    for row, column, value in edits:
        frame = corrupt(frame, row, column, value)
    frame = pd.concat([frame, frame.iloc[[r - 1 for r in duplicate]]], ignore_index=True)
    result = ingest(write_case(tmp, frame))
    assert_reconciles(result, len(frame))
    kept_rows = set(result.items["source_row"].astype(int))
    q = result.quarantine
    quarantined = set(q.loc[q["scope"] == "row", "row"].astype(int))
    assert kept_rows.isdisjoint(quarantined)
    assert kept_rows | quarantined == set(range(1, len(frame) + 1))
    assert set(q.loc[q["scope"] == "cell", "row"]) <= kept_rows | quarantined
    assert sum(result.report["reasons"].values()) >= result.report["rows_quarantined"]


def test_group_rename_and_categorical_labels(tmp_path, rng):
    frame = make_long(rng)
    frame["SEX"] = [1, 2] * (len(frame) // 2)
    frame = corrupt(frame, 6, "SEX", 3)
    path = write_case(
        tmp_path,
        frame.rename(columns={"site": "Clinic Site"}),
        groups=[{"column": "Clinic Site", "name": "site"}],
        covariates=[
            {"column": "SEX", "name": "sex", "type": "categorical", "values": {1: "F", 2: "M"}}
        ],
    )
    result = ingest(path)
    assert_reconciles(result, len(frame))
    assert result.quarantine[["row", "column", "reason"]].values.tolist() == [
        [6, "SEX", "covariate_invalid"]
    ]
    assert "site" in result.items.columns
    assert set(result.patients["sex"]) == {"F", "M"}


def test_visual_analogue_answers_are_kept_to_their_step(tmp_path, rng):
    """A continuous instrument (the SRS: 0-10 read to 0.1) keeps decimal answers as read;
    an answer finer than the step or off the line is quarantined with its reason, and one
    category outside the scale is no hint of a shifted export (the scale has no categories)."""
    rows = []
    for p in range(1, 7):
        for s in (1, 2, 3):
            row = {"pid": f"P{p:03d}", "ther": f"T{p % 2}", "sess": s, "site": "A"}
            row |= {f"S{k}": round(float(rng.uniform(0, 10)), 1) for k in range(1, 5)}
            row |= {"PHQ": int(rng.integers(0, 28)), "age": 30}
            rows.append(row)
    frame = pd.DataFrame(rows).astype(object)
    frame.loc[0, "S1"] = 10.0  # the line's right end
    frame.loc[1, "S2"] = 0.0  # its left end
    frame.loc[2, "S3"] = 7.35  # finer than a millimetre
    frame.loc[3, "S4"] = 11.0  # off the line (one unit above: not a shift hint)
    path = write_case(tmp_path, frame, instrument="srs", items={"pattern": "S{number}"})
    result = ingest(path)
    assert_reconciles(result, len(frame))
    q = result.quarantine.set_index("column")
    assert (q.loc["S3", "row"], q.loc["S3", "reason"]) == (3, "not_on_scale")
    assert q.loc["S3", "detail"] == "finer than the step 0.1 of the scale 0-10"
    assert (q.loc["S4", "row"], q.loc["S4", "reason"]) == (4, "out_of_range")
    assert len(q) == 2
    assert not any("shift" in w for w in result.report.get("warnings", []))
    items = result.items.set_index("source_row")  # record N is row N
    assert items.loc[1, "srs_1"] == 10.0 and items.loc[2, "srs_2"] == 0.0
    assert pd.isna(items.loc[3, "srs_3"]) and pd.isna(items.loc[4, "srs_4"])
    np.testing.assert_array_equal(
        items.loc[list(range(1, len(frame) + 1)), ["srs_1", "srs_2"]].to_numpy(dtype=float),
        frame[["S1", "S2"]].to_numpy(dtype=float),
    )
