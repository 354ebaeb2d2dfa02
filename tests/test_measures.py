"""Outcome measures as data (issue 21): ranges and directions against their publications."""

from importlib import resources

import pytest

from alliance.data.measures import builtin_measures, load_measure, lower_is_better
from alliance.data.schemas import read_yaml

#: The published total ranges and directions (the sources named in each file).
PUBLISHED = {
    "phq9": (0, 27, "lower"),  # Kroenke et al. 2001: 9 items 0-3
    "gad7": (0, 21, "lower"),  # Spitzer et al. 2006: 7 items 0-3
    "core10": (0, 40, "lower"),  # Barkham et al. 2013: 10 items 0-4
    "oq45": (0, 180, "lower"),  # Lambert et al. 1996: 45 items 0-4
    "ors": (0, 40, "higher"),  # Miller et al. 2003: 4 lines of 10 cm
}


def test_every_published_measure_is_built_in():
    assert builtin_measures() == sorted(PUBLISHED)


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_range_direction_and_source(name):
    measure = load_measure(name)
    low, high, better = PUBLISHED[name]
    assert (measure.min, measure.max, measure.better) == (low, high, better)
    assert measure.source
    doc = read_yaml(str(resources.files("alliance.data").joinpath("measures", f"{name}.yaml")))
    # the total is the sum of its items: items x the item scale
    assert measure.items * doc["item_scale"]["max"] == measure.max
    assert lower_is_better(name) == (better == "lower")


def test_unknown_measure():
    with pytest.raises(ValueError, match=r"unknown outcome measure 'bdi2'.*phq9"):
        load_measure("bdi2")
    assert lower_is_better("bdi2") is None
