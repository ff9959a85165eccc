"""docs/performance.md: bench/report.md, whose prose stays as written there, with the figures of
bench/results.json in its `$placeholders`."""

from __future__ import annotations

from string import Template

from bench.run import (
    COLD_IMPORT_RUNS,
    DELIVERY_JOBS,
    LARGEST_IMAGE_SIZE,
    LOAD_RUN_SECONDS,
    PRICES,
    floor_fixed_cost_per_image,
)
from local.template import ROOT

TEMPLATE = ROOT / "bench" / "report.md"
REPORT = ROOT / "docs" / "performance.md"
COLD_IMPORT_TARGET = 1.3


MODE_NAMES = {"truthful": "truthful eta", "none": "no eta", "misleading": "misleading eta"}
# The targets per mode: overhead p50 and p95 (s), upstream polls per job (mean), and the
# cost per image as the CLI follows it over the least possible Express bill.
TARGETS = {
    "truthful": {"p50": 0.3, "p95": 1.0, "polls": 8, "cost": 1.2},
    "none": {"p50": 0.3, "p95": 1.0, "polls": 8, "cost": 1.2},
    "misleading": {"p50": 0.5, "p95": 1.5, "polls": 10, "cost": 1.2},
}
LAMBDA_MEMORY_GB = 0.25  # the API's
POLL_MEMORY_GB = 0.125  # the poll function's


def render(r: dict) -> str:
    modes, baseline = r["modes"], r["baseline"]
    floor, api_floor = r["cold_import_floor"], r["cold_import_api_floor"]
    counted = r.get("cold_import_instruction_ratio") or {}
    d, load = r["image_delivery_1024"], r["concurrent_jobs"]
    store_peak = r["poll_store_peak_memory"]
    none = modes["none"]
    tasks = r["task_seconds"]
    budget = none["cost_per_image_usd"]["least_possible_express"] * 0.2
    lambda_second = LAMBDA_MEMORY_GB * PRICES["lambda_gb_second_arm"]
    cold_start = [
        (name, value, f"{low}-{high}", counted.get(name, "-"), r["package_mb"].get(name, "-"))
        for name, value in r["cold_import_ratio"].items()
        for low, high in [r["cold_import_ratio_quartiles"][name]]
    ]
    cold_start += [
        ("*floor: boto3, Powertools' Logger, Metrics, Tracer*", floor["seconds"], "", floor["instructions"], "-"),
        (
            "*API floor: that, the REST event handler with validation, Idempotency*",
            api_floor["seconds"],
            "",
            api_floor["instructions"],
            "-",
        ),
        ("shared layer (zimage, imagesize, urllib3, with bytecode)", "-", "", "", r["package_mb"]["shared_layer"]),
    ]
    return Template(TEMPLATE.read_text()).substitute(
        measured_on=r["measured_on"],
        queued=tasks["queued"],
        typical_min=tasks["typical"][0],
        typical_max=tasks["typical"][1],
        outlier_percent=f"{tasks['outlier_share']:.0%}",
        outlier_min=tasks["outliers"][0],
        outlier_max=tasks["outliers"][1],
        jobs_per_mode=r["jobs_per_mode"],
        warm_up_jobs=r["warm_up_jobs_per_mode"],
        arrival_interval=r["arrival_interval_s"],
        targets_table=targets_table(modes),
        baseline_table=baseline_table(modes, baseline, r["service_workflow"]),
        following_table=following_table(modes),
        prices_as_of=r["prices_as_of"],
        floor_fixed=f"{floor_fixed_cost_per_image():.3g}",
        budget=f"{budget:.2g}",
        express_second=f"{PRICES['sfn_express_gb_second'] * 0.0625:.2g}",
        lambda_request=f"{PRICES['lambda_request']:.2g}",
        dynamodb_write=f"{PRICES['dynamodb_write']:.3g}",
        lambda_second=f"{lambda_second:.2g}",
        poll_lambda_second=f"{POLL_MEMORY_GB * PRICES['lambda_gb_second_arm']:.2g}",
        budget_poll_seconds=f"{budget / (POLL_MEMORY_GB * PRICES['lambda_gb_second_arm']):.1f}",
        s3_get=f"{PRICES['s3_get']:.2g}",
        apigw_request=f"{PRICES['apigw_rest_request']:.2g}",
        read_share=f"{PRICES['apigw_rest_request'] / budget:.0%}",
        none_p50=none["overhead_s"]["p50"],
        none_p95=none["overhead_s"]["p95"],
        none_polls=none["upstream_polls_per_job"]["mean"],
        baseline_p50=baseline["overhead_s"]["p50"],
        baseline_p95=baseline["overhead_s"]["p95"],
        none_cost=none["cost_per_image_usd"]["as_the_cli_follows"],
        none_standard=none["cost_per_image_usd"]["same_runs_as_standard"],
        baseline_cost=baseline["cost_per_image_usd"],
        cli_none=f"{none['following_usd_per_job']['cli']:.2g}",
        cli_none_reads=none["cli"]["reads_per_job"],
        cli_none_looks=none["cli"].get("looks_per_job", 0),
        old_cli_none=f"{none['following_usd_per_job']['get_every_half_second']:.2g}",
        old_wait_none=f"{none['following_usd_per_job']['prefer_wait_rereading']:.2g}",
        cli_none_p50=none["cli"]["sees_it_p50_s"],
        cli_none_p95=none["cli"]["sees_it_p95_s"],
        webhook=f"{none['following_usd_per_job']['webhook']:.2g}",
        none_ratio=f"{none['cost_per_image_usd']['ratio_to_least']:.2f}x",
        none_gb_seconds=none["lambda_gb_seconds_per_job"],
        none_poll_lambda=f"{none['lambda_gb_seconds_per_job'] * PRICES['lambda_gb_second_arm']:.2g}",
        cli_none_held=none["cli"]["held_seconds_per_job"],
        cli_none_extra=f"{none['following_usd_per_job']['cli'] - PRICES['apigw_rest_request']:.2g}",
        cold_start_table=table(
            (
                "function",
                "cold import / boto3 import",
                "middle half of the runs",
                "instructions / boto3's",
                "package (MB, zipped)",
            ),
            cold_start,
        ),
        cold_import_runs=COLD_IMPORT_RUNS,
        compile_layer_ms=r["compile_ms"]["shared_layer_sources"],
        compile_function_ms=r["compile_ms"]["largest_function_own_files"],
        python=r["python"],
        floor_seconds=floor["seconds"],
        floor_instructions=floor["instructions"],
        cold_start_verdict=cold_start_verdict(r),
        api_floor_seconds=api_floor["seconds"],
        api_floor_instructions=api_floor["instructions"],
        delivery_jobs=2 * DELIVERY_JOBS,
        url_p50=d["url"]["overhead_p50_s"],
        url_p95=d["url"]["overhead_p95_s"],
        base64_p50=d["base64"]["overhead_p50_s"],
        base64_p95=d["base64"]["overhead_p95_s"],
        url_gb_seconds=d["url"]["lambda_gb_seconds_per_job"],
        store_import_mb=store_peak["after_import_mb"],
        store_peak_mb=store_peak["peak_mb"],
        store_image_mb=round(store_peak["image_bytes"] / 2**20, 1),
        store_function_mb=store_peak["function_memory_mb"],
        largest_size=LARGEST_IMAGE_SIZE.replace("*", " x "),
        store_jobs=store_peak["jobs"],
        base64_gb_seconds=d["base64"]["lambda_gb_seconds_per_job"],
        load_submitted=load["submitted"],
        load_clients=load["clients"],
        load_task_seconds=f"{LOAD_RUN_SECONDS:.0f}",
        load_peak=load["peak_in_flight"],
        load_succeeded=load["succeeded"],
        load_failed=load["failed"],
        load_lost=load["lost"],
        load_refused=load["refused"] or "none",
        load_submit_p50=load["submit_latency_s"]["p50"],
        load_submit_max=load["submit_latency_s"]["max"],
    )


