"""`python -m local [run|demo]`: the local stack (make run) and a one-image demo (make demo)."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import threading
from pathlib import Path

from local.persistence import LocalState
from local.stack import DEV_API_KEY, LocalStack
from local.template import REGION, ROOT


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local", description=__doc__)
    commands = parser.add_subparsers(dest="command")
    run = commands.add_parser("run", help="serve the local stack until Ctrl-C (the default)")
    run.add_argument(
        "--fresh",
        action="store_true",
        default=os.environ.get("FRESH", "") not in ("", "0"),
        help="forget the jobs, images, key ids and signing secret kept from earlier runs (FRESH=1)",
    )
    commands.add_parser("openapi", help="regenerate openapi.json from the API function's routes and models")
    demo = commands.add_parser("demo", help="make one image through the HTTP API and save it")
    demo.add_argument("--prompt", default=os.environ.get("PROMPT") or "a red fox in snow, watercolor")
    demo.add_argument("--size", default=os.environ.get("SIZE") or "1024*768")
    # No SEED: a new picture each run, its seed printed so that SEED=... draws it again.
    demo.add_argument("--seed", type=int, default=int(os.environ["SEED"]) if os.environ.get("SEED") else None)
    # A string, not a Path: a trailing slash ("pics/") names a folder, and Path would drop it.
    demo.add_argument("--out", default=os.environ.get("OUT") or "out/", help="file or folder/ (default out/)")
    demo.add_argument("--timeout", type=float, default=120)
    args = parser.parse_args(argv)

    port = int(os.environ.get("PORT") or 3000)
    # API_KEY=one,two accepts several keys, each its own owner, so that one key's jobs can be
    # seen to be another's 404s; the first is the one the banner and the demo use.
    api_keys = [key.strip() for key in (os.environ.get("API_KEY") or DEV_API_KEY).split(",") if key.strip()]
    api_key = api_keys[0]
    if args.command == "openapi":
        from local.openapi import write

        print(f"wrote {write()}")
        return 0
    if args.command == "demo":
        from local.demo import run_demo

        # ZIMAGE_URL points the demo at another deployment, as it points the CLI, and then the key
        # is that deployment's (ZIMAGE_API_KEY), not the local stack's.
        url = os.environ.get("ZIMAGE_URL")
        if url:
            api_key = os.environ.get("ZIMAGE_API_KEY") or api_key
        return run_demo(
            url=url or f"http://127.0.0.1:{port}",
            api_key=api_key,
            prompt=args.prompt,
            size=args.size,
            seed=args.seed,
            out=args.out,
            timeout=args.timeout,
        )
    return serve(port, api_keys, fresh=getattr(args, "fresh", False))


def write_stack_facts(stack: LocalStack, api_key: str, signing_secret: str) -> Path:
    """What a client of the running stack needs, for scripts to read instead of the banner:
    out/local-stack.json, or where LOCAL_STACK_FACTS says."""
    path = Path(os.environ.get("LOCAL_STACK_FACTS") or "out/local-stack.json")
    facts = {
        "api_url": stack.api_url,
        "api_key": api_key,
        "aws_endpoint_url": stack.endpoint,
        "region": REGION,
        "event_bus_name": stack.event_bus,
        "webhook_signing_secret": signing_secret,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(facts, indent=2) + "\n")
    return path


def serve(port: int, api_keys: list[str], *, fresh: bool = False) -> int:
    upstream = os.environ.get("NOVITA_BASE_URL")
    api_key = api_keys[0]
    state = LocalState(Path(os.environ.get("LOCAL_STATE_DIR") or ROOT / "out" / "local-state"))
    if fresh:
        state.clear()
    stack = LocalStack(
        api_port=port,
        api_keys=state.api_keys(api_keys),
        novita_base_url=upstream,
        novita_api_key=os.environ.get("NOVITA_API_KEY"),
        state=state,
    )
    stack.start()
    items, objects, interrupted = stack.restored
    if items or objects:
        kept = f"restored {items} records and {objects} images from {state.folder}"
        if interrupted:
            kept += f"; {len(interrupted)} job(s) running at the last stop ended failed: interrupted"
    else:
        kept = f"nothing kept yet; a clean stop (Ctrl-C) keeps the jobs and images in {state.folder}"
    hint = "" if upstream else "             set NOVITA_BASE_URL and NOVITA_API_KEY to use another upstream\n"
    if not upstream and os.environ.get("NOVITA_API_KEY"):
        hint += "             NOVITA_API_KEY is ignored without NOVITA_BASE_URL: the emulator checks its own key\n"
    signing_secret = stack.client("secretsmanager").get_secret_value(SecretId=os.environ["WEBHOOK_SECRET_ARN"])
    facts = write_stack_facts(stack, api_key, signing_secret["SecretString"])
    key_hint = "   (set API_KEY to choose another, or several: one,two)" if api_key == DEV_API_KEY else ""
    demo_port = ("" if port == 3000 else f" PORT={port}") + ("" if api_key == DEV_API_KEY else f" API_KEY={api_key}")
    print(
        f"""
zimage local stack is up.

  Page:      {stack.api_url}/   (open it in a browser: make and browse images)
  API:       {stack.api_url}
  API key:   {", ".join(api_keys)}{key_hint}
  upstream:  {upstream or stack.novita_base_url + "  (the Novita emulator)"}
{hint}  AWS (moto): {stack.endpoint}

Try it:
  curl -s -X POST {stack.api_url}/v1/images -H 'x-api-key: {api_key}' \\
       -H 'Content-Type: application/json' -d '{{"prompt": "a red fox in snow", "size": "1024*768"}}'
  curl -s {stack.api_url}/v1/images/<id> -H 'x-api-key: {api_key}'
  ZIMAGE_URL={stack.api_url} ZIMAGE_API_KEY={api_key} .venv/bin/zimage generate "a lighthouse at dusk"
  make demo PROMPT="a lighthouse at dusk"{demo_port}

Webhooks: "webhook_url" may point at a receiver on 127.0.0.1 here; deliveries are signed
  with the secret {signing_secret["SecretString"]}

Kept:      {kept}
  FRESH=1 make run starts clean.

Events: bus {stack.event_bus} on {stack.endpoint} ({REGION}); put an "Image Generation Requested"
  event there to start a job (docs/local-stack.md#submit-by-event). These facts, as JSON: {facts}

Ctrl-C stops it.
""",
        flush=True,
    )
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    with contextlib.suppress(KeyboardInterrupt):
        # Python runs signal handlers on the main thread only; when the kernel hands SIGTERM or
        # SIGINT to another of the stack's threads, a wait without a timeout would never wake to run it.
        while not stopped.wait(0.5):
            pass
    stack.stop()
    print("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
