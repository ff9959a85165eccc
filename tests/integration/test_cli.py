"""The `zimage` command against the local stack, as a user runs it."""

from __future__ import annotations

import json

from PIL import Image
from zimage_cli.__main__ import main as zimage

from local.stack import DEV_API_KEY

from .conftest import OTHER_API_KEY, ApiClient


def run(stack, capsys, *words: str) -> tuple[int, str, str]:
    code = zimage([*words, "--url", stack.api_url, "--api-key", DEV_API_KEY])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_generate_saves_the_image_and_shows_progress(stack, emulator, capsys, tmp_path):
    target = tmp_path / "fox.jpg"

    code, out, err = run(stack, capsys, "generate", "a red fox", "--size", "768*512", "--seed", "5", "-o", str(target))

    assert code == 0, err
    assert Image.open(target).size == (768, 512)
    assert f"saved {target}" in out
    assert "succeeded 100%" in err


def test_generate_into_a_folder_names_the_file_after_the_job(stack, emulator, capsys, tmp_path):
    code, out, _ = run(stack, capsys, "generate", "a red fox", "--json", "-o", f"{tmp_path}/")

    job = json.loads(out)
    assert code == 0
    assert job["saved_to"] == f"{tmp_path}/{job['id']}.jpg"


def test_generate_into_a_folder_that_does_not_exist_yet_creates_it(stack, emulator, capsys, tmp_path):
    code, out, _ = run(stack, capsys, "generate", "a red fox", "--json", "-o", f"{tmp_path}/images/")

    job = json.loads(out)
    assert code == 0
    assert job["saved_to"] == f"{tmp_path}/images/{job['id']}.jpg"
    assert (tmp_path / "images" / f"{job['id']}.jpg").is_file()