def targets_table(modes: dict) -> str:
    """The issue's table: each mode's figures against its targets."""

    def row(name: str, cell, target) -> tuple:
        return (name, *(cell(modes[mode]) for mode in MODE_NAMES), " / ".join(target(TARGETS[m]) for m in MODE_NAMES))

    rows = [
        row("overhead p50 (s)", lambda m: m["overhead_s"]["p50"], lambda t: f"<= {t['p50']}"),
        row("overhead p95 (s)", lambda m: m["overhead_s"]["p95"], lambda t: f"<= {t['p95']}"),
        row(
            "upstream polls per job, mean (max)",
            lambda m: f"{m['upstream_polls_per_job']['mean']} ({m['upstream_polls_per_job']['max']})",
            lambda t: f"<= {t['polls']}",
        ),
        row(
            "cost per image as the CLI follows it (USD)",
            lambda m: m["cost_per_image_usd"]["as_the_cli_follows"],
            lambda t: "",
        ),
        row(
            "the least possible Express bill (USD)",
            lambda m: m["cost_per_image_usd"]["least_possible_express"],
            lambda t: "",
        ),
        row(
            "cost over the least possible",
            lambda m: f"{m['cost_per_image_usd']['ratio_to_least']:.2f}x",
            lambda t: f"<= {t['cost']}x",
        ),
        row(
            "the CLI sees it after the record, p50 / p95 (s)",
            lambda m: f"{m['cli']['sees_it_p50_s']} / {m['cli']['sees_it_p95_s']}",
            lambda t: "",
        ),
    ]
    targets = [" / ".join(MODE_NAMES[m] for m in MODE_NAMES)]
    return table(("measure", *MODE_NAMES.values(), f"target ({targets[0]})"), [_trimmed(r) for r in rows])


