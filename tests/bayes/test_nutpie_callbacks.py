"""nutpie's C callbacks built in two layers (alliance.bayes.nutpie_callbacks): same draws as
nutpie's own compilation, nutpie's status codes, data swaps, and graphs (and so PyTensor's cache
keys) that do not depend on the process."""

import ctypes
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from alliance.bayes.nutpie_callbacks import (
    _broadcast_shape_iter_in_input_order,
    compile_for_nutpie,
    deterministic_broadcast_shapes,
)
from alliance.bayes.sampling import reproducible_numba_compilation


def _small_model(rng, n=60):
    """A small regression whose data are ``pm.Data`` vectors of unknown length: PyTensor
    inserts run-time checks that their lengths agree (the graphs this module makes ordered)."""
    import pymc as pm

    x = rng.normal(size=n)
    w = rng.normal(size=n)
    y = 0.5 * x - 0.2 * w + rng.normal(0, 1, n)
    with pm.Model() as model:
        x_data = pm.Data("x", x)
        w_data = pm.Data("w", w)
        y_data = pm.Data("y_obs", y)
        b = pm.Normal("b", 0, 1, shape=2)
        sigma = pm.HalfNormal("sigma", 1)
        pm.Normal("y", b[0] * x_data + b[1] * w_data, sigma, observed=y_data)
    return model


def _draws(compiled, seed=7):
    import nutpie

    idata = nutpie.sample(
        compiled, draws=150, tune=150, chains=2, cores=1, seed=seed, progress_bar=False
    )
    return {str(k): np.asarray(v) for k, v in idata.posterior.data_vars.items()}


def test_same_draws_as_nutpies_own_compilation(rng):
    """The callbacks only move data and results around PyTensor's compiled graph function, so
    nutpie draws exactly the same chains (bit for bit) as with ``nutpie.compile_pymc_model``,
    also after ``with_data`` (simulation-based calibration refits one compiled model to new
    data). Data of another shape, or an unknown name, are errors that say what was expected."""
    import nutpie

    model = _small_model(rng)
    y_new = rng.normal(size=60)
    with reproducible_numba_compilation():
        ours = compile_for_nutpie(model)
        theirs = nutpie.compile_pymc_model(model)
    for our_model, their_model in (
        (ours, theirs),
        (ours.with_data(y_obs=y_new), theirs.with_data(y_obs=y_new)),
    ):
        our_draws, their_draws = _draws(our_model), _draws(their_model)
        assert our_draws.keys() == their_draws.keys()
        for name in our_draws:
            np.testing.assert_array_equal(our_draws[name], their_draws[name], err_msg=name)
    with pytest.raises(ValueError, match=r"must keep the shape \(60,\).*got \(59,\)"):
        ours.with_data(y_obs=y_new[:59])
    with pytest.raises(KeyError, match="unknown data variable 'z'"):
        ours.with_data(z=y_new)


def _call_logp(compiled, point):
    out = np.zeros(compiled.n_dim)
    value = np.zeros(1)
    function = compiled.compiled_logp_func.ctypes
    status = function(
        ctypes.c_uint64(len(point)),
        np.ascontiguousarray(point, dtype=float).ctypes.data_as(ctypes.POINTER(ctypes.c_double)),
        out.ctypes.data_as(ctypes.POINTER(ctypes.c_double)),
        value.ctypes.data_as(ctypes.POINTER(ctypes.c_double)),
        ctypes.c_void_p(int(compiled.user_data.ctypes.data)),
    )
    return status, value[0], out


def test_callbacks_return_nutpies_status_codes():
    """0 with the log density and gradient of PyTensor's own function; 1 when the log density
    raises (here an assertion on the parameter), 4 when it is not finite, -1 for a point of
    the wrong dimension: nutpie treats the errors as divergent steps, never as numbers."""
    import pymc as pm
    import pytensor.tensor as pt
    from pytensor.raise_op import Assert

    with pm.Model() as model:
        x = pm.Normal("x", 0, 1, shape=2)
        pm.Potential("guard", Assert("x[0] below 5")(pt.constant(0.0), x[0] < 5))
        pm.Potential("edge", pt.switch(x[1] < 3, 0.0, -np.inf))
    with reproducible_numba_compilation():
        compiled = compile_for_nutpie(model)
    status, value, grad = _call_logp(compiled, [0.5, -1.0])
    assert status == 0
    assert value == pytest.approx(-0.5 * (0.25 + 1.0) - np.log(2 * np.pi), rel=1e-12)
    np.testing.assert_allclose(grad, [-0.5, 1.0], rtol=1e-12)
    assert _call_logp(compiled, [6.0, 0.0])[0] == 1
    assert _call_logp(compiled, [0.0, 4.0])[0] == 4
    assert _call_logp(compiled, [0.0, 0.0, 0.0])[0] == -1


