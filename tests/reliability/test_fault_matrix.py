"""Every fault of reliability/scenarios.py through the whole pipeline: the job's end, its error,
how often the upstream was called, nothing stored half, nothing left running. The checks
themselves are tested first, without a stack, on outcomes that break them."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from reliability.scenarios import DEADLINE_MARGIN_SECONDS, SCENARIOS, Outcome, run_scenario
from zimage.clock import epoch_seconds, iso
from zimage.jobs.model import Job, StoredImage

PLAIN = next(s for s in SCENARIOS if s.name == "image_url_ttl as a string")
REFUSED = next(s for s in SCENARIOS if s.name == "connection refused on submit, persisting")
IMAGE = StoredImage(
    bucket="b",
    key="images/img_1",
    content_type="image/jpeg",
    width=512,
    height=512,
    bytes=1000,
    sha256="ab" * 32,
)


def _succeeded(**changes: object) -> Outcome:
    """An outcome of the plain scenario that passes every check; each test breaks one thing."""
    job = Job(
        job_id="img_1",
        owner="key-one",
        status="succeeded",
        prompt="p",
        size="512*512",
        seed=1,
        created_at="2026-01-01T00:00:00.000Z",
        updated_at="2026-01-01T00:00:01.000Z",
        completed_at="2026-01-01T00:00:01.000Z",
        deadline_at="2026-01-01T00:00:08.000Z",
        expires_at=0,
        image=IMAGE,
    )
    facts = {"sha256": IMAGE.sha256, "bytes": IMAGE.bytes, "content_type": IMAGE.content_type}
    outcome = Outcome(
        PLAIN,
        202,
        job_id="img_1",
        status="succeeded",
        calls={"submit": 1, "result": 3, "image": 1, "refused": 0},
        record=job,
        view_image=dict(facts),
        stored=dict(facts),
        objects=1,
        events=[
            {
                "detail-type": "Image Generation Succeeded",
                "detail": {"id": "img_1", "key": IMAGE.key, "image": {"sha256": IMAGE.sha256}},
            }
        ],
    )
    return replace(outcome, **changes)


def test_every_scenario_that_does_not_succeed_names_its_error_code_and_message():
    unnamed = [s.name for s in SCENARIOS if not s.succeeds and not (s.code and s.message)]

    assert unnamed == []


def test_the_checks_pass_an_outcome_that_is_as_expected():
    assert _succeeded().problems() == []


@pytest.mark.parametrize(
    ("changes", "complaint"),
    [
        ({"calls": {"submit": 1, "result": 40, "image": 1}}, "40 result calls"),
        ({"calls": {"submit": 1, "result": 3, "image": 9}}, "9 image calls"),
        ({"calls": {"submit": 1, "result": 3, "image": 1, "refused": 2}}, "2 refused calls"),
        ({"events": []}, "completion events []"),
        ({"stored": {"sha256": "cd" * 32, "bytes": 1000, "content_type": "image/jpeg"}}, "is not the recorded"),
        ({"stored": {"sha256": "ab" * 32, "bytes": 1000, "content_type": "image/png"}}, "is not the recorded"),
        ({"objects": 2}, "2 stored objects"),
        ({"stray_objects": ["images/img_0"]}, "belong to no job"),
        ({"message": "the image model failed the task"}, "expected none"),
    ],
)
def test_the_checks_catch(changes, complaint):
    problems = _succeeded(**changes).problems()

    assert any(complaint in problem for problem in problems), problems


def test_the_checks_catch_a_job_that_ended_past_its_deadline():
    record = _succeeded().record
    past = datetime.fromtimestamp(epoch_seconds(record.deadline_at) + DEADLINE_MARGIN_SECONDS + 0.5, UTC)

    problems = _succeeded(record=record.with_changes(completed_at=iso(past))).problems()

    assert any("after its deadline" in problem for problem in problems), problems


def test_the_checks_catch_a_refused_submit_that_left_a_job_behind():
    outcome = Outcome(
        REFUSED,
        503,
        code="upstream_unavailable",
        message="the image model is unavailable; retry later",
        calls={"refused": 3},
        caller_jobs=["img_2"],
    )

    assert outcome.problems() == ["the refused submit left job records behind: ['img_2']"]


def test_the_checks_catch_an_aws_fault_that_never_went_off():
    s3_fault = next(s for s in SCENARIOS if s.name == "S3 write fails once")
    outcome = _succeeded(scenario=s3_fault, calls={"submit": 1, "result": 3, "image": 2}, faults_fired=0)

    assert any("went off 0 times" in problem for problem in outcome.problems())


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda scenario: scenario.name)
def test_the_service_survives(stack, emulator, scenario):
    outcome = run_scenario(stack, scenario)

    assert outcome.problems() == [], outcome
