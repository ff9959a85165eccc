"""The page at GET /, in Chromium: make an image and see it, find it in the gallery, cancel a
job, a refused key, hostile prompt text, and no Content-Security-Policy violation anywhere
(every test's page fixture checks the console and the violation reports)."""

from __future__ import annotations

import json

import pytest

# One worker runs them all, so one Chromium starts (make test: --dist loadgroup); the load run
# shares it (tests/reliability/test_load.py), so the two never compete for the CPU.
pytestmark = pytest.mark.xdist_group("browser")

HOSTILE = 'a fox <img src=x onerror="window.__ran=1"><script>window.__ran=2</script>'


def generate(page, prompt: str, size: str = "512*512", metadata: str = "") -> str:
    page.page.fill("#prompt", prompt)
    if metadata:
        page.page.fill("#metadata", metadata)
    page.page.select_option("#size", size)
    page.page.click("#generate")
    return page.wait_for("() => document.getElementById('status-text').textContent.split(':')[0]", what="a job id")


def test_a_prompt_made_with_the_keyboard_alone_shows_its_image_and_facts(page):
    page.open()
    # GIVEN the key typed in and confirmed with Enter, which moves on to the prompt
    page.use_key()
    assert page.value("() => document.activeElement.id") == "prompt"
    assert "Novita emulator" in page.page.inner_text(".notice")

    # WHEN a prompt is typed, metadata given, and Generate reached with Tab and pressed with Enter
    # (the metadata field shows once the API's document, fetched as the page opens, says so)
    page.wait_for("() => !document.getElementById('metadata-field').hidden", what="the metadata field")
    page.page.keyboard.type("a lighthouse at dusk")
    for _ in range(3):  # size, seed, metadata (the API's document says it takes one)
        page.page.keyboard.press("Tab")
    assert page.value("() => document.activeElement.id") == "metadata"
    page.page.keyboard.type('{"order": "A-1042"}')
    page.page.keyboard.press("Tab")
    assert page.value("() => document.activeElement.id") == "generate"
    page.page.keyboard.press("Enter")

    # THEN the image is drawn, with its facts and a link that downloads it
    page.wait_for("() => document.getElementById('result-image').naturalWidth > 0", what="the image drawn")
    facts = page.page.inner_text("#result-facts")
    assert "1024 \u00d7 768" in facts and "sha256" in facts and "generated in" in facts
    assert page.value("() => document.getElementById('result-image').naturalWidth") == 1024
    download = page.page.get_attribute("#download", "href")
    assert "response-content-disposition=attachment" in download
    assert "succeeded" in page.page.inner_text("#status-text")


def test_the_image_made_is_in_the_gallery_and_opens_its_details(page):
    page.open()
    page.use_key()
    job_id = generate(page, "a gallery fox", metadata='{"order": "A-7"}')
    page.wait_for("() => document.getElementById('result-image').naturalWidth > 0", what="the image drawn")

    page.page.click("#tab-gallery")
    tile = f'#grid button[data-job="{job_id}"]'
    page.wait_for(f"() => document.querySelector('{tile} img')?.naturalWidth > 0", what="the thumbnail drawn")
    assert page.value("() => document.querySelector('#grid button').dataset.job") == job_id  # newest first

    page.page.click(tile)
    page.wait_for("() => document.querySelector('#details-body dl')", what="the details")
    assert job_id in page.page.inner_text("#details-title")
    assert "a gallery fox" in page.page.inner_text("#details-body")
    assert '{"order":"A-7"}' in page.page.inner_text("#details-body")  # the metadata it was given
    page.page.keyboard.press("Escape")
    assert not page.value("() => document.getElementById('details').open")

    page.page.select_option("#status-filter", "failed")
    page.wait_for(f"() => !document.querySelector('{tile}')", what="the filter applied")


