"""Shared test helpers, and the one local stack every test that needs AWS runs against."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

# The service name every function has on AWS (template Globals). Collecting the unit tests
# imports the shared modules before any stack sets it, and a Powertools child logger takes its
# name from it then: without this, their lines would go to a "service_undefined" logger.
os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "zimage")

ROOT = Path(__file__).resolve().parent.parent
EVENTS = ROOT / "events"
OTHER_API_KEY = "zimage-test-other-key"
LISTING_API_KEY = "zimage-test-listing-key"  # its jobs are made only by the listing tests


def load_event(name: str) -> dict:
    """A sample event from events/, the same files `sam local invoke -e` takes."""
    return json.loads((EVENTS / name).read_text())


@pytest.fixture(scope="session", autouse=True)
def one_botocore_loader():
    """moto gives each unit test a new default boto3 session, and each new session (the local
    stack's functions make theirs too) its own botocore loader, which reads and parses the service
    models again: one shared loader (read-only data, cached per instance) keeps the suite quick."""
    import botocore.loaders
    import botocore.session

    shared = botocore.loaders.create_loader()
    original = botocore.session.create_loader
    botocore.session.create_loader = lambda search_path_string=None: (
        shared if search_path_string is None else original(search_path_string)
    )
    yield
    botocore.session.create_loader = original


@pytest.fixture(scope="session")
def stack() -> Iterator:
    """The local stack with the reliability settings: production's shape, second-long waits."""
    from local.stack import DEV_API_KEY, QUICK_EMULATOR, QUICK_PARAMETERS, LocalStack
    from reliability.scenarios import OTHER_KEY

    local = LocalStack(
        api_port=0,
        api_keys={
            DEV_API_KEY: "key-one",
            OTHER_API_KEY: "key-two",
            LISTING_API_KEY: "key-three",
            OTHER_KEY: "key-four",
        },
        parameters=QUICK_PARAMETERS,
        emulator_settings=QUICK_EMULATOR,
    )
    with local:
        yield local


@pytest.fixture
def emulator(stack) -> Iterator:
    # A test without this fixture may have left workflows polling: the counts start after them.
    stack.wait_until_idle()
    stack.emulator.reset()
    yield stack.emulator
    # Let this test's workflows end (at the latest at their deadline), so none of them calls
    # the emulator during the next test.
    stack.wait_until_idle()
    stack.emulator.reset()
