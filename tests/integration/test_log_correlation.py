"""Log lines name the job they are about, and the function and invocation that wrote them. (On
the local stack every function shares one process and so one Powertools formatter; the stack
keeps each thread's Lambda context keys apart, as AWS keeps each function in its own process.)"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from typing import Any
from unittest import mock

from tests.integration.conftest import ApiClient


def test_a_started_job_is_logged_with_its_own_id(api: ApiClient, caplog):
    caplog.set_level(logging.INFO)
    first = api.submit(seed=1)
    second = api.submit(seed=2)

    started = [record for record in caplog.records if record.getMessage() == "job started"]
    assert [record.job_id for record in started] == [first["id"], second["id"]]
    assert all(record.task_id for record in started)


@contextmanager
def lines_with_their_writer(stack) -> Iterator[list[tuple[tuple[str, str] | None, dict]]]:
    """Every JSON line the Powertools loggers write, as they format it, with the invocation
    (function, request id) that was running on the thread that wrote it, None outside one."""
    running = threading.local()
    lines: list[tuple[tuple[str, str] | None, dict]] = []

    def watched(name: str, handler: Any) -> Any:
        def run(event: dict, context: Any) -> Any:
            running.invocation = (name, context.aws_request_id)
            try:
                return handler(event, context)
            finally:
                running.invocation = None

        return run

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append((getattr(running, "invocation", None), json.loads(self.format(record))))

    services = [
        logger
        for logger in list(logging.Logger.manager.loggerDict.values())
        if getattr(logger, "powertools_handler", None)
    ]
    assert services, "no Powertools logger is configured: the stack has not loaded the handlers"
    with ExitStack() as undo:
        for name, function in stack.functions.items():
            undo.enter_context(mock.patch.object(function, "handler", watched(name, function.handler)))
        undo.enter_context(mock.patch.object(stack.api, "handler", watched("ApiFunction", stack.api.handler)))
        for service in services:
            capture = Capture()
            capture.setFormatter(service.powertools_handler.formatter)  # the very lines make run prints
            service.addHandler(capture)
            undo.callback(service.removeHandler, capture)
        yield lines


def test_every_line_of_concurrent_jobs_names_the_function_that_wrote_it(stack, api: ApiClient):
    # GIVEN jobs submitted and followed at the same time, so that API calls and poll turns overlap
    with lines_with_their_writer(stack) as lines, ThreadPoolExecutor(8) as pool:
        jobs = list(pool.map(lambda seed: api.wait(api.submit(seed=seed)["id"]), range(8)))
        stack.wait_until_idle()

    # THEN every line written during an invocation carries that invocation's function and request id
    written = [(writer, line) for writer, line in lines if writer]
    assert [job["status"] for job in jobs] == ["succeeded"] * 8
    assert {"ApiFunction", "PollFunction"} <= {writer[0] for writer, _ in written}
    wrong = [
        (writer, line["function_name"], line["message"])
        for writer, line in written
        if (line.get("function_name"), line.get("function_request_id")) != writer
    ]
    assert not wrong, wrong
