"""docs/performance.md is what `make bench` renders from bench/results.json, so the page and the
raw figures never disagree."""

import json

from bench.report import REPORT, render
from bench.run import RESULTS


def test_the_performance_page_is_rendered_from_the_committed_results():
    results = json.loads(RESULTS.read_text())

    assert REPORT.read_text() == render(results)


def test_the_results_hold_every_figure_the_targets_are_judged_on():
    results = json.loads(RESULTS.read_text())

    assert set(results["overhead_s"]) >= {"p50", "p95", "baseline_p50", "baseline_p95"}
    assert set(results["transitions_per_job"]) >= {"mean", "baseline_mean"}
    assert set(results["cost_per_image_usd"]) >= {"service", "baseline", "prices_as_of"}
    functions = {"api", "poll", "record_failure", "sweeper", "webhook_sender"}
    assert set(results["cold_import_ratio"]) == functions
    assert set(results["package_mb"]) >= functions
    assert set(results["concurrent_jobs"]) >= {"submitted", "succeeded", "lost"}
