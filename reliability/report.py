"""`make reliability`: run the fault matrix, the abuse battery and the load run on a local stack,
and write docs/reliability.md from reliability/report.md, whose prose stays as written there and
whose `$placeholders` take this run's tables and figures."""

from __future__ import annotations

import json
from datetime import date
from string import Template

from local.stack import DEV_API_KEY, QUICK_DEADLINE_SECONDS, QUICK_EMULATOR, QUICK_PARAMETERS, LocalStack
from local.template import ROOT
from reliability.event_burst import burst_problems, run_event_burst
from reliability.scenarios import (
    DEADLINE_MARGIN_SECONDS,
    OTHER_KEY,
    SCENARIOS,
    AbuseResult,
    Outcome,
    run_abuse,
    run_load,
    run_scenario,
)
from zimage.clock import epoch_seconds

TEMPLATE = ROOT / "reliability" / "report.md"
REPORT = ROOT / "docs" / "reliability.md"


def start_stack() -> LocalStack:
    return LocalStack(
        api_port=0,
        api_keys={DEV_API_KEY: "key-one", OTHER_KEY: "key-other"},
        parameters={**QUICK_PARAMETERS, "LogLevel": "ERROR"},
        emulator_settings=QUICK_EMULATOR,
    ).start()


def write_report() -> int:
    stack = start_stack()
    try:
        outcomes = [run_scenario(stack, scenario) for scenario in SCENARIOS]
        abuse, left = run_abuse(stack)
        load = run_load(stack)
        burst = run_event_burst(stack)
    finally:
        stack.stop()
    REPORT.write_text(render(outcomes, abuse, left, load, burst))
    failures = [o for o in outcomes if o.problems()] + [a for a in abuse if not 400 <= a.status < 500]
    print(f"wrote {REPORT}: {len(outcomes)} faults, {len(abuse)} hostile requests, {load['submitted']} concurrent jobs")
    for outcome in failures:
        print("  unexpected:", outcome)
    load_broken = load["lost"] or load["accepted"] < load["submitted"] or load["failed"]
    for problem in burst_problems(burst):
        print("  burst of requested events:", problem)
    broken = failures or load_broken or burst_problems(burst) or left["upstream_calls"] or left["jobs_left"]
    return 1 if broken else 0


def render(outcomes: list[Outcome], abuse: list[AbuseResult], left: dict, load: dict, burst: dict) -> str:
    problems = burst_problems(burst)
    return Template(TEMPLATE.read_text()).substitute(
        date=date.today().isoformat(),
        deadline=QUICK_DEADLINE_SECONDS,
        execution_timeout=QUICK_PARAMETERS["ExecutionTimeoutSeconds"],
        poll_turn=QUICK_PARAMETERS["PollTurnSeconds"],
        max_polls=QUICK_PARAMETERS["MaxPolls"],
        read_timeout=QUICK_PARAMETERS["UpstreamReadTimeoutSeconds"],
        errors_in_a_row=QUICK_PARAMETERS["MaxConsecutiveUpstreamErrors"],
        deadline_margin=f"{DEADLINE_MARGIN_SECONDS:g}",
        fault_table=fault_table(outcomes),
        abuse_count=len(abuse),
        upstream_calls=left["upstream_calls"],
        jobs_left=left["jobs_left"],
        healthy_after="made an image right after" if left["healthy_after"] else "was NOT healthy after",
        abuse_table=table(
            ("request", "status", "code", "field"),
            [(a.name, a.status, a.code, a.error.get("field") or "-") for a in abuse],
        ),
        load_submitted=load["submitted"],
        load_clients=load["clients"],
        peak_in_flight=load["peak_in_flight"],
        load_table=table(("measure", "value"), [(name, json.dumps(value)) for name, value in load.items()]),
        burst_requests=burst["requests"],
        burst_valid=burst["valid_requests"],
        burst_repeated=burst["repeated_puts"],
        burst_events=burst["events_put"],
        burst_concurrency=QUICK_PARAMETERS["SubmitWorkerMaxConcurrency"],
        burst_retry_base=QUICK_PARAMETERS["RequestRetryBaseSeconds"],
        burst_verdict="both held." if not problems else "**it did not: " + "; ".join(problems) + ".**",
        burst_table=table(("measure", "value"), [(name, json.dumps(value)) for name, value in burst.items()]),
    )


def fault_table(outcomes: list[Outcome]) -> str:
    rows = []
    for o in outcomes:
        calls = f"{o.calls.get('submit', 0)}/{o.calls.get('result', 0)}/{o.calls.get('image', 0)}"
        check = "" if not o.problems() else " **unexpected: " + "; ".join(o.problems()) + "**"
        late = "-"
        if o.record is not None and o.record.completed_at:
            late = f"{epoch_seconds(o.record.completed_at) - epoch_seconds(o.record.deadline_at):+.1f}"
        rows.append(
            (
                o.scenario.name,
                o.scenario.decision,
                o.scenario.why,
                o.http_status,
                o.status or "-",
                o.code or "-",
                o.message.replace("|", "\\|") or "-",
                calls,
                o.calls.get("refused", 0),
                late,
                f"{o.seconds:.1f}{check}",
            )
        )
    header = (
        "fault",
        "decision",
        "why",
        "answer",
        "job",
        "error code",
        "error message",
        "upstream calls (submit/poll/image)",
        "connections refused",
        "end - deadline (s)",
        "s",
    )
    return table(header, rows)


def table(header: tuple[str, ...], rows: list[tuple]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows])
