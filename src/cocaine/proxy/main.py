"""``cocaine-proxy``: the HTTP gateway to apps, in one process or N sharing the port."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import subprocess
import sys

from cocaine.client.endpoints import parse_endpoints
from cocaine.proxy.server import ProxyConfig, serve
from cocaine.rpc.connection import RUNTIME_DIR_ENV
from cocaine.rpc.loop import run_loop


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="cocaine-proxy",
        description="HTTP gateway: /<app>/<event>?… (or X-Cocaine-Service/X-Cocaine-Event) "
        "becomes an enqueue on the app.",
    )
    parser.add_argument("--port", type=int, default=8080, help="HTTP port (default 8080)")
    parser.add_argument("--host", default=None, help="bind address (default: all interfaces)")
    parser.add_argument(
        "--count",
        type=int,
        default=1,
        help="processes sharing the port (0 = one per CPU; default 1)",
    )
    parser.add_argument(
        "--locator",
        default=os.environ.get("COCAINE_LOCATOR", "localhost:10053"),
        help="the runtime's locator, HOST:PORT (default localhost:10053)",
    )
    parser.add_argument(
        "--runtime-dir",
        default=os.environ.get(RUNTIME_DIR_ENV) or None,
        help="the runtime's socket directory (<state dir>/run): apps on this machine are "
        "reached through their unix sockets there, not loopback TCP "
        "(default $COCAINE_RUNTIME_DIR, else TCP only)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=30.0,
        help="seconds before a request is answered 504 (default 30)",
    )
    parser.add_argument(
        "--max-body",
        type=int,
        default=16 * 1024 * 1024,
        help="largest request body in bytes (413 beyond; default 16 MiB)",
    )
    parser.add_argument(
        "--max-header",
        type=int,
        default=64 * 1024,
        help="largest request head in bytes (431 beyond; default 64 KiB)",
    )
    parser.add_argument(
        "--max-output",
        type=int,
        default=32 * 1024 * 1024,
        help="reply bytes a client may leave unread before it is cut off (default 32 MiB)",
    )
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    if not 0 <= args.port < 65536:
        parser.error(f"--port {args.port} is out of range")
    if args.count < 0:
        parser.error("--count must be >= 0")
    if args.timeout <= 0:
        parser.error("--timeout must be > 0")
    try:
        args.locator = tuple(parse_endpoints(args.locator))
    except ValueError as exc:
        parser.error(f"--locator: {exc}")
    for host, port in args.locator:
        try:
            socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            parser.error(f"--locator: cannot resolve {host!r}: {exc.strerror}")
    return args


def _supervise(argv: list[str], count: int) -> int:
    """Run ``count`` proxy processes on one port; forward SIGTERM/SIGINT; wait for them."""
    children = [
        subprocess.Popen([sys.executable, "-m", "cocaine.proxy.main", "--_reuse-port", *argv])
        for _ in range(count)
    ]

    def forward(signum: int, _: object) -> None:
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    codes = [child.wait() for child in children]
    return max(codes, default=0)


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    reuse = "--_reuse-port" in argv
    if reuse:
        argv.remove("--_reuse-port")
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    count = args.count or os.cpu_count() or 1
    if count > 1 and not reuse:
        sys.exit(_supervise([a for a in argv], count))
    config = ProxyConfig(
        host=args.host,
        port=args.port,
        locator=args.locator,
        runtime_dir=args.runtime_dir,
        timeout=args.timeout,
        max_body=args.max_body,
        max_header=args.max_header,
        max_output=args.max_output,
        reuse_port=reuse,
    )
    try:
        run_loop(serve(config))
    except OSError as exc:
        print(
            f"cocaine-proxy: cannot listen on port {args.port}: {exc.strerror or exc}",
            file=sys.stderr,
        )
        sys.exit(1)


if __name__ == "__main__":
    main()
