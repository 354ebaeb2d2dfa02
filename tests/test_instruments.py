import numpy as np
import pytest
import yaml

from alliance.data.instruments import builtin_instruments, is_builtin, load_instrument
from alliance.data.schemas import SchemaError


def test_wai_sr_key_matches_hatcher_gillaspy_2006():
    # Hatcher & Gillaspy (2006), Table 1: Task 1, 2, 10, 12; Goal 4, 6, 8, 11; Bond 3, 5, 7, 9.
    wai = load_instrument("wai_sr")
    as_numbers = {
        f: sorted(int(i.split("_")[1]) for i in items) for f, items in wai.factors.items()
    }
    assert as_numbers == {"task": [1, 2, 10, 12], "goal": [4, 6, 8, 11], "bond": [3, 5, 7, 9]}
    assert wai.categories == (1, 2, 3, 4, 5)
    assert wai.labels[1] == "Seldom"
    assert wai.labels[5] == "Always"
    assert wai.reverse_keyed == ()
    assert len(wai.items) == 12
    assert "Hatcher" in wai.source


def test_every_builtin_instrument_loads():
    assert {"wai_sr", "phq9"} <= set(builtin_instruments())
    for name in builtin_instruments():
        inst = load_instrument(name)
        covered = {i for items in inst.factors.values() for i in items}
        assert covered == set(inst.items)


def test_user_instrument_file(tmp_path):
    doc = {
        "name": "mini",
        "title": "A three-item scale",
        "rater": "therapist",
        "scale": {"min": 1, "max": 7},
        "items": ["m1", "m2", "m3"],
        "factors": {"all": ["m1", "m2", "m3"]},
        "reverse_keyed": ["m2"],
        "source": "A made-up scale for a test (2026).",
    }
    path = tmp_path / "mini.yaml"
    path.write_text(yaml.safe_dump(doc))
    inst = load_instrument(path)
    assert inst.n_categories == 7
    assert inst.reverse_keyed == ("m2",)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"factors": {"all": ["m1", "m9"]}}, r"factor 'all' names unknown items \['m9'\]"),
        ({"reverse_keyed": ["m7"]}, r"reverse_keyed names unknown items"),
        ({"scale": {"min": 5, "max": 1}}, r"scale max must exceed min"),
        ({"rater": "parent"}, r"at 'rater'"),
        ({"item_text": ["..."]}, r"'item_text' was unexpected"),
        ({"scale": {"min": 0, "max": 10, "step": 0.3}}, r"scale step must divide max - min"),
        ({"scale": {"min": 0, "max": 10, "step": 0}}, r"at 'scale.step'"),
        (
            {"scale": {"min": 0, "max": 10, "step": 0.1, "labels": {0: "low"}}},
            r"a continuous scale \(step\) has no category labels",
        ),
    ],
)
def test_bad_instrument_is_rejected(tmp_path, change, message):
    doc = {
        "name": "mini",
        "title": "t",
        "rater": "client",
        "scale": {"min": 1, "max": 5},
        "items": ["m1", "m2"],
        "factors": {"all": ["m1", "m2"]},
        "source": "A made-up scale for a test (2026).",
        **change,
    }
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(SchemaError, match=message):
        load_instrument(path)


def test_unknown_name():
    with pytest.raises(ValueError, match=r"unknown instrument 'wai_xx'"):
        load_instrument("wai_xx")


def test_builtin_or_users_file(tmp_path):
    import shutil

    builtin = load_instrument("wai_sr")
    assert is_builtin(builtin)
    copy = tmp_path / "wai_sr.yaml"
    shutil.copy(builtin.path, copy)
    assert not is_builtin(load_instrument(copy))


def test_the_session_rating_scale_is_continuous():
    """The SRS (Duncan et al. 2003): four 0-10 visual analogue lines read to 0.1, one factor,
    summed: answers are binned by unit interval, and asking for categories is an error."""
    srs = load_instrument("srs")
    assert srs.continuous and srs.scale_step == pytest.approx(0.1)
    assert (srs.scale_min, srs.scale_max) == (0, 10)
    assert srs.items == ("srs_1", "srs_2", "srs_3", "srs_4")
    assert srs.total and srs.reverse_keyed == ()
    assert "Journal of Brief Therapy, 3(1), 3-12" in srs.source
    assert srs.response_bins == tuple(range(10))
    bins = srs.response_bin(np.array([0.0, 0.9, 1.0, 9.9, 10.0, np.nan]))
    np.testing.assert_array_equal(bins, [0, 0, 1, 9, 9, np.nan])
    assert srs.bin_label(9) == "9-10"
    with pytest.raises(ValueError, match="continuous scale .0-10, step 0.1., not response"):
        _ = srs.categories
    wai = load_instrument("wai_sr")
    assert not wai.continuous and wai.response_bins == wai.categories == (1, 2, 3, 4, 5)
