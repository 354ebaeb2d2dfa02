"""A PyMC model compiled for nutpie with C callbacks that compile in a second, not in ten.

nutpie samples a PyMC model through two C functions, the log density with its gradient and the
"expand" function that turns a point into the stored draws. ``nutpie.compile_pymc_model``
builds them as numba ``cfunc`` wrappers around PyTensor's numba-compiled graph functions, with
the call inside ``try``/``except``. Numba compiles a ``try`` block inside a ``cfunc`` slowly when
the callee is large (measured on the demo's therapist model, 2 cores: 7.1 s for the log-density
callback with the ``try``, 0.5 s without it, the graph function itself loaded from PyTensor's
cache either way), and a ``cfunc`` is never cached, so every Bayesian job paid it again.

:func:`compile_for_nutpie` builds the same two callbacks in two layers:

- a *guarded* function (``njit``) that calls PyTensor's graph function inside ``try``/``except``
  and returns a status with the results. It is compiled through PyTensor's own numba cache
  (:func:`pytensor.link.numba.cache.compile_numba_function_src`), keyed by the graph
  function's cache key, so a later job, or another dataset with the same model graph, loads it;
- a thin ``cfunc`` without ``try`` that reads the data's addresses, calls the guarded function,
  copies the log density and gradient out and returns nutpie's status codes (0 ok, 1 an error
  in the log density, 3 a non-finite gradient, 4 a non-finite log density; -2 an error in
  expand; -1 a wrong dimension).

The computation is the same compiled code, so the draws are bit-identical to
``nutpie.compile_pymc_model``'s (test: ``test_same_draws_as_nutpies_own_compilation``).

PyTensor's cache key of a graph function must be the same in every process for the cache to
be used. It was not: :func:`pytensor.tensor.extra_ops.broadcast_shape_iter` collects the
lengths that may not broadcast (the lengths of ``pm.Data`` vectors, unknown until run time) in
a ``set`` of variables, whose order follows memory addresses, and picks the first as the
result's length and asserts the others equal to it. Each process therefore built a
differently ordered (equivalent) graph, with a new key, and compiled it again.
:func:`deterministic_broadcast_shapes` keeps those lengths in the order of the inputs while a
model is compiled.

Uses nutpie's and PyTensor's internal functions (``_make_functions``, ``CompiledPyMCModel``,
``compile_numba_function_src``): the versions are pinned in ``requirements.lock`` and the tests
above fail if either changes what this module relies on.

References
----------
Seyboldt, A., and contributors (2024). nutpie: a fast sampler for PyMC and Stan models.
https://github.com/pymc-devs/nutpie
Lam, S. K., Pitrou, A., & Seibert, S. (2015). Numba: a LLVM-based Python JIT compiler. LLVM-HPC
'15, 1-6.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import pymc as pm

__all__ = ["compile_for_nutpie", "deterministic_broadcast_shapes"]

#: Part of every guarded function's cache key: change it when the generated source changes
#: in a way the key's source text does not show.
_CACHE_VERSION = "alliance-nutpie-callbacks-1"


def _broadcast_shape_iter_in_input_order(
    arrays: Iterable[Any],
    arrays_are_shapes: bool = False,
    allow_runtime_broadcast: bool = False,
) -> tuple[Any, ...]:
    """PyTensor's ``broadcast_shape_iter`` with the unknown lengths kept in input order.

    Same result as :func:`pytensor.tensor.extra_ops.broadcast_shape_iter` (one length per
    dimension of the broadcast shape; a length known to be 1 broadcasts; two different
    constant lengths are an error; several lengths unknown until run time give the first
    one, asserted equal to the others, or with ``allow_runtime_broadcast`` the largest, with
    ones allowed), except that "the first" is the first in the order of ``arrays``, not in
    the iteration order of a set of variables.
    """
    import pytensor.scalar as ps
    import pytensor.tensor.basic as ptb
    from pytensor.graph.basic import Constant, Variable
    from pytensor.tensor import extra_ops
    from pytensor.tensor.math import abs as pt_abs
    from pytensor.tensor.math import all as pt_all
    from pytensor.tensor.math import eq as pt_eq
    from pytensor.tensor.math import max as pt_max
    from pytensor.tensor.math import switch

    one = ps.ScalarConstant(ps.int64, 1)
    arrays = list(arrays)
    if arrays_are_shapes:
        rank = max(len(a) for a in arrays)
        lengths_per_array = [
            (one,) * (rank - len(a))
            + tuple(
                one
                if length == 1 or (isinstance(length, Constant) and length.value == 1)
                else (length if isinstance(length, Variable) else ps.as_scalar(length))
                for length in a
            )
            for a in arrays
        ]
    else:
        tensors = [ptb.as_tensor_variable(a) for a in arrays]
        rank = max(t.ndim for t in tensors)
        lengths_per_array = [
            (one,) * (rank - t.ndim)
            + tuple(
                one if static == 1 else length
                for length, static in zip(t.shape, t.type.shape, strict=True)
            )
            for t in tensors
        ]

    result = []
    for lengths in zip(*lengths_per_array, strict=True):
        candidates = [length for length in lengths if length != one]
        if not candidates:
            result.append(one)
            continue
        if len(candidates) == 1:
            result.append(candidates[0])
            continue
        constants = list(
            dict.fromkeys(c.value.item() for c in candidates if isinstance(c, Constant))
        )
        unknown = list(dict.fromkeys(c for c in candidates if not isinstance(c, Constant)))
        if len(constants) > 1:
            raise ValueError(
                f"Could not broadcast dimensions. Incompatible shapes were {lengths_per_array}."
            )
        if constants:
            first, others = ps.as_scalar(constants[0]), unknown
        else:
            first, others = unknown[0], unknown[1:]
        if not others:
            result.append(first)
        elif not allow_runtime_broadcast:
            condition = pt_all([pt_eq(first, other) for other in others])
            result.append(extra_ops._broadcast_assert(first, condition))
        else:
            values = ptb.as_tensor_variable((first, *others))
            is_one = pt_eq(values, one)
            length = pt_abs(pt_max(switch(is_one, -one, values)))
            condition = pt_all(switch(~is_one, pt_eq(values, length), np.array(True)))
            result.append(extra_ops._runtime_broadcast_assert(length, condition))
    return tuple(result)


@contextmanager
def deterministic_broadcast_shapes() -> Iterator[None]:
    """Build PyTensor graphs whose broadcast-shape checks do not depend on memory addresses.

    Replaces :func:`pytensor.tensor.extra_ops.broadcast_shape_iter` (looked up at call time by
    every caller in PyTensor) with :func:`_broadcast_shape_iter_in_input_order` inside the
    block. The graphs compute the same values; only the choice of which of several equal
    lengths is named first becomes reproducible, and with it PyTensor's numba cache key.
    """
    from pytensor.tensor import extra_ops

    original = extra_ops.broadcast_shape_iter
    extra_ops.broadcast_shape_iter = _broadcast_shape_iter_in_input_order
    try:
        yield
    finally:
        extra_ops.broadcast_shape_iter = original


def _guarded(graph_function: Any, kind: str, n_data: int) -> Any:
    """The graph function called inside ``try``/``except``, compiled through PyTensor's cache."""
    from pytensor.link.numba.cache import CACHED_SRC_FUNCTIONS, compile_numba_function_src
    from pytensor.link.numba.dispatch.basic import numba_njit

    arguments = ", ".join(["x", *(f"d{i}" for i in range(n_data))])
    if kind == "logp":
        name = "guarded_logp"
        source = (
            f"def {name}({arguments}):\n"
            "    try:\n"
            f"        value, grad = graph_function({arguments})\n"
            "    except Exception:\n"
            "        return 1, 0.0, x\n"
            "    return 0, value[()], grad\n"
        )
    else:
        name = "guarded_expand"
        source = (
            f"def {name}({arguments}):\n"
            "    try:\n"
            f"        (values,) = graph_function({arguments})\n"
            "    except Exception:\n"
            "        return 1, x\n"
            "    return 0, values\n"
        )
    graph_key = CACHED_SRC_FUNCTIONS.get(graph_function.py_func)
    key = None
    if graph_key is not None:
        key = hashlib.sha256(f"{_CACHE_VERSION}|{graph_key}|{source}".encode()).hexdigest()
    function = compile_numba_function_src(
        source,
        name,
        # __name__: numba rebuilds a cached function's environment by importing its module
        global_env={"__name__": __name__, "graph_function": graph_function},
        cache_key=key,
    )
    return numba_njit(function, cache=key is not None)


