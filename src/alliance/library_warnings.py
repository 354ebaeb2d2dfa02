"""Warnings of the libraries the pipeline calls, in the project's words.

Steps that call statsmodels or factor_analyzer record the warnings raised during a fit as
``"Category: message"`` (for example ``"ConvergenceWarning: Maximum Likelihood optimization
failed to converge. Check mle_retvals"``). Such a text names the library's internals, not
what went wrong for the reader: :func:`plain_warning` says what did not converge and what it
means for the number reported beside it. A warning that is not in :data:`KNOWN` is kept
verbatim and marked as not translated; a text that is not a library warning (the project's
own wording) is returned as it is.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["KNOWN", "plain_warning", "plain_warnings"]

#: A library warning: ``"SomeWarning: message"``.
_LIBRARY = re.compile(r"^(?P<category>[A-Za-z]*Warning):\s*(?P<message>.*)$", re.DOTALL)

#: (pattern of the message, text when the fit converged in the end, text when it did not or
#: when that is not known). ``{fit}`` is the fit named by the caller, ``{value}`` the number
#: reported beside it.
KNOWN: tuple[tuple[re.Pattern[str], str, str], ...] = (
    (
        re.compile(r"Maximum Likelihood optimization failed to converge"),
        "{fit}: the first optimizer stopped before converging and another one was tried, "
        "which converged; {value} come from the converged fit",
        "{fit} did not converge (the optimizer stopped before reaching the maximum of the "
        "likelihood): {value} are not estimates to report",
    ),
    (
        re.compile(r"Retrying MixedLM optimization with"),
        "{fit}: the first optimizer stopped before converging and another one was tried, "
        "which converged; {value} come from the converged fit",
        "{fit}: the first optimizer stopped before converging and another one was tried",
    ),
    (
        re.compile(r"MixedLM optimization failed|Gradient optimization failed"),
        "{fit}: one optimizer stopped before converging; {value} come from the fit that converged",
        "{fit} did not converge (no optimizer reached the maximum of the likelihood): "
        "{value} are not estimates to report",
    ),
    (
        re.compile(r"MLE may be on the boundary of the parameter space"),
        "{fit}: a variance component was estimated at or near zero (the boundary of the "
        "parameter space); its share in {value} is about 0 and its standard error is not "
        "reliable",
        "{fit}: a variance component was estimated at or near zero (the boundary of the "
        "parameter space); its share in {value} is about 0 and its standard error is not "
        "reliable",
    ),
    (
        re.compile(r"random effects covariance matrix is singular"),
        "{fit}: a variance component is zero or the random effects are collinear; {value} "
        "hold a share of about 0 and the standard errors are not reliable",
        "{fit}: a variance component is zero or the random effects are collinear; {value} "
        "hold a share of about 0 and the standard errors are not reliable",
    ),
    (
        re.compile(r"Hessian matrix at the estimated parameter values is not positive definite"),
        "{fit}: the likelihood is not curved at the estimate in every direction (Hessian not "
        "positive definite), so it may not be a maximum; standard errors are not available "
        "and {value} need caution",
        "{fit}: the likelihood is not curved at the estimate in every direction (Hessian not "
        "positive definite), so it may not be a maximum; standard errors are not available "
        "and {value} need caution",
    ),
    (
        re.compile(r"^Failed to converge: (?P<message>.*)"),
        "{fit} did not converge ({message}): {value} come from the last iteration, not from "
        "a solution",
        "{fit} did not converge ({message}): {value} come from the last iteration, not from "
        "a solution",
    ),
)


def plain_warning(
    text: str,
    fit: str = "The fit",
    value: str = "the estimates",
    converged: bool | None = None,
) -> str:
    """One warning in the project's words.

    Parameters
    ----------
    text
        The warning as recorded (``"ConvergenceWarning: ..."`` for a library warning).
    fit
        What was fitted, as the subject of the sentence (``"The REML variance model"``).
    value
        The numbers reported beside the warning (``"the variance shares"``).
    converged
        Whether the fit converged in the end (None when not known): a library warns about
        a first optimizer that failed even when a second one converged.

    Returns
    -------
    str
        The translated statement; an unknown library warning verbatim, marked
        ``"library warning (not translated): ..."``; any other text unchanged.

    Examples
    --------
    >>> plain_warning("UserWarning: Failed to converge: ABNORMAL", "The EFA", "loadings")[:35]
    'The EFA did not converge (ABNORMAL)'
    """
    match = _LIBRARY.match(text.strip())
    if match is None:
        return text
    message = match["message"].strip()
    for pattern, done, failed in KNOWN:
        found = pattern.search(message)
        if found is not None:
            template = done if converged else failed
            return template.format(fit=fit, value=value, **found.groupdict())
    return f"library warning (not translated): {text.strip()}"


def plain_warnings(
    texts: Iterable[str],
    fit: str = "The fit",
    value: str = "the estimates",
    converged: bool | None = None,
) -> list[str]:
    """:func:`plain_warning` of each text, each statement once, in their first order."""
    return list(dict.fromkeys(plain_warning(t, fit, value, converged) for t in texts))