def test_generate_without_o_saves_into_out_under_the_current_folder(stack, emulator, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no out/ here yet

    code, out, _ = run(stack, capsys, "generate", "a red fox", "--json")

    job = json.loads(out)
    assert code == 0
    assert job["saved_to"] == f"out/{job['id']}.jpg"
    assert (tmp_path / "out" / f"{job['id']}.jpg").is_file()


def test_list_shows_one_short_line_per_job_and_the_url_only_when_asked(stack, emulator, capsys, monkeypatch):
    # GIVEN a succeeded job with a long prompt, listed in an 80-column terminal
    monkeypatch.setenv("COLUMNS", "80")
    prompt = "a red fox in deep snow under a low winter sun,\nwatercolor on rough paper, wide margins"
    _, out, _ = run(stack, capsys, "generate", prompt, "--size", "512*384", "--json", "-o", "/dev/null")
    job = json.loads(out)

    # WHEN the jobs are listed
    code, listed, _ = run(stack, capsys, "list", "--limit", "5")

    # THEN each job is one line that fits: id, status, size, creation minute and the prompt's start
    line = next(line for line in listed.splitlines() if line.startswith(job["id"]))
    assert code == 0
    # (a "more: --cursor ..." line follows when the key has more jobs: the cursor is as long as it is)
    assert all(len(line) < 80 for line in listed.splitlines() if line.startswith("img_"))
    assert line.split()[1:5] == ["succeeded", "512*384", *job["created_at"][:16].split("T")]
    assert line.endswith("...") and line.split(maxsplit=5)[5][:-3] in " ".join(prompt.split())
    assert "http" not in listed
    # and --urls adds the image's URL, --json gives the whole page
    urls = run(stack, capsys, "list", "--limit", "5", "--urls")[1]
    url = next(line for line in urls.splitlines() if line.startswith(job["id"])).split()[-1]
    assert url.startswith("http") and f"/images/{job['id']}?" in url  # signed anew at each read
    page = json.loads(run(stack, capsys, "list", "--limit", "5", "--json")[1])
    assert next(item for item in page["items"] if item["id"] == job["id"])["image"]["url"].startswith("http")


def test_a_failed_job_exits_1_with_its_reason(stack, emulator, capsys, tmp_path):
    emulator.configure(outcome="fail", fail_reason="refused by the model")

    code, _, err = run(stack, capsys, "generate", "a red fox", "-o", str(tmp_path / "x.jpg"))

    assert code == 1
    assert "upstream_failed" in err and "refused by the model" in err
    assert not (tmp_path / "x.jpg").exists()


def test_a_refused_request_exits_2_with_the_services_message(stack, emulator, capsys):
    code, _, err = run(stack, capsys, "generate", "a red fox", "--size", "2048*512")

    assert code == 2
    assert "size must be W*H with each side 256..1536, got 2048*512" in err


def test_status_list_and_cancel_speak_json(stack, emulator, capsys):
    emulator.configure(outcome="never", eta_override=2)
    _, out, _ = run(stack, capsys, "generate", "a slow fox", "--no-wait", "--json")
    job_id = json.loads(out)["id"]

    assert json.loads(run(stack, capsys, "status", job_id, "--json")[1])["id"] == job_id
    assert json.loads(run(stack, capsys, "cancel", job_id, "--json")[1])["status"] == "canceled"
    page = json.loads(run(stack, capsys, "list", "--status", "canceled", "--limit", "5", "--json")[1])
    assert job_id in [item["id"] for item in page["items"]]


def test_an_unreachable_service_exits_2(capsys):
    code = zimage(["status", "img_01JD0000000000000000000000", "--url", "http://127.0.0.1:9"])

    assert code == 2
    assert "could not reach" in capsys.readouterr().err


def test_the_connection_options_may_come_before_the_command(stack, emulator, capsys):
    code = zimage(["--url", stack.api_url, "--api-key", DEV_API_KEY, "--json", "list", "--limit", "1"])

    assert code == 0
    assert "items" in json.loads(capsys.readouterr().out)


def test_cancelling_a_job_that_already_ended_says_so_and_exits_1(stack, emulator, capsys):
    _, out, _ = run(stack, capsys, "generate", "a quick fox", "--json", "-o", "/dev/null")
    job_id = json.loads(out)["id"]

    code, out, err = run(stack, capsys, "cancel", job_id)

    assert code == 1
    assert "had already ended (succeeded); nothing was canceled" in err


def test_the_url_and_key_come_from_the_environment_when_no_option_gives_them(stack, emulator, capsys, monkeypatch):
    # GIVEN a job of another key, which the default (development) key cannot read
    job = ApiClient(stack.api_url, OTHER_API_KEY).submit()
    monkeypatch.setenv("ZIMAGE_URL", stack.api_url)
    monkeypatch.setenv("ZIMAGE_API_KEY", OTHER_API_KEY)

    # WHEN the command is run without --url and --api-key
    code = zimage(["status", job["id"], "--json"])

    # THEN it reached this stack with that key
    assert code == 0
    assert json.loads(capsys.readouterr().out)["id"] == job["id"]


def test_a_key_from_the_environment_is_the_one_sent(stack, emulator, capsys, monkeypatch):
    monkeypatch.setenv("ZIMAGE_URL", stack.api_url)
    monkeypatch.setenv("ZIMAGE_API_KEY", "not-a-key")

    code = zimage(["list", "--limit", "1"])

    assert code == 2
    assert "Forbidden" in capsys.readouterr().err


def test_the_options_win_over_the_environment(stack, emulator, capsys, monkeypatch):
    job = ApiClient(stack.api_url, OTHER_API_KEY).submit()
    monkeypatch.setenv("ZIMAGE_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("ZIMAGE_API_KEY", "not-a-key")

    code = zimage(["status", job["id"], "--json", "--url", stack.api_url, "--api-key", OTHER_API_KEY])

    assert code == 0
    assert json.loads(capsys.readouterr().out)["id"] == job["id"]


def test_generate_keeps_the_metadata_given_as_key_value_pairs(stack, emulator, capsys, tmp_path):
    code, out, err = run(
        stack,
        capsys,
        "generate",
        "a red fox",
        "--json",
        "-o",
        f"{tmp_path}/",
        "--metadata",
        "order=A-1",
        "--metadata",
        "note=x=y",
    )

    assert code == 0, err
    assert json.loads(out)["metadata"] == {"order": "A-1", "note": "x=y"}
