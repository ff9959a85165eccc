"""docs/performance.md: bench/report.md, whose prose stays as written there, with the figures of
bench/results.json in its `$placeholders`."""

from __future__ import annotations

from string import Template

from bench.run import COLD_IMPORT_RUNS, DELIVERY_JOBS, LOAD_RUN_SECONDS, PRICES
from local.template import ROOT

TEMPLATE = ROOT / "bench" / "report.md"
REPORT = ROOT / "docs" / "performance.md"
COLD_IMPORT_TARGET = 1.3


def render(r: dict) -> str:
    o, t, c = r["overhead_s"], r["transitions_per_job"], r["cost_per_image_usd"]
    floor, api_floor = r["cold_import_floor"], r["cold_import_api_floor"]
    counted = r.get("cold_import_instruction_ratio") or {}
    d, load = r["image_delivery_1024"], r["concurrent_jobs"]
    orchestration, orchestration_baseline = c["orchestration_only"]["service"], c["orchestration_only"]["baseline"]
    fixed = c["service"] - orchestration
    express_second = PRICES["sfn_express_gb_second"] * 0.0625
    mean_task = (r["generation_seconds"]["min"] + r["generation_seconds"]["max"]) / 2  # uniform draws
    cost_floor = c["least_possible_express"]  # computed with the same mean task
    gb_seconds = r["lambda_gb_seconds_per_job"]
    summary = [
        ("overhead p50 (s)", o["p50"], o["baseline_p50"], "<= 0.3"),
        ("overhead p95 (s)", o["p95"], o["baseline_p95"], "<= 1.0"),
        ("state transitions per job (mean)", t["mean"], t["baseline_mean"], ""),
        ("state transitions for a job of 3 s", t["job_of_3_s"], "-", ""),
        (f"AWS cost per image (USD), {c['service_workflow']}", c["service"], c["baseline"], "<= 1/10 of the baseline"),
        ("AWS cost per image (USD), the same runs as STANDARD", c["service_as_standard"], c["baseline"], ""),
        ("orchestration cost per image (USD): workflow and Lambda", orchestration, orchestration_baseline, ""),
        ("Lambda GB-s per job", gb_seconds["service"], gb_seconds["baseline"], ""),
    ]
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
        generation_min=f"{r['generation_seconds']['min']:.0f}",
        generation_max=f"{r['generation_seconds']['max']:.0f}",
        jobs_per_policy=r["jobs"] // 2,
        arrival_interval=r["arrival_interval_s"],
        summary_table=table(
            ("measure", "service", "baseline", "service/baseline", "target"),
            [(name, a, b, ratio(a, b), target) for name, a, b, target in summary],
        ),
        prices_as_of=c["prices_as_of"],
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
        overhead_p50=o["p50"],
        overhead_baseline_p50=o["baseline_p50"],
        transitions_mean=t["mean"],
        transitions_baseline_mean=t["baseline_mean"],
        gb_seconds_service=gb_seconds["service"],
        gb_seconds_baseline=gb_seconds["baseline"],
        cost_service=c["service"],
        cost_as_standard=c["service_as_standard"],
        cost_baseline=c["baseline"],
        orchestration_service=orchestration,
        orchestration_baseline=orchestration_baseline,
        orchestration_ratio=ratio(orchestration, orchestration_baseline),
        fixed_cost=f"{fixed:.3g}",
        fixed_share=f"{fixed / c['baseline']:.0%}",
        headroom=f"{c['baseline'] / 10 - fixed:.2g}",
        express_second=f"{express_second:.2g}",
        express_mean_task=f"{express_second * mean_task:.2g}",
        mean_task=f"{mean_task:.1f}",
        cost_floor=f"{cost_floor:.3g}",
        cost_floor_ratio=ratio(cost_floor, c["baseline"]),
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
