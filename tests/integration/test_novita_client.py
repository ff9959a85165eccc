"""The Novita client against the emulator over real sockets: what is retried, what is not, and
how every failure reads. Also Novita's own SDK against the emulator, so the emulator is held to
a client nobody here wrote."""

from __future__ import annotations

import time

import pytest
from novita_client import NovitaClient as NovitaSdk

from local.novita_emulator import EmulatorSettings, Fault, NovitaEmulator
from zimage.upstream.errors import InvalidImage, UpstreamRejected, UpstreamTimeout, UpstreamUnavailable
from zimage.upstream.novita import NovitaClient, TaskStatus

KEY = EmulatorSettings().api_key
UNAVAILABLE = Fault(status=503, body={"code": 503, "reason": "", "message": "busy"})


@pytest.fixture(scope="module")
def upstream():
    emulator = NovitaEmulator(settings=EmulatorSettings(queue_seconds=0.05, run_seconds=0.2)).start()
    yield emulator
    emulator.stop()


@pytest.fixture
def novita(upstream):
    upstream.reset()
    return NovitaClient(upstream.url, KEY, read_timeout=0.5)


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch):
    # The production back-off is seconds; here the same schedule runs a hundred times faster.
    from zimage.upstream import novita as module

    monkeypatch.setattr(module.CappedRetry, "RETRY_AFTER_CAP", 0.05)
    original = module.read_retry

    def quick(attempts: int = 3):
        return original(attempts).new(backoff_factor=0.01)

    monkeypatch.setattr(module, "read_retry", quick)


def start(novita) -> str:
    return novita.start_task(prompt="a fox", size="512*512", seed=3)


def test_a_task_runs_to_success_with_a_downloadable_image(novita, upstream):
    task_id = start(novita)

    deadline = time.monotonic() + 5
    result = novita.get_task_result(task_id)
    while not result.status.is_final and time.monotonic() < deadline:
        time.sleep(0.05)
        result = novita.get_task_result(task_id)

    assert result.status is TaskStatus.SUCCEED
    assert result.seed == 3
    assert result.images[0].url_ttl_seconds == 3600
    data = novita.download_image(result.images[0].location, max_bytes=10_000_000)
    assert data.startswith(b"\xff\xd8\xff")


def test_a_wrong_key_is_rejected_not_retried(upstream):
    upstream.reset()
    client = NovitaClient(upstream.url, "wrong-key")

    with pytest.raises(UpstreamRejected) as caught:
        start(client)

    assert caught.value.status == 403
    assert caught.value.reason == "INVALID_API_KEY"
    assert upstream.calls["submit"] == 1


def test_reads_are_retried_through_5xx(novita, upstream):
    task_id = start(novita)
    upstream.script("result", UNAVAILABLE, UNAVAILABLE)

    result = novita.get_task_result(task_id)

    assert result.status in (TaskStatus.QUEUED, TaskStatus.PROCESSING, TaskStatus.SUCCEED)
    assert upstream.calls["result"] == 3


def test_reads_give_up_after_the_retries(novita, upstream):
    task_id = start(novita)
    upstream.script("result", *[UNAVAILABLE] * 5)

    with pytest.raises(UpstreamUnavailable) as caught:
        novita.get_task_result(task_id)

    assert caught.value.status == 503
    assert upstream.calls["result"] == 4  # the first try and three retries


def test_reads_honour_retry_after_on_429(novita, upstream):
    task_id = start(novita)
    upstream.script("result", Fault(status=429, headers={"Retry-After": "1"}, body={"reason": "RATE_LIMIT_EXCEEDED"}))

    assert novita.get_task_result(task_id).status is not TaskStatus.UNKNOWN
    assert upstream.calls["result"] == 2


@pytest.mark.parametrize("fault", [Fault(drop=True), Fault(delay=1.0, passthrough=True)])
def test_reads_are_retried_after_a_dropped_or_slow_answer(novita, upstream, fault):
    task_id = start(novita)
    upstream.script("result", fault)

    assert novita.get_task_result(task_id).status is not TaskStatus.UNKNOWN
    assert upstream.calls["result"] == 2


def test_a_read_that_always_times_out_is_an_upstream_timeout(novita, upstream):
    task_id = start(novita)
    upstream.script("result", *[Fault(delay=1.0, passthrough=True)] * 4)

    with pytest.raises(UpstreamTimeout):
        novita.get_task_result(task_id)


@pytest.mark.parametrize(
    "fault",
    [Fault(raw=b"<html>proxy error</html>"), Fault(raw=b'{"task": {"status": "TASK_ST'), Fault(body=[1, 2])],
)
def test_an_answer_that_is_not_a_json_object_is_unavailable_not_a_crash(novita, upstream, fault):
    upstream.script("result", fault)

    with pytest.raises(UpstreamUnavailable):
        novita.get_task_result("any")


def test_an_unknown_task_is_rejected_with_its_reason(novita):
    with pytest.raises(UpstreamRejected) as caught:
        novita.get_task_result("no-such-task")

    assert caught.value.status == 404
    assert caught.value.reason == "TASK_NOT_FOUND"