def test_a_running_job_is_canceled(page, emulator):
    emulator.configure(queue_seconds=0, run_seconds=6)
    page.open()
    page.use_key()
    job_id = generate(page, "a slow fox")

    page.page.click("#cancel")

    page.wait_for("() => document.getElementById('status-text').textContent.includes('canceled')", what="canceled")
    assert job_id in page.page.inner_text("#status-text")
    # the follow ends with the job: Generate comes back, Cancel goes, no image
    page.wait_for("() => !document.getElementById('generate').disabled", what="Generate enabled again")
    assert page.page.is_disabled("#cancel")
    assert page.page.is_hidden("#result")
    assert "canceled" in page.page.inner_text("#status-text")


def test_a_refused_key_shows_the_error_and_the_field(page):
    page.open()
    page.use_key("not-a-key")

    page.page.fill("#prompt", "a fox")
    page.page.click("#generate")

    error = page.wait_for("() => document.getElementById('playground-error').innerText", what="the error")
    assert "forbidden" in error and "x-api-key" in error


def test_a_validation_error_shows_its_message_and_field(page):
    page.open()
    page.use_key()
    page.page.select_option("#size", "custom")
    page.page.fill("#width", "100")

    page.page.fill("#prompt", "a fox")
    page.page.click("#generate")

    error = page.wait_for("() => document.getElementById('playground-error').innerText", what="the error")
    assert "invalid_request" in error and "field: size" in error and "256..1536" in error


def test_a_prompt_with_markup_is_shown_as_text_and_runs_nothing(page):
    page.open()
    page.use_key()
    job_id = generate(page, HOSTILE)
    page.wait_for("() => document.getElementById('result-image').naturalWidth > 0", what="the image drawn")

    page.page.click("#tab-gallery")
    caption = f'#grid button[data-job="{job_id}"] .caption'
    page.wait_for(f"() => document.querySelector('{caption}')", what="the tile")

    assert page.page.inner_text(caption) == HOSTILE
    assert page.value("() => document.querySelectorAll('img[src=\"x\"], #grid script').length") == 0
    assert page.value("() => window.__ran") is None


def test_copy_as_curl_gives_the_same_request(page):
    page.open()
    page.use_key()
    page.page.fill("#prompt", "it's a fox")
    page.page.fill("#seed", "7")

    page.page.click("#copy-curl")

    command = page.page.inner_text("#curl")
    assert command.startswith(f"curl -s -X POST '{page.url}v1/images'")
    assert '"x-api-key: $ZIMAGE_API_KEY"' in command  # the key itself never leaves the page
    body = command.split(" -d '", 1)[1][:-1].replace("'\\''", "'")
    assert json.loads(body) == {"prompt": "it's a fox", "size": "1024*768", "seed": 7}


def test_on_a_phone_sized_screen_nothing_runs_off_the_side(browser, stack, emulator):
    from .conftest import PageUnderTest

    context = browser.new_context(viewport={"width": 360, "height": 740}, is_mobile=True)
    page = PageUnderTest(context.new_page(), stack.api_url + "/").open()
    page.use_key()
    try:
        assert page.value("() => document.documentElement.scrollWidth <= window.innerWidth")
        assert page.page.is_visible("#generate")
        assert page.csp_violations() == []
    finally:
        context.close()


def test_forgetting_the_key_removes_it_from_the_session(page):
    page.open()
    page.use_key()
    assert page.value("() => sessionStorage.getItem('zimage.apiKey')")

    page.page.click("#forget-key")

    assert page.value("() => sessionStorage.getItem('zimage.apiKey')") is None
    assert page.page.is_visible("#key-input")


def test_the_policy_refuses_what_the_page_does_not_ship_and_the_violation_is_seen(browser, stack, emulator):
    from .conftest import PageUnderTest

    context = browser.new_context()
    page = PageUnderTest(context.new_page(), stack.api_url + "/").open()
    try:
        # WHEN something not in the page tries an inline style, an outside image and an inline handler
        page.value(
            """() => {
              const box = document.createElement("div");
              box.innerHTML = '<p style="color: red">x</p>'
                + '<img src="https://example.invalid/x.png" onerror="window.__ran=1">';
              document.body.append(box);
            }"""
        )

        # THEN the policy refuses each, and the checks every other test ends with see it
        # (the handler's violation comes once the refused image's error event fires, after the others)
        kinds = ("style-src", "img-src", "script-src")
        page.wait_for(
            f"() => {list(kinds)}.every((kind) => window.__cspViolations.some((v) => v.startsWith(kind)))",
            what=f"a violation of each of {kinds}",
        )
        assert page.value("() => window.__ran") is None
    finally:
        context.close()


