import numpy as np
import pytest

from alliance.bayes.api import build_data
from alliance.bayes.models import DEFAULT_PRIORS, build_model, prior_scale, scale_priors
from alliance.bayes.sampling import choose_backend, prior_predictive, sampler_settings


def test_prior_scales():
    assert prior_scale(None, "b_alliance", "slope") == DEFAULT_PRIORS["slope"]
    assert prior_scale({"slope": 0.5}, "b_alliance", "slope") == 0.5
    assert prior_scale({"slope": 0.5, "b_alliance": 2}, "b_alliance", "slope") == 2.0
    assert scale_priors({"slope": 0.5}, 2)["slope"] == 1.0
    assert scale_priors(None, 0.5)["tau"] == DEFAULT_PRIORS["tau"] / 2
    for bad in (0, -1, float("nan"), "1", True):
        with pytest.raises(ValueError, match="prior scale of b_alliance"):
            prior_scale({"slope": bad}, "b_alliance", "slope")
    with pytest.raises(ValueError, match="factor must be a positive number"):
        scale_priors(None, 0)


def test_sampler_settings():
    s = sampler_settings({"draws": 10})
    assert s["draws"] == 10 and s["cores"] == 2 and s["chains"] == 2
    for bad in (
        {"draws": 0},
        {"target_accept": 1.0},
        {"backend": "stan"},
        {"seed": -1},
        {"thin": 2},
        {"cores": 1.5},
    ):
        with pytest.raises(ValueError):
            sampler_settings(bad)


@pytest.mark.parametrize("name", ["outcome", "outcome_null", "therapist", "session"])
def test_models_build_and_prior_predictive(demo_tables, name):
    data = build_data(demo_tables("site_c"), name)
    model = build_model(name, data)
    prior = prior_predictive(model, draws=200, seed=1)
    y = np.asarray(prior.prior_predictive["y"])
    # weakly informative on the standardized scale: the bulk of simulated outcomes within
    # a few SDs, not hundreds
    assert 0.5 < np.median(np.abs(y)) < 5
    assert choose_backend(model, {"backend": "pymc"}) == "pymc"
    # auto: nutpie for every model, the small outcome models included (sampling.py)
    assert choose_backend(model, {"backend": "auto"}) == "nutpie"


def test_unknown_model(demo_tables):
    with pytest.raises(ValueError, match="model must be one of"):
        build_data(demo_tables("site_c"), "latent_naive")


def _graph_constants(model) -> list[tuple]:
    """Every constant in the log density and the deterministics, as sortable pairs."""
    from pytensor.graph.basic import Constant
    from pytensor.graph.traversal import ancestors

    outputs = [model.logp(), *model.deterministics]
    return sorted(
        (str(c.type), repr(c.data)) for c in ancestors(outputs) if isinstance(c, Constant)
    )


@pytest.mark.parametrize("name", ["outcome", "outcome_null"])
def test_outcome_model_graph_does_not_depend_on_the_data(demo_tables, name):
    # Data enter as pm.Data, never as constants: a data-derived constant would be compiled
    # into PyTensor's C code, so each dataset (each Snakemake job) would compile its own
    # module instead of reusing the cache (7 s of g++ per site at scale).
    graphs = [
        _graph_constants(build_model(name, build_data(demo_tables(s), name)))
        for s in ("site_b", "site_c")
    ]
    assert graphs[0] == graphs[1]
