"""``cocaine-runtime``: load the config, start the services, serve until SIGTERM/SIGINT.

Start-up order: storage backend → built-in services (locator last, so that whatever it
resolves already listens) → the node starts its runlist. Shutdown runs the other way round
under deadlines: stop accepting, stop the apps (their workers drain), close the backend.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

from cocaine.errors import CocaineError
from cocaine.rpc.loop import run_loop
from cocaine.runtime.config import Config, load_config
from cocaine.runtime.runtime import Runtime

log = logging.getLogger("cocaine.runtime")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="cocaine-runtime",
        description="Run the Cocaine runtime: locator, storage, "
        "logging, node and every app of the runlist.",
    )
    parser.add_argument("-c", "--config", metavar="FILE", help="JSON config file (optional)")
    parser.add_argument(
        "--state-dir",
        metavar="DIR",
        help="storage, spool and sockets "
        "(default: $XDG_STATE_HOME/cocaine or ~/.local/state/cocaine)",
    )
    parser.add_argument(
        "--port",
        type=int,
        metavar="PORT",
        help="the locator's port (default 10053; 0 = any free port)",
    )
    parser.add_argument(
        "--endpoint",
        metavar="ADDR",
        help="IP address every service binds to (default: all interfaces)",
    )
    parser.add_argument("--log", metavar="FILE", help="write the runtime's log here, not stderr")
    parser.add_argument(
        "--token",
        metavar="T",
        help="require this token for node and storage writes (or COCAINE_TOKEN)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return parser.parse_args(argv)


def setup_logging(config: Config, log_file: str | None, verbose: bool) -> None:
    handler: logging.Handler
    handler = logging.FileHandler(log_file) if log_file else logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%Y-%m-%d %H:%M:%S")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    level = logging.DEBUG if verbose else getattr(logging, config.logging.severity.upper(), 20)
    root.setLevel(level)


async def serve(config: Config) -> None:
    runtime = Runtime(config)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await runtime.start()
        host, port = runtime.locator_endpoints[0]
        # The readiness line: tests and scripts wait for it.
        print(f"cocaine-runtime: ready, locator on {host}:{port}", file=sys.stderr, flush=True)
        await stop.wait()
        log.info("stopping")
    finally:
        await runtime.stop()


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    token = args.token or os.environ.get("COCAINE_TOKEN")
    try:
        config = load_config(
            args.config,
            state_dir=args.state_dir,
            port=args.port,
            endpoint=args.endpoint,
            token=token,
        )
        if args.log:
            Path(args.log).parent.mkdir(parents=True, exist_ok=True)
    except (CocaineError, OSError) as exc:
        print(f"cocaine-runtime: {getattr(exc, 'reason', exc)}", file=sys.stderr)
        sys.exit(2)
    setup_logging(config, args.log, args.verbose)
    try:
        run_loop(serve(config))
    except CocaineError as exc:
        print(f"cocaine-runtime: {exc.reason}", file=sys.stderr)
        sys.exit(1)
    except OSError as exc:
        print(f"cocaine-runtime: {exc.strerror or exc}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