@pytest.mark.parametrize(
    ("shapes", "runtime", "sizes"),
    [
        ([("n",), ("n",), ("m",)], False, {"n": 5, "m": 5}),
        ([("n", 1), (1, "m"), ("k", "m")], False, {"n": 5, "m": 2, "k": 5}),
        ([(3,), ("n",)], False, {"n": 3}),
        ([(1,), ("n",), ("m",)], False, {"n": 4, "m": 4}),
        ([("n",), (4,), (1,)], False, {"n": 4}),
        ([("n",), ("m",)], True, {"n": 1, "m": 6}),
        ([(), ("n", 1)], False, {"n": 2}),
    ],
)
def test_broadcast_shape_in_input_order_agrees_with_pytensor(shapes, runtime, sizes):
    """Same broadcast shape as PyTensor's ``broadcast_shape_iter`` for symbolic and constant
    lengths (evaluated with lengths that broadcast), with a run-time broadcast allowed or not."""
    import pytensor
    import pytensor.tensor as pt
    from pytensor.tensor.extra_ops import broadcast_shape_iter

    arrays = [
        pt.tensor(
            f"a{i}",
            dtype="float64",
            shape=tuple(None if isinstance(d, str) else d for d in shape),
        )
        for i, shape in enumerate(shapes)
    ]
    ours = _broadcast_shape_iter_in_input_order(arrays, allow_runtime_broadcast=runtime)
    theirs = broadcast_shape_iter(arrays, allow_runtime_broadcast=runtime)
    assert len(ours) == len(theirs)
    values = [np.zeros(tuple(sizes.get(d, d) for d in shape)) for shape in shapes]
    fn = pytensor.function(
        arrays, [pt.as_tensor(d) for d in (*ours, *theirs)], on_unused_input="ignore"
    )
    got = [int(v) for v in fn(*values)]
    assert got[: len(ours)] == got[len(ours) :]
    assert got[: len(ours)] == list(np.broadcast_shapes(*(v.shape for v in values)))


def test_incompatible_constant_lengths_are_an_error():
    import pytensor.tensor as pt
    from pytensor.tensor.extra_ops import broadcast_shape_iter

    shapes = [(pt.constant(3),), (pt.constant(4),), (pt.iscalar("n"),)]
    for function in (broadcast_shape_iter, _broadcast_shape_iter_in_input_order):
        with pytest.raises(ValueError, match="Could not broadcast dimensions"):
            function(shapes, arrays_are_shapes=True)


def test_unknown_lengths_are_taken_in_input_order():
    """With several lengths unknown until run time, the result is the first array's length,
    asserted equal to the others: the same graph whatever the memory addresses."""
    import pytensor.tensor as pt
    from pytensor.graph.traversal import ancestors

    a, b, c = (pt.vector(name) for name in "abc")
    for order in ([a, b, c], [c, a, b]):
        (length,) = _broadcast_shape_iter_in_input_order(order)
        first = length.owner.inputs[0]  # Assert(first length, all lengths equal)
        assert [v for v in ancestors([first]) if v in order] == [order[0]]


def test_the_switch_is_undone_after_the_block():
    from pytensor.tensor import extra_ops

    before = extra_ops.broadcast_shape_iter
    with deterministic_broadcast_shapes():
        assert extra_ops.broadcast_shape_iter is _broadcast_shape_iter_in_input_order
    assert extra_ops.broadcast_shape_iter is before


_KEY_SCRIPT = textwrap.dedent(
    """
    import numpy as np
    import pymc as pm
    from nutpie.compile_pymc import _make_functions
    from pymc.initial_point import make_initial_point_fn
    from pytensor.link.numba.cache import CACHED_SRC_FUNCTIONS
    from alliance.bayes.sampling import reproducible_numba_compilation
    rng = np.random.default_rng(5)
    n = 40
    with pm.Model() as model:
        data = [pm.Data(f"d{i}", rng.normal(size=n)) for i in range(4)]
        b = pm.Normal("b", 0, 1, shape=3)
        mu = b[0] * data[0] + b[1] * data[1] + b[2] * data[2]
        pm.Normal("y", mu, 1, observed=data[3])
    # the graph functions as compile_for_nutpie makes them (numba compiles them lazily)
    with reproducible_numba_compilation():
        logp = _make_functions(
            model,
            mode="NUMBA",
            compute_grad=True,
            join_expanded=True,
            pymc_initial_point_fn=make_initial_point_fn(model=model, return_transformed=True),
        )[2]
    print(CACHED_SRC_FUNCTIONS[logp.vm.jit_fn.py_func])
    """
)


def test_the_log_density_has_the_same_cache_key_in_every_process(tmp_path):
    """Two fresh processes build the same graph, so PyTensor's numba cache key of the log
    density is the same and a second job loads what the first compiled. With PyTensor's own
    ``broadcast_shape_iter`` the length checks of the four data vectors were ordered by memory
    address and the key changed from process to process (the demo's therapist model: a new
    key in each of 4 runs, 7-9 s of compilation every time)."""
    script = tmp_path / "key.py"
    script.write_text(_KEY_SCRIPT)
    env = {**os.environ, "PYTENSOR_FLAGS": f"base_compiledir={tmp_path / 'compiledir'}"}
    runs = [
        subprocess.Popen(
            [sys.executable, str(script)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(2)
    ]
    keys = []
    for run in runs:
        out, err = run.communicate(timeout=300)
        assert run.returncode == 0, err[-2000:]
        keys.append(out.strip().splitlines()[-1])
    assert keys[0] == keys[1]


def test_only_the_callback_library_is_finalized_at_level_zero():
    """The callback's own module passes run at level 0; a function it calls is compiled as
    before (and its result is the same); the patch is undone after the block."""
    import numba
    from numba.core import codegen

    from alliance.bayes.nutpie_callbacks import _final_module_at_level_zero

    @numba.njit
    def helper(x):
        return np.sqrt(x) * 3.0

    def probe_callback(x):
        return helper(x) + 1.0

    original = codegen.CPUCodeLibrary._optimize_final_module
    with _final_module_at_level_zero("probe_callback") as finalized:
        compiled = numba.cfunc("float64(float64)")(probe_callback)
    assert finalized == ["probe_callback"]
    assert codegen.CPUCodeLibrary._optimize_final_module is original
    assert compiled.ctypes(2.25) == 1.0 + 4.5
