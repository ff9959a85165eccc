"""Log lines name the job they are about. (On the local stack every function shares one process
and so one Powertools formatter, whose appended keys and correlation id the functions' threads
overwrite in turn; each line's own `extra` is what can be checked here. On AWS each function has
its own process, and every handler starts an invocation with clear_state.)"""

from __future__ import annotations

import logging

from tests.integration.conftest import ApiClient


def test_a_started_job_is_logged_with_its_own_id(api: ApiClient, caplog):
    caplog.set_level(logging.INFO)
    first = api.submit(seed=1)
    second = api.submit(seed=2)

    started = [record for record in caplog.records if record.getMessage() == "job started"]
    assert [record.job_id for record in started] == [first["id"], second["id"]]
    assert all(record.task_id for record in started)
