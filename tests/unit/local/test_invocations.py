"""The local stack gives the API function one invocation per thread, as Lambda gives one per
environment: two requests resolved at once never read each other's event."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from aws_lambda_powertools.event_handler import APIGatewayRestResolver
from aws_lambda_powertools.event_handler.api_gateway import BaseRouter
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from local.invocations import PerThreadInvocations

CALLERS = [f"key-{n}" for n in range(4)]


def an_api(together: threading.Barrier) -> APIGatewayRestResolver:
    """A resolver whose route reads the caller's key after every request has started, the way
    image_routes reads it through its router."""
    router = APIGatewayRouter()

    @router.get("/who")
    def who() -> dict:
        together.wait(timeout=5)
        return {"key": router.current_event.request_context.identity.api_key}

    app = APIGatewayRestResolver()
    app.include_router(router)
    return app


def a_request(api_key: str) -> dict:
    return {
        "resource": "/who",
        "path": "/who",
        "httpMethod": "GET",
        "headers": {},
        "requestContext": {"stage": "local", "path": "/who", "identity": {"apiKey": api_key}},
    }


def resolve_at_once(app: APIGatewayRestResolver) -> list[str]:
    with ThreadPoolExecutor(len(CALLERS)) as pool:
        answers = list(pool.map(lambda key: app.resolve(a_request(key), None), CALLERS))
    return [answer["body"] for answer in answers]


@pytest.fixture
def per_thread():
    patch = PerThreadInvocations().start()
    yield
    patch.stop()


def test_concurrent_requests_each_read_their_own_event(per_thread):
    # GIVEN the resolver with its invocation state per thread (as the local stack runs it)
    app = an_api(threading.Barrier(len(CALLERS)))

    # WHEN four requests with different keys are resolved at once
    bodies = resolve_at_once(app)

    # THEN each route read its own caller's key
    assert bodies == [f'{{"key":"{key}"}}' for key in CALLERS]


def test_without_it_concurrent_requests_read_the_last_ones_event():
    # GIVEN Powertools as it is (one invocation per process is what it expects)
    app = an_api(threading.Barrier(len(CALLERS)))

    bodies = resolve_at_once(app)

    # THEN every route read the event of whichever request started last: the bug it prevents
    assert len(set(bodies)) == 1


def test_another_thread_never_sees_this_ones_event_and_a_second_install_changes_nothing(per_thread):
    BaseRouter.current_event = "set on a thread"
    seen = []
    thread = threading.Thread(target=lambda: seen.append(getattr(BaseRouter, "current_event", None)))
    thread.start()
    thread.join()
    assert seen == [None]

    PerThreadInvocations().start().stop()  # a second stack in the process leaves them alone

    assert BaseRouter.current_event == "set on a thread"