def _trimmed(row: tuple) -> tuple:
    """A target cell with nothing in it says nothing."""
    return (*row[:-1], "" if not row[-1].strip(" /") else row[-1])


def baseline_table(modes: dict, baseline: dict, workflow: str) -> str:
    """Each mode beside the fixed 5 s Wait of the Job Poller sample."""
    b = baseline
    rows = [
        ("overhead p50 (s)", *(modes[m]["overhead_s"]["p50"] for m in MODE_NAMES), b["overhead_s"]["p50"]),
        ("overhead p95 (s)", *(modes[m]["overhead_s"]["p95"] for m in MODE_NAMES), b["overhead_s"]["p95"]),
        (
            "upstream polls per job (mean)",
            *(modes[m]["upstream_polls_per_job"]["mean"] for m in MODE_NAMES),
            b["upstream_polls_per_job"]["mean"],
        ),
        (
            "state transitions per job (mean)",
            *(modes[m]["transitions_per_job"] for m in MODE_NAMES),
            b["transitions_per_job"],
        ),
        (
            "Lambda GB-s per job",
            *(modes[m]["lambda_gb_seconds_per_job"] for m in MODE_NAMES),
            b["lambda_gb_seconds_per_job"],
        ),
        (
            f"AWS cost per image (USD), service {workflow}, baseline STANDARD",
            *(modes[m]["cost_per_image_usd"]["as_the_cli_follows"] for m in MODE_NAMES),
            b["cost_per_image_usd"],
        ),
        (
            "the same runs as STANDARD (USD)",
            *(modes[m]["cost_per_image_usd"]["same_runs_as_standard"] for m in MODE_NAMES),
            b["cost_per_image_usd"],
        ),
        (
            "orchestration per image (USD): workflow and its Lambda functions",
            *(modes[m]["cost_per_image_usd"]["orchestration"] for m in MODE_NAMES),
            "-",
        ),
    ]
    return table(("measure", *MODE_NAMES.values(), "baseline"), rows)


FOLLOWING = {
    "get_every_half_second": "GET every 0.5 s (the CLI before)",
    "prefer_wait_rereading": "`Prefer: wait` from the submit, re-reading 4x a second (before)",
    "prefer_wait_lean": "`Prefer: wait` from the submit, reading once a second to the expected end",
    "cli": "the CLI now: sleep to the eta, watch `links.image` on S3, then one read",
    "webhook": "webhook: the rule's SQS message and one call of the sender",
    "eventbridge": "an EventBridge rule of your own",
}


def following_table(modes: dict) -> str:
    """USD per job for each way of following it, and what the CLI's way took."""
    rows = [
        (label, *(f"{modes[m]['following_usd_per_job'][key]:.2g}" for m in MODE_NAMES))
        for key, label in FOLLOWING.items()
    ]
    rows += [
        ("the CLI's looks at `links.image` per job", *(modes[m]["cli"].get("looks_per_job", 0) for m in MODE_NAMES)),
        ("the CLI's reads per job", *(modes[m]["cli"]["reads_per_job"] for m in MODE_NAMES)),
        ("the CLI's reads held, seconds per job", *(modes[m]["cli"]["held_seconds_per_job"] for m in MODE_NAMES)),
    ]
    return table(("way of following (USD per job)", *MODE_NAMES.values()), rows)


def ratio(a: float, b: float | str) -> str:
    return f"{a / b:.2f}x" if isinstance(b, int | float) and b else "-"


def cold_start_verdict(r: dict) -> str:
    """Which functions meet the cold-import target, timed and counted."""

    def listed(ratios: dict, how: str) -> str:
        under = [name for name, value in ratios.items() if value <= COLD_IMPORT_TARGET]
        over = [name for name in ratios if name not in under]
        said = f"{how} {', '.join(under) or 'none'} {'is' if len(under) == 1 else 'are'} under {COLD_IMPORT_TARGET}"
        return said + (f", {', '.join(over)} {'is' if len(over) == 1 else 'are'} not" if over else "")

    verdicts = [listed(r["cold_import_ratio"], "Timed,")]
    if r.get("cold_import_instruction_ratio"):
        verdicts.append(listed(r["cold_import_instruction_ratio"], "by instruction count"))
    return "; ".join(verdicts) + "."


def table(header: tuple[str, ...], rows: list[tuple]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows])