#: The C signatures nutpie calls: (dim, x, gradient out, log density out, user data) and
#: (dim, expanded dim, x, values out, user data), returning a status.
_SIGNATURES = {
    "logp": ("uint64", "double*", "double*", "double*", "voidptr"),
    "expand": ("uint64", "uint64", "double*", "double*", "voidptr"),
}


def _callback(
    graph: Any,
    kind: str,
    head: list[str],
    tail: list[str],
    n_dim: int,
    arrays: dict[str, np.ndarray],
) -> Any:
    """A ``cfunc`` (no ``try``) that calls the guarded graph function on the data's addresses.

    ``head`` is the signature line and the dimension check, ``tail`` the call (``{arguments}``
    filled in) and the copying out.
    """
    import numba
    from nutpie.compile_pymc import address_as_void_pointer

    shared = list(graph.get_shared())
    slot = {name: i for i, name in enumerate(arrays)}
    namespace: dict[str, Any] = {
        "numba": numba,
        "np": np,
        "as_pointer": address_as_void_pointer,
        "guarded": _guarded(graph.vm.jit_fn, kind, len(shared)),
    }
    lines = [
        *head,
        "        return -1",
        f"    x = numba.carray(x_, ({n_dim},))",
        f"    addresses = numba.carray(user_data, ({max(len(arrays), 1)},), np.uint64)",
    ]
    for i, variable in enumerate(shared):
        array = arrays[variable.name]
        namespace[f"dtype{i}"] = array.dtype
        shape = "(" + "".join(f"{n}, " for n in array.shape) + ")"
        lines.append(
            f"    d{i} = numba.carray(as_pointer(addresses[{slot[variable.name]}]), {shape}, "
            f"dtype{i})"
        )
    arguments = ", ".join(["x", *(f"d{i}" for i in range(len(shared)))])
    lines += [line.replace("{arguments}", arguments) for line in tail]
    name = f"{kind}_callback"
    exec(compile("\n".join(lines), f"<alliance nutpie {name}>", "exec"), namespace)  # noqa: S102
    types = {
        "uint64": numba.types.uint64,
        "double*": numba.types.CPointer(numba.types.double),
        "voidptr": numba.types.voidptr,
    }
    signature = numba.types.int64(*(types[t] for t in _SIGNATURES[kind]))
    with _final_module_at_level_zero(name):
        return numba.cfunc(signature, error_model="numpy")(namespace[name])


