"""samconfig.toml: the environments the README names, each overriding only parameters the
template has, with values the template allows (a misspelt name or a value out of bounds would
fail the deploy only once it reached CloudFormation)."""

from __future__ import annotations

import math
import re
import shlex
import tomllib

import pytest

from local.template import ROOT, load_template

CONFIG = tomllib.loads((ROOT / "samconfig.toml").read_text())
TEMPLATE = load_template()
PARAMETERS = set(TEMPLATE["Parameters"])


@pytest.mark.parametrize(
    ("environment", "stack"), [("default", "zimage-dev"), ("dev", "zimage-dev"), ("prod", "zimage-prod")]
)
def test_each_environment_deploys_its_own_stack_with_known_parameters(environment, stack):
    settings = CONFIG[environment]

    assert settings["global"]["parameters"]["stack_name"] == stack
    overrides = dict(
        pair.split("=", 1) for pair in shlex.split(settings["deploy"]["parameters"]["parameter_overrides"])
    )
    assert set(overrides) <= PARAMETERS
    assert overrides["Stage"] == ("prod" if environment == "prod" else "dev")
    for name, value in overrides.items():  # CloudFormation would refuse a value out of bounds
        spec = TEMPLATE["Parameters"][name]
        if spec["Type"] == "Number":
            assert spec.get("MinValue", -math.inf) <= float(value) <= spec.get("MaxValue", math.inf), name
        if "AllowedValues" in spec:
            assert value in [str(allowed) for allowed in spec["AllowedValues"]], name
        if "AllowedPattern" in spec:
            assert re.fullmatch(spec["AllowedPattern"], value), name
