"""zimage generate | status | list | cancel | doctor: the image service from a terminal.

    zimage generate "a red fox in snow" --size '1024*768' --seed 7     # saves out/<job id>.jpg
    zimage generate "a red fox" --metadata order=A-1042               # kept with the job
    zimage status img_01...          zimage list --status succeeded --urls
    zimage cancel img_01...          zimage doctor --no-generate
    zimage batch prompts.jsonl -o out/batch/    # a line each; a second run resumes

--url / ZIMAGE_URL picks the deployment (default http://127.0.0.1:3000, the local stack),
--api-key / ZIMAGE_API_KEY the key, before or after the command. Exit status: 0 done; 1 the
generated job failed or was canceled, cancel found the job already ended another way, or a batch
line failed or was not started; 2 the request was refused or the service could not be reached;
for doctor, 1 when a check failed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
import uuid
from pathlib import Path

import urllib3
from tqdm import tqdm

from zimage_cli import doctor
from zimage_cli.client import EXTENSIONS, ApiError, ImageApi

LOCAL_URL = "http://127.0.0.1:3000"
LOCAL_KEY = "zimage-local-dev-key"
MIN_PROMPT = 10  # characters of the prompt `zimage list` shows however narrow the terminal
# Where an image goes without -o, relative to the current folder: pictures gather in one place.
DEFAULT_FOLDER = Path("out")
# The image format a file name's suffix names: EXTENSIONS' own, and the other name JPEG goes by.
FORMAT_OF_SUFFIX = {f".{extension}": kind for kind, extension in EXTENSIONS.items()} | {".jpeg": "image/jpeg"}


def save_path(output: str | None, job_id: str, content_type: str) -> Path:
    """Where `generate` saves a job's image: `output` as given, or the job's own name inside it
    when it names a folder (default out/). A file name that ends in another image format's suffix
    gets the image's own: the upstream decides the format, and `-o fox.png` holding JPEG bytes
    would mislead whatever opens it by name."""
    name = f"{job_id}.{EXTENSIONS.get(content_type, 'img')}"
    if not output:
        return DEFAULT_FOLDER / name
    path = Path(output)
    # A trailing slash names a folder that may not exist yet (Path would drop the slash).
    if output.endswith(("/", os.sep)) or path.is_dir():
        return path / name
    named = FORMAT_OF_SUFFIX.get(path.suffix.lower())
    if named not in (None, content_type) and content_type in EXTENSIONS:
        return path.with_suffix(f".{EXTENSIONS[content_type]}")
    return path


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    api = ImageApi(args.url, args.api_key)
    try:
        return args.run(api, args)
    except ApiError as exc:
        _emit_error(args, str(exc), exc.body)
        return 2
    except urllib3.exceptions.HTTPError as exc:
        _emit_error(args, f"could not reach {args.url}: {exc}", None)
        return 2


def generate(api: ImageApi, args: argparse.Namespace) -> int:
    started = time.monotonic()
    # A key of our own makes the submit safe to repeat: a retry never starts a second paid job.
    key = args.idempotency_key or f"cli-{uuid.uuid4()}"
    metadata = dict(args.metadata) if args.metadata else None
    job = api.submit(args.prompt, size=args.size, seed=args.seed, idempotency_key=key, metadata=metadata)
    accepted = time.monotonic()
    if args.no_wait:
        _emit(args, job, f"{job['id']} {job['status']}")
        return 0
    with tqdm(
        total=100,
        desc=job["status"],
        unit="%",
        disable=args.json or None,
        file=sys.stderr,
        bar_format="{desc:<11}|{bar}| {n:.0f}% {postfix}",
    ) as bar:

        def show(update: dict) -> None:
            bar.set_description_str(update["status"])
            progress = 100 if update["status"] == "succeeded" else update.get("progress") or 0
            bar.update(max(0, progress - bar.n))
            bar.set_postfix_str(f"eta {update['eta_seconds']}s" if update.get("eta_seconds") else "")
            if bar.disable and not args.json:  # not a terminal: one line per change instead
                eta = f", eta {update['eta_seconds']}s" if update.get("eta_seconds") else ""
                print(f"{update['status']} {progress}%{eta}", file=sys.stderr)

        job = api.follow(job, timeout=args.timeout, on_change=show)
    ended = time.monotonic()
    if job["status"] != "succeeded":
        error = job.get("error") or {}
        reason = (
            f"{error.get('code')}: {error.get('message')}"
            if error
            else f"still {job['status']} after {args.timeout:.0f}s"
        )
        _emit(args, job, f"{job['id']} {job['status']}: {reason}", stream=sys.stderr)
        return 1
    image = job["image"]
    path = save_path(args.output, job["id"], image["content_type"])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(api.download(image["url"]))
    finished = time.monotonic()
    timings = {
        "accepted": accepted - started,  # the POST's answer
        "generated": ended - accepted,  # until GET showed it succeeded
        "downloaded": finished - ended,  # the image through its presigned URL
        "total": finished - started,
    }
    _emit(
        args,
        {
            **job,
            "saved_to": str(path),
            "elapsed_seconds": round(timings["total"], 3),
            "timings_seconds": {name: round(value, 3) for name, value in timings.items()},
        },
        f"saved {path} ({image['width']}x{image['height']} {image['content_type']}, {image['bytes']} bytes) "
        f"in {timings['total']:.2f}s\nurl {image['url']}\n"
        + "timings: "
        + ", ".join(f"{name} {value:.2f}s" for name, value in timings.items()),
    )
    return 0


def batch(api: ImageApi, args: argparse.Namespace) -> int:
    from zimage_cli.batch import run_batch

    if args.concurrency < 1:
        print("zimage: --concurrency must be at least 1", file=sys.stderr)
        return 2
    return run_batch(
        api, args.file, Path(args.output), concurrency=args.concurrency, timeout=args.timeout, quiet=args.json
    )


def status(api: ImageApi, args: argparse.Namespace) -> int:
    job = api.get(args.job_id)
    _emit(args, job, _line(job))
    return 0


def list_jobs(api: ImageApi, args: argparse.Namespace) -> int:
    page = api.list(status=args.status, limit=args.limit, cursor=args.cursor)
    width = shutil.get_terminal_size().columns
    text = "\n".join(_row(job, width, urls=args.urls) for job in page["items"]) or "no jobs"
    if page.get("next_cursor"):
        text += f"\nmore: --cursor {page['next_cursor']}"
    _emit(args, page, text)
    return 0


def cancel(api: ImageApi, args: argparse.Namespace) -> int:
    job = api.cancel(args.job_id)
    _emit(args, job, _line(job))
    if job["status"] != "canceled":  # DELETE answers an ended job as it is
        print(f"zimage: {job['id']} had already ended ({job['status']}); nothing was canceled", file=sys.stderr)
        return 1
    return 0


def check(api: ImageApi, args: argparse.Namespace) -> int:
    allowed = doctor.consent(yes=args.yes, no_generate=args.no_generate)
    checks = doctor.diagnose(api, generate=allowed, timeout=args.timeout)
    found = doctor.as_json(checks)
    _emit(args, found, doctor.report(checks))
    return 0 if found["ok"] else 1


def _line(job: dict) -> str:
    detail = job.get("image", {}).get("url") or (job.get("error") or {}).get("message") or ""
    prompt = job["prompt"][:40]
    return f"{job['id']}  {job['status']:<10} {job['size']:<9} {job['created_at']}  {prompt!r}  {detail}".rstrip()


def _row(job: dict, width: int, *, urls: bool = False) -> str:
    """A job of `zimage list` on one line that fits `width` columns (80 leave the prompt 10): id,
    status, size, when it was made (UTC, to the minute) and as much of the prompt as there is room
    for. The presigned URL is hundreds of characters long; it comes only with --urls."""
    start = f"{job['id']} {job['status']:<10} {job['size']:<9} {job['created_at'][:16].replace('T', ' ')} "
    prompt = " ".join(job["prompt"].split())  # one line, even for a prompt with line breaks
    room = max(MIN_PROMPT, width - len(start) - 1)  # the last column left free: some terminals wrap there
    if len(prompt) > room:
        prompt = prompt[: room - 3] + "..."
    url = job.get("image", {}).get("url") if urls else None
    return f"{start}{prompt}" + (f"  {url}" if url else "")


def _emit(args: argparse.Namespace, data: dict, text: str, stream=None) -> None:
    print(json.dumps(data, indent=2) if args.json else text, file=stream or sys.stdout)


def _emit_error(args: argparse.Namespace, message: str, body: object) -> None:
    if args.json:
        print(json.dumps({"error": message, "answer": body}), file=sys.stdout)
    print(f"zimage: {message}", file=sys.stderr)


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


def _options(*, defaults: bool) -> argparse.ArgumentParser:
    """The options every command takes. They are accepted before the command too; there they
    carry the defaults, and after it they only override (SUPPRESS keeps a sub-command from
    resetting what was given before it)."""
    options = argparse.ArgumentParser(add_help=False)

    def default(value: object) -> object:
        return value if defaults else argparse.SUPPRESS

    options.add_argument("--url", default=default(os.environ.get("ZIMAGE_URL") or LOCAL_URL), help="the API's URL")
    options.add_argument("--api-key", default=default(os.environ.get("ZIMAGE_API_KEY") or LOCAL_KEY), help="x-api-key")
    options.add_argument("--json", action="store_true", default=default(False), help="print JSON for scripts")
    return options


def _parser() -> argparse.ArgumentParser:
    common = _options(defaults=False)
    parser = argparse.ArgumentParser(
        prog="zimage",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[_options(defaults=True)],
    )
    commands = parser.add_subparsers(dest="command", required=True)

    make = commands.add_parser("generate", parents=[common], help="make an image and save it")
    make.add_argument("prompt")
    make.add_argument("--size", help="W*H, each side 256..1536 (default 1024*1024)")
    make.add_argument("--seed", type=int, help="-1..2147483647 (default -1: random)")
    make.add_argument("-o", "--output", help="file or folder/ to save to (default out/<job id>.<ext>)")
    make.add_argument("--timeout", type=float, default=600, help="seconds to follow the job (default 600)")
    make.add_argument("--idempotency-key", help="reuse to make a retried submit return the same job")
    make.add_argument(
        "--metadata",
        action="append",
        type=_key_value,
        metavar="KEY=VALUE",
        help="your own fact to keep with the job, returned with it (repeatable)",
    )
    make.add_argument("--no-wait", action="store_true", help="print the job and exit")
    make.set_defaults(run=generate)

    show = commands.add_parser("status", parents=[common], help="show a job")
    show.add_argument("job_id")
    show.set_defaults(run=status)

    listing = commands.add_parser("list", parents=[common], help="list your jobs, newest first")
    listing.add_argument("--status", choices=["queued", "processing", "succeeded", "failed", "canceled"])
    listing.add_argument("--limit", type=int)
    listing.add_argument("--cursor")
    listing.add_argument("--urls", action="store_true", help="end each succeeded job's line with its image URL")
    listing.set_defaults(run=list_jobs)

    many = commands.add_parser(
        "batch", parents=[common], help="one image per line of a JSON Lines file; a second run resumes"
    )
    many.add_argument("file", type=Path, help='JSON Lines: {"prompt", "size", "seed", "metadata"} a line')
    many.add_argument("-o", "--output", default="out/batch/", help="folder for the images and manifest.jsonl")
    many.add_argument("--concurrency", type=int, default=4, help="lines in flight at once (default 4)")
    many.add_argument("--timeout", type=float, default=600, help="seconds to follow each job (default 600)")
    many.set_defaults(run=batch)

    stop = commands.add_parser("cancel", parents=[common], help="cancel a job that has not ended")
    stop.add_argument("job_id")
    stop.set_defaults(run=cancel)

    checkup = commands.add_parser(
        "doctor", parents=[common], help="check the deployment and this key, and say what to fix"
    )
    consent = checkup.add_mutually_exclusive_group()
    consent.add_argument("--yes", action="store_true", help="make one small paid image without asking")
    consent.add_argument("--no-generate", action="store_true", help="skip the image: nothing is paid for")
    checkup.add_argument("--timeout", type=float, default=120, help="seconds to wait for the image (default 120)")
    checkup.set_defaults(run=check)
    return parser


if __name__ == "__main__":
    sys.exit(main())
