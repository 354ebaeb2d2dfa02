"""Library warnings in the project's words (statsmodels MixedLM, factor_analyzer)."""

from __future__ import annotations

import pytest

from alliance.library_warnings import plain_warning, plain_warnings

MLE = "ConvergenceWarning: Maximum Likelihood optimization failed to converge. Check mle_retvals"


def test_what_did_not_converge_depends_on_the_final_fit() -> None:
    retried = plain_warning(MLE, "The REML model", "the shares", converged=True)
    assert retried == (
        "The REML model: the first optimizer stopped before converging and another one was "
        "tried, which converged; the shares come from the converged fit"
    )
    failed = plain_warning(MLE, "The REML model", "the shares", converged=False)
    assert failed.startswith("The REML model did not converge")
    assert failed.endswith("the shares are not estimates to report")
    assert plain_warning(MLE, converged=None) == plain_warning(MLE, converged=False)


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        ("ConvergenceWarning: Retrying MixedLM optimization with lbfgs", "another one was tried"),
        ("ConvergenceWarning: Gradient optimization failed, |grad| = 2.79", "did not converge"),
        ("ConvergenceWarning: The MLE may be on the boundary of the parameter space.", "near zero"),
        ("SingularMatrixWarning: The random effects covariance matrix is singular.", "zero"),
        (
            "ConvergenceWarning: The Hessian matrix at the estimated parameter values is not "
            "positive definite.",
            "may not be a maximum",
        ),
        ("UserWarning: Failed to converge: ABNORMAL", "did not converge (ABNORMAL)"),
    ],
)
def test_known_warnings_are_translated(raw: str, words: str) -> None:
    text = plain_warning(raw, "The fit", "the numbers")
    assert words in text and "Warning" not in text


def test_unknown_library_warnings_are_kept_and_marked() -> None:
    raw = "RuntimeWarning: invalid value encountered in sqrt"
    assert plain_warning(raw) == f"library warning (not translated): {raw}"


def test_project_texts_pass_unchanged_and_duplicates_merge() -> None:
    own = "3 factors were extracted where parallel analysis suggests 1"
    assert plain_warning(own) == own
    retry = "ConvergenceWarning: Retrying MixedLM optimization with lbfgs"
    assert len(plain_warnings([MLE, retry], converged=True)) == 1  # one statement, once