@pytest.mark.parametrize(
    "fault",
    [
        UNAVAILABLE,
        Fault(status=500, body={"reason": "CREATE_TASK_FAILED"}),
        Fault(drop=True),
        Fault(delay=1.0, passthrough=True),
    ],
)
def test_a_submit_that_may_have_reached_the_upstream_is_never_repeated(novita, upstream, fault):
    upstream.script("submit", fault)

    with pytest.raises(UpstreamUnavailable):
        start(novita)

    assert upstream.calls["submit"] == 1


def test_a_rate_limited_submit_is_repeated(novita, upstream):
    upstream.script("submit", Fault(status=429, headers={"Retry-After": "0"}, body={"reason": "RATE_LIMIT_EXCEEDED"}))

    assert start(novita)
    assert upstream.calls["submit"] == 2


def test_a_submit_to_a_closed_port_is_unavailable_not_a_timeout():
    client = NovitaClient("http://127.0.0.1:9", KEY, connect_timeout=0.2, submit_attempts=1)

    with pytest.raises(UpstreamUnavailable) as caught:
        start(client)

    assert not isinstance(caught.value, UpstreamTimeout)  # surely never reached


def test_a_submit_answered_503_with_retry_after_is_still_not_repeated(novita, upstream):
    upstream.script("submit", Fault(status=503, headers={"Retry-After": "0"}, body={"reason": "busy"}))

    with pytest.raises(UpstreamUnavailable):
        start(novita)

    assert upstream.calls["submit"] == 1


def test_a_connection_lost_mid_answer_may_have_reached_the_upstream(novita, upstream):
    upstream.script("submit", Fault(drop=True))

    with pytest.raises(UpstreamTimeout):
        start(novita)


def test_a_body_that_trickles_in_is_cut_off(novita, upstream, monkeypatch):
    from zimage.upstream import novita as module

    monkeypatch.setattr(module, "BODY_SECONDS", 0.3)
    upstream.script(
        "result", *[Fault(body={"task": {"status": "TASK_STATUS_QUEUED"}, "pad": "x" * 40}, slow_body=1.5)] * 4
    )

    with pytest.raises(UpstreamTimeout):
        novita.get_task_result("any")


@pytest.mark.parametrize("status", [403, 404])
def test_an_image_link_that_refuses_is_rejected(novita, upstream, status):
    upstream.script("image", Fault(status=status, raw=b"<Error/>"))

    with pytest.raises(UpstreamRejected) as caught:
        novita.download_image(f"{upstream.url}/images/x.jpeg", max_bytes=1000)

    assert caught.value.status == status


def test_an_image_over_the_cap_is_refused_without_reading_it_all(novita, upstream):
    task_id = start(novita)
    time.sleep(0.4)
    location = novita.get_task_result(task_id).images[0].location

    with pytest.raises(InvalidImage, match="byte cap"):
        novita.download_image(location, max_bytes=100)


def test_novitas_own_sdk_reads_the_emulators_tasks(upstream):
    # GIVEN a task started at the emulator
    upstream.reset()
    task_id = NovitaClient(upstream.url, KEY).start_task(prompt="a fox", size="256*256", seed=11)
    sdk = NovitaSdk(KEY, base_url=upstream.url)

    # WHEN Novita's SDK waits for it the way it waits for the real API
    result = sdk.wait_for_task_v3(task_id, wait_for=20)

    # THEN it parses every field, including the debug times it reads as integers
    assert result.finished()
    assert result.task.status.value == "TASK_STATUS_SUCCEED"
    assert int(result.extra.seed) == 11
    assert result.extra.debug_info.submit_time_ms
    assert result.get_image_urls()[0].startswith(upstream.url)
    result.download_images()
    assert result.images_encoded


# --- Calls planned to end within the time a turn has left ------------------------------------


def test_a_read_given_little_time_ends_within_it_despite_a_silent_upstream(novita, upstream):
    # GIVEN an upstream that never answers in time, and a client whose own timeouts are long
    novita = NovitaClient(upstream.url, KEY, read_timeout=10)
    upstream.script("result", *[Fault(passthrough=True, delay=5)] * 4)

    # WHEN a poll may take 1.5 s at most
    started = time.monotonic()
    with pytest.raises(UpstreamTimeout):
        novita.get_task_result("any", within=1.5)

    # THEN it gave up in time, and made no retry it had no time for
    assert time.monotonic() - started < 1.5 + 0.5
    assert upstream.calls["result"] == 1


def test_a_download_trickling_in_past_the_time_given_is_cut_off(novita, upstream):
    novita = NovitaClient(upstream.url, KEY, read_timeout=10)
    upstream.script("image", Fault(status=200, raw=b"\xff" * 400, slow_body=5))

    started = time.monotonic()
    with pytest.raises(UpstreamTimeout):
        novita.download_image(f"{upstream.url}/images/x.jpeg", max_bytes=10_000_000, within=1.0)

    assert time.monotonic() - started < 1.0 + 0.5
