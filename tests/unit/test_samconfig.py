"""samconfig.toml: the environments the README names, each overriding only parameters the
template has (a misspelt one would fail the deploy only once it reached CloudFormation)."""

from __future__ import annotations

import shlex
import tomllib

import pytest

from local.template import ROOT, load_template

CONFIG = tomllib.loads((ROOT / "samconfig.toml").read_text())
PARAMETERS = set(load_template()["Parameters"])


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