@contextmanager
def _final_module_at_level_zero(library: str) -> Iterator[list[str]]:
    """Compile the code library named ``library`` with LLVM's module passes at level 0.

    Finalizing a numba library links the LLVM modules of every function it calls and runs
    LLVM's module passes (at ``NUMBA_OPT``, 3) over the whole linked module. For a callback
    that is nutpie's graph function and every operation under it, already optimized when
    each was compiled (or loaded from PyTensor's cache): optimizing them again took most of a
    warm compilation (the demo's latent model, site_b after site_a: 9.7-10.1 s with the passes,
    6.5-6.6 s without, same sampling speed). Only this library's module passes run at level 0;
    every function it calls is compiled (or loaded) as before, machine code is still generated
    by numba's target machine at its own level, and the draws are bit-identical (no
    fast-math: LLVM's passes may not change floating-point results; test:
    ``test_same_draws_as_nutpies_own_compilation``). Yields the names of the libraries so
    finalized at level 0 (for the tests).
    """
    from numba.core import codegen, config

    original = codegen.CPUCodeLibrary._optimize_final_module
    skipped: list[str] = []

    def optimize(self: Any) -> None:
        # numba names a library by the function's qualified name
        if self.name.rsplit(".", 1)[-1] != library:
            original(self)
            return
        saved = config.OPT
        config.OPT = 0
        try:
            original(self)
        finally:
            config.OPT = saved
        skipped.append(self.name.rsplit(".", 1)[-1])

    codegen.CPUCodeLibrary._optimize_final_module = optimize
    try:
        yield skipped
    finally:
        codegen.CPUCodeLibrary._optimize_final_module = original


def _addresses(arrays: dict[str, np.ndarray]) -> np.ndarray:
    """The data's addresses in slot order: nutpie passes this array to both callbacks."""
    return np.array([a.ctypes.data for a in arrays.values()] or [0], dtype=np.uint64)


