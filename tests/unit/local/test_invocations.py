"""The local stack gives the API function one invocation per thread, as Lambda gives one per
environment: two requests resolved at once never read each other's event or context."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from aws_lambda_powertools.event_handler import APIGatewayRestResolver
from aws_lambda_powertools.event_handler.api_gateway import BaseRouter
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from local.invocations import PerThreadInvocations

CALLERS = [f"key-{n}" for n in range(4)]
EXPECTED = [f'{{"key":"{key}"}}' for key in CALLERS]


def resolve_at_once() -> list[str]:
    """Each caller's answer (or the error that ended it) from a validating resolver, the app's
    kind, where the first request runs to its end while the others wait between their request
    validation and their route: the moment when, sharing one resolver's state, they would find
    its context emptied by the first and its event replaced by another's."""
    router = APIGatewayRouter()

    @router.get("/who")
    def who() -> dict:
        return {"key": router.current_event.request_context.identity.api_key}

    app = APIGatewayRestResolver(enable_validation=True)
    caller = threading.local()
    all_in, first_done = threading.Barrier(len(CALLERS)), threading.Event()

    def first_one_ends_first(app, next_middleware):
        all_in.wait(timeout=5)
        if caller.key != CALLERS[0]:
            first_done.wait(timeout=5)
        return next_middleware(app)

    app.use(middlewares=[first_one_ends_first])
    app.include_router(router)

    def resolve(key: str) -> str:
        caller.key = key
        event = {
            "resource": "/who",
            "path": "/who",
            "httpMethod": "GET",
            "headers": {},
            "requestContext": {"stage": "local", "path": "/who", "identity": {"apiKey": key}},
        }
        try:
            return app.resolve(event, None)["body"]
        except Exception as exc:
            return f"failed: {exc!r}"
        finally:
            if key == CALLERS[0]:
                first_done.set()

    with ThreadPoolExecutor(len(CALLERS)) as pool:
        return list(pool.map(resolve, CALLERS))


@pytest.fixture
def per_thread():
    patch = PerThreadInvocations().start()
    yield
    patch.stop()


def test_concurrent_requests_each_read_their_own_event(per_thread):
    # GIVEN the resolver with its invocation state per thread (as the local stack runs it)
    # WHEN four requests with different keys are resolved at once
    answers = resolve_at_once()

    # THEN each route read its own caller's key, and none lost its route
    assert answers == EXPECTED


def test_without_it_concurrent_requests_mix_up_their_state():
    # GIVEN Powertools as it is (one invocation per process is what it expects)
    answers = resolve_at_once()

    # THEN requests read another's event, or lost their route when the first emptied the context
    assert answers[1:] != EXPECTED[1:]
    assert any("KeyError('_route')" in answer for answer in answers[1:])


def test_another_thread_never_sees_this_ones_event_and_a_second_install_changes_nothing(per_thread):
    BaseRouter.current_event = "set on a thread"
    seen = []
    thread = threading.Thread(target=lambda: seen.append(getattr(BaseRouter, "current_event", None)))
    thread.start()
    thread.join()
    assert seen == [None]

    PerThreadInvocations().start().stop()  # a second stack in the process leaves them alone

    assert BaseRouter.current_event == "set on a thread"
