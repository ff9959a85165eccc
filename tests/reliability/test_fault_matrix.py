"""Every fault of local/reliability.py through the whole pipeline: the job's end, its error,
how often the upstream was called, nothing stored half, nothing left running."""

from __future__ import annotations

import pytest

from local.reliability import SCENARIOS, run_scenario


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda scenario: scenario.name)
def test_the_service_survives(stack, emulator, scenario):
    outcome = run_scenario(stack, scenario)

    assert outcome.problems() == [], outcome