@functools.cache
def _compiled_model_class() -> type:
    from nutpie.compile_pymc import CompiledPyMCModel

    @dataclass(frozen=True)
    class CompiledWithLeanCallbacks(CompiledPyMCModel):
        """nutpie's compiled PyMC model with the callbacks of :func:`compile_for_nutpie`."""

        def with_data(self, **updates: Any) -> Any:
            """The model with other values of its data (same names, dtypes and shapes).

            The shapes are compiled into the callbacks; new values of another shape need a
            new compilation.
            """
            arrays = dict(self.shared_data)
            for name, value in updates.items():
                if name not in arrays:
                    raise KeyError(
                        f"unknown data variable {name!r}; the model has {sorted(arrays)}"
                    )
                new = np.array(value, dtype=arrays[name].dtype, order="C", copy=True)
                if new.shape != arrays[name].shape:
                    raise ValueError(
                        f"data {name!r} must keep the shape {arrays[name].shape} it was compiled "
                        f"with, got {new.shape}"
                    )
                new.flags.writeable = False
                arrays[name] = new
            return dataclasses.replace(self, shared_data=arrays, user_data=_addresses(arrays))

    return CompiledWithLeanCallbacks


def compile_for_nutpie(model: pm.Model) -> Any:
    """Compile ``model`` for :func:`nutpie.sample` as ``nutpie.compile_pymc_model`` does.

    Same initial points (support points jittered, as nutpie's default), same graph functions,
    same draws; the C callbacks are built as the module docstring says. Call it inside
    :func:`deterministic_broadcast_shapes` (and the sampler's numba settings) so that the
    graph functions get reproducible cache keys.

    Parameters
    ----------
    model
        A PyMC model with continuous free variables.

    Returns
    -------
    nutpie.compile_pymc.CompiledPyMCModel
        Ready for :func:`nutpie.sample`; ``with_data`` takes new values of the same shapes.
    """
    from nutpie.compile_pymc import _make_functions, _prepare_dims_and_coords, _wrap_with_lock
    from pymc.initial_point import make_initial_point_fn

    initial_point = _wrap_with_lock(
        make_initial_point_fn(
            model=model,
            default_strategy="support_point",
            jitter_rvs=set(model.free_RVs),
            return_transformed=True,
        )
    )
    n_dim, n_expanded, logp_graph, expand_graph, initial_point_fn, shape_info = _make_functions(
        model,
        mode="NUMBA",
        compute_grad=True,
        join_expanded=True,
        pymc_initial_point_fn=initial_point,
    )
    arrays: dict[str, np.ndarray] = {}
    for variable in [*logp_graph.get_shared(), *expand_graph.get_shared()]:
        if variable.name in arrays:
            continue
        array = np.array(variable.get_value(), order="C", copy=True)
        array.flags.writeable = False
        arrays[variable.name] = array
    addresses = _addresses(arrays)

    logp_callback = _callback(
        logp_graph,
        "logp",
        ["def logp_callback(dim, x_, grad_out, logp_out, user_data):", f"    if dim != {n_dim}:"],
        [
            "    status, value, grad = guarded({arguments})",
            "    if status != 0:",
            "        return 1",
            "    logp_out[0] = value",
            "    finite = True",
            f"    for i in range({n_dim}):",
            "        grad_out[i] = grad[i]",
            "        if not np.isfinite(grad[i]):",
            "            finite = False",
            "    if not finite:",
            "        return 3",
            "    if not np.isfinite(value):",
            "        return 4",
            "    return 0",
        ],
        n_dim,
        arrays,
    )
    expand_callback = _callback(
        expand_graph,
        "expand",
        [
            "def expand_callback(dim, expanded, x_, out, user_data):",
            f"    if dim != {n_dim} or expanded != {n_expanded}:",
        ],
        [
            "    status, values = guarded({arguments})",
            "    if status != 0:",
            "        return -2",
            f"    for i in range({n_expanded}):",
            "        out[i] = values[i]",
            "    return 0",
        ],
        n_dim,
        arrays,
    )

    dims, coords = _prepare_dims_and_coords(model, shape_info)
    return _compiled_model_class()(
        _n_dim=n_dim,
        dims=dims,
        _coords=coords,
        _shapes={name: tuple(shape) for name, _, shape in zip(*shape_info, strict=True)},
        compiled_logp_func=logp_callback,
        compiled_expand_func=expand_callback,
        initial_point_func=initial_point_fn,
        shared_data=arrays,
        user_data=addresses,
        n_expanded=n_expanded,
        shape_info=shape_info,
        logp_func=logp_graph,
        expand_func=expand_graph,
    )