def test_a_failed_job_says_why_in_its_details(page, emulator):
    emulator.configure(outcome="fail", fail_reason="the model refused <b>this</b>")
    page.open()
    page.use_key()
    job_id = generate(page, "a fox that fails")
    error = page.wait_for("() => document.getElementById('playground-error').innerText", what="the failure")
    assert "upstream_failed" in error

    page.page.click("#tab-gallery")
    page.page.select_option("#status-filter", "failed")
    tile = f'#grid button[data-job="{job_id}"]'
    page.wait_for(f"() => document.querySelector('{tile}')", what="the failed tile")
    page.page.click(tile)

    details = page.wait_for(
        "() => document.querySelector('#details-body dl') && document.getElementById('details-body').innerText",
        what="the details",
    )
    assert "why it failed" in details and "upstream_failed" in details and "<b>this</b>" in details


def test_an_image_whose_url_fails_is_fetched_again_with_a_fresh_url(page, stack):
    page.open()
    page.use_key()
    job_id = generate(page, "a fox seen twice")
    page.wait_for("() => document.getElementById('result-image').naturalWidth > 0", what="the image drawn")

    # GIVEN S3 refusing the next load of that image, as it refuses an expired URL (other tests'
    # images in the gallery load as they are)
    refused: list[str] = []

    def refuse_once(route):
        if f"/images/{job_id}?" in route.request.url and not refused:
            refused.append(route.request.url)
            return route.fulfill(status=403, body="Request has expired")
        return route.continue_()

    page.page.route(f"{stack.endpoint}/**", refuse_once)
    rereads = []
    page.page.on("request", lambda r: rereads.append(r.url) if f"/v1/images/{job_id}" in r.url else None)

    # WHEN the gallery shows the image
    page.page.click("#tab-gallery")

    # THEN the page read the job again, once, and shows the image from the URL it was given
    tile = f'#grid button[data-job="{job_id}"] img'
    page.wait_for(f"() => document.querySelector('{tile}')?.naturalWidth > 0", what="the thumbnail drawn")
    assert len(refused) == 1 and len(rereads) == 1


def test_a_job_is_followed_by_looking_at_its_image_and_read_once_it_is_there(page, stack, emulator):
    emulator.configure(queue_seconds=0, run_seconds=2)
    events = []  # ("read", url) and ("look", url, status), in the order their answers came

    def answered(response):
        if "/v1/images/img_" in response.url and response.request.method == "GET":
            events.append(("read", response.url))
        elif response.url.startswith(stack.endpoint) and "/images/img_" in response.url:
            events.append(("look", response.url, response.status))

    page.page.on("response", answered)
    page.open()
    page.use_key()

    job_id = generate(page, "a fox watched for")

    page.wait_for("() => document.getElementById('result-image').naturalWidth > 0", what="the image drawn")
    assert "succeeded" in page.page.inner_text("#status-text")
    # the page looked only at its job's key, and loaded the image once: the image shown
    looks = [event for event in events if event[0] == "look"]
    assert looks and all(f"/images/{job_id}?" in url for _, url, _ in looks)
    (loaded,) = [index for index, event in enumerate(events) if event[0] == "look" and event[2] == 200]
    assert page.value("() => document.getElementById('result-image').src") == events[loaded][1]
    # the job was read after the image was there; before it, only while no image came for seconds
    reads = [index for index, event in enumerate(events) if event[0] == "read"]
    assert reads[-1] > loaded and len(reads) <= 2, events
