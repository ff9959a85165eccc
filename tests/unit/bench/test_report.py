"""docs/performance.md is what `make bench` renders from bench/results.json, so the page and the
raw figures never disagree."""

import json

from bench.report import REPORT, render
from bench.run import RESULTS, ROOT


def test_the_performance_page_is_rendered_from_the_committed_results():
    results = json.loads(RESULTS.read_text())

    assert REPORT.read_text() == render(results)


def test_the_results_hold_every_figure_the_targets_are_judged_on():
    results = json.loads(RESULTS.read_text())

    assert set(results["modes"]) == {"truthful", "none", "misleading"}
    for mode in results["modes"].values():
        assert set(mode["overhead_s"]) == {"p50", "p95"}
        assert set(mode["upstream_polls_per_job"]) >= {"mean", "max"}
        assert set(mode["cost_per_image_usd"]) >= {"as_the_cli_follows", "least_possible_express", "ratio_to_least"}
        assert set(mode["following_usd_per_job"]) >= {"get_every_half_second", "prefer_wait_rereading", "cli"}
    assert set(results["baseline"]) >= {"overhead_s", "cost_per_image_usd", "upstream_polls_per_job"}
    functions = {folder.parent.name for folder in (ROOT / "functions").glob("*/app.py")}  # every function
    assert {"api", "poll", "submit_worker"} <= functions
    assert set(results["cold_import_ratio"]) == functions
    assert set(results["package_mb"]) >= functions
    assert set(results["concurrent_jobs"]) >= {"submitted", "succeeded", "lost"}
