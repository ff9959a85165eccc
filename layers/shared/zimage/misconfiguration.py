"""A deployment its operator must fix: which upstream failures mean one, and how it is reported.

Every such failure is one error log line and one `Misconfigured` metric, whichever function
meets it; the template's MisconfiguredAlarm watches that metric. Callers get a 503 with a code of
its own (zimage.errors.Misconfigured), never the key or the secret's value.
"""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from zimage import errors
from zimage.upstream.errors import BALANCE_EMPTY_REASON, UpstreamError, UpstreamKeyUnavailable, UpstreamRejected

METRIC = "Misconfigured"

logger = Logger(child=True)
# Powertools' Metrics instances share one set, so this lands in the handler's flush.
metrics = Metrics()


def account_fault(exc: UpstreamError) -> errors.Misconfigured | None:
    """The deployment's own Novita account at fault (its key unreadable or refused, its balance
    empty), as the error its callers get; None when the failure is anything else."""
    if isinstance(exc, UpstreamKeyUnavailable):
        return errors.ModelKeyUnavailable(
            f"the service cannot read its Novita API key ({exc.message}); "
            "the operator must create it or let the functions read and decrypt it"
        )
    if not isinstance(exc, UpstreamRejected):
        return None
    if exc.refuses_key:
        return errors.ModelKeyRefused(
            f"Novita refuses the service's API key ({exc.reason or f'HTTP {exc.status}'}); "
            "the operator must store a valid key for this model"
        )
    if exc.reason == BALANCE_EMPTY_REASON:
        return errors.ModelBalanceEmpty("the service's Novita account has no balance left; the operator must top it up")
    return None


def report_misconfigured(fault: errors.Misconfigured) -> None:
    """Say it where the operator looks: an error log line and the alarmed metric."""
    logger.error("deployment misconfigured", extra={"code": fault.code, "reason": fault.message})
    metrics.add_metric(name=METRIC, unit=MetricUnit.Count, value=1)
