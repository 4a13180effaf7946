#!/usr/bin/env python3
"""Cocaine for Python benchmark: our paths against baselines measured in the same run.

    .venv/bin/python bench/run.py [--quick] [--duration S] [--runs N] [--requests N]
                                  [--wait-quiet S] [--py-spy DIR] [--json FILE]

Every system starts on loopback with ephemeral ports; they then take turns, round after round,
so drifting background load hits them alike; then each is stopped (all subprocesses are
killed by pid in ``finally`` blocks; every measurement is bounded in time).
The table at the end gives each figure, the baseline it is compared with, the ratio and the
target from DESIGN.md §5. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import platform
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack

HERE = Path(__file__).resolve().parent
BASELINES = HERE / "baselines"
APP_DIR = HERE / "apps" / "bench"
PY = sys.executable
BIN = Path(sys.executable).parent
WRK = "wrk"
CLK_TCK = os.sysconf("SC_CLK_TCK")
# One worker, never queueing at 32 in flight: the same shape as the one-hop baseline.
PROFILE = {"pool-limit": 1, "concurrency": 64, "queue-limit": 1024, "idle-timeout": 600}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# -- processes ---------------------------------------------------------------------------------


def children_of(pid: int) -> list[int]:
    """Every descendant of pid (workers run in their own sessions, so groups do not do)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry))
    out: list[int] = []
    todo = [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    out: Path
    err: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def text(self) -> str:
        return self.out.read_text(errors="replace") + self.err.read_text(errors="replace")

    def wait_for(self, pattern: str, timeout: float = 20.0) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = re.search(pattern, self.text())
            if match:
                return match
            if self.popen.poll() is not None:
                break
            time.sleep(0.02)
        raise RuntimeError(f"{self.name} did not become ready:\n{self.text()[-2000:]}")

    def stop(self, timeout: float = 10.0) -> None:
        if self.popen.poll() is not None:
            return
        descendants = children_of(self.pid)
        self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(5)
        deadline = time.monotonic() + 5
        for pid in descendants:  # the runtime should have stopped its workers; make sure
            while alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if alive(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass


class Procs:
    """Every process this run started; stop_all() in a finally block."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.running: list[Proc] = []
        self.n = 0

    def start(self, name: str, argv: Sequence[str], **kw: Any) -> Proc:
        self.n += 1
        out = self.workdir / f"{self.n:02d}-{name}.out"
        err = self.workdir / f"{self.n:02d}-{name}.err"
        popen = subprocess.Popen(
            list(argv),
            stdout=out.open("wb"),
            stderr=err.open("wb"),
            stdin=subprocess.DEVNULL,
            **kw,
        )
        proc = Proc(name, popen, out, err)
        self.running.append(proc)
        return proc

    def stop(self, proc: Proc) -> None:
        proc.stop()
        if proc in self.running:
            self.running.remove(proc)

    def stop_all(self) -> None:
        for proc in reversed(self.running):
            try:
                proc.stop()
            except Exception as exc:  # keep stopping the others
                log(f"stopping {proc.name}: {exc!r}")
        self.running.clear()


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def cpu_split(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of pid so far."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0, 0.0
    return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK


def cpu_seconds(pid: int) -> float:
    return sum(cpu_split(pid))


def syscalls(pid: int) -> tuple[int, int]:
    """(read-like, write-like) system calls made so far, from /proc/<pid>/io."""
    try:
        with open(f"/proc/{pid}/io") as f:
            values = dict(line.split(":") for line in f)
    except OSError:
        return 0, 0
    return int(values["syscr"]), int(values["syscw"])


def machine_busy() -> float:
    """Busy CPU seconds of the whole machine so far (all cores, from /proc/stat)."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / CLK_TCK


class CpuMeter:
    """CPU used over an interval, as % of one core: by the named processes, by the children
    this script waited for meanwhile (the load generator: wrk or a client), and by the whole
    machine (so what other tenants used shows)."""

    def __init__(self, pids: Callable[[], dict[str, int]], children: str = "") -> None:
        self.pids = pids
        self.children = children

    def __enter__(self) -> CpuMeter:
        self.named = self.pids()
        self.start = {n: cpu_seconds(p) for n, p in self.named.items()}
        self.sys_start = {n: cpu_split(p)[1] for n, p in self.named.items()}
        self.io_start = {n: syscalls(p) for n, p in self.named.items()}
        self.rusage = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.busy = machine_busy()
        self.t0 = time.monotonic()
        return self

    def __exit__(self, *exc: object) -> None:
        elapsed = time.monotonic() - self.t0
        usage = {}
        self.io: dict[str, tuple[int, int]] = {}
        self.system: dict[str, float] = {}  # share of each process's CPU spent in the kernel
        for name, pid in self.named.items():
            if alive(pid):
                used = cpu_seconds(pid) - self.start[name]
                usage[name] = 100 * used / elapsed
                kernel = cpu_split(pid)[1] - self.sys_start[name]
                self.system[name] = 100 * kernel / used if used > 0 else 0.0
                (r0, w0), (r1, w1) = self.io_start[name], syscalls(pid)
                self.io[name] = (r1 - r0, w1 - w0)
        if self.children:
            ru = resource.getrusage(resource.RUSAGE_CHILDREN)
            used = ru.ru_utime + ru.ru_stime - self.rusage.ru_utime - self.rusage.ru_stime
            usage[self.children] = 100 * used / elapsed
        usage["whole machine"] = 100 * (machine_busy() - self.busy) / elapsed
        self.usage = usage


# -- load generators ---------------------------------------------------------------------------


@dataclass
class WrkResult:
    rps: float
    p99_ms: float
    errors: int
    requests: int


_UNIT = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def run_wrk(url: str, duration: float) -> WrkResult:
    argv = [WRK, "-t1", "-c32", f"-d{max(1, round(duration))}s", "--latency", url]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        out, _ = proc.communicate(timeout=duration + 60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    rps = re.search(r"Requests/sec:\s*([\d.]+)", out)
    p99 = re.search(r"\s99%\s+([\d.]+)(us|ms|s)\b", out)
    total = re.search(r"(\d+) requests in", out)
    if not (rps and p99 and total):
        raise RuntimeError(f"cannot parse wrk output:\n{out}")
    errors = 0
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if sock:
        errors += sum(int(x) for x in sock.groups())
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx:
        errors += int(non2xx.group(1))
    return WrkResult(
        float(rps.group(1)),
        float(p99.group(1)) * _UNIT[p99.group(2)],
        errors,
        int(total.group(1)),
    )


@dataclass
class HttpFigure:
    runs: list[WrkResult] = field(default_factory=list)

    @property
    def rps(self) -> float:
        return statistics.median(r.rps for r in self.runs)

    @property
    def p99_ms(self) -> float:
        return statistics.median(r.p99_ms for r in self.runs)

    @property
    def errors(self) -> int:
        return sum(r.errors for r in self.runs)


def measure_wrk(
    url: str, duration: float, meter_pids: Callable[[], dict[str, int]]
) -> tuple[WrkResult, dict[str, float], dict[str, tuple[float, float]]]:
    """One wrk run; the CPU use of each process and its system calls per request."""
    meter = CpuMeter(meter_pids, children="wrk")
    with meter:
        result = run_wrk(url, duration)
    usage = dict(meter.usage)
    usage.update({f"{k} (kernel share)": v for k, v in meter.system.items()})
    n = max(1, result.requests)
    return result, usage, {k: (r / n, w / n) for k, (r, w) in meter.io.items()}


def run_json(argv: Sequence[str], timeout: float) -> dict[str, Any]:
    out = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, check=False)
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    if out.returncode != 0 or not lines:
        raise RuntimeError(f"{argv[1]} failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
    return json.loads(lines[-1])  # type: ignore[no-any-return]


# -- our system --------------------------------------------------------------------------------


def app_archive() -> bytes:
    buf = io.BytesIO()

    def skip_cache(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
        return None if "__pycache__" in info.name else info

    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(str(APP_DIR), arcname="", filter=skip_cache)
    return buf.getvalue()


async def deploy(locator: str, names: Sequence[str], start: Sequence[str]) -> None:
    from cocaine.client import Service

    storage = Service("storage", locator=locator)
    node = Service("node", locator=locator)
    archive = msgpack.packb(app_archive(), use_bin_type=False)
    manifest = msgpack.packb(json.loads((APP_DIR / "manifest.json").read_text()))
    for name in names:
        await storage.write("apps", name, archive, ["app"])
        await storage.write("manifests", name, manifest, ["app"])
    await storage.write("profiles", "bench", msgpack.packb(PROFILE), ["profile"])
    for name in start:
        await node.start_app(name, "bench")
    storage.close()
    node.close()


async def first_requests(locator: str, names: Sequence[str]) -> list[float]:
    """Start each app (no worker yet) and time its first enqueue's full reply, in ms."""
    from cocaine.client import Service

    node = Service("node", locator=locator)
    times = []
    for name in names:
        await node.start_app(name, "bench")
        info = await node.info(name, 1)
        if info.get("pool", {}).get("active", 0):
            raise RuntimeError(f"app {name} has a worker before its first request: {info}")
        t0 = time.perf_counter()
        app = Service(name, locator=locator)
        ch = await app.enqueue("echo")
        await ch.tx.write(b"first")
        await ch.tx.close()
        reply = [c async for c in ch.rx]
        elapsed = (time.perf_counter() - t0) * 1000
        if reply != [b"first"]:
            raise RuntimeError(f"unexpected first reply {reply!r}")
        times.append(elapsed)
        app.close()
        await node.pause_app(name)
    node.close()
    return times


def start_runtime(procs: Procs, workdir: Path, tag: str) -> tuple[Proc, str]:
    state = workdir / f"state-{tag}"
    state.mkdir()
    proc = procs.start(
        f"runtime-{tag}",
        [
            str(BIN / "cocaine-runtime"),
            "--port",
            "0",
            "--endpoint",
            "127.0.0.1",
            "--state-dir",
            str(state),
        ],
    )
    match = proc.wait_for(r"cocaine-runtime: ready, locator on ([\d.]+:\d+)")
    return proc, match.group(1)


def start_proxy(procs: Procs, locator: str, runtime_dir: str | None) -> tuple[Proc, int]:
    argv = [str(BIN / "cocaine-proxy"), "--port", "0", "--host", "127.0.0.1", "--locator", locator]
    if runtime_dir:
        argv += ["--runtime-dir", runtime_dir]
    proc = procs.start("proxy", argv)
    return proc, int(proc.wait_for(r"cocaine-proxy: ready on port (\d+)").group(1))


def py_spy(pids: dict[str, int], seconds: float, outdir: Path) -> list[subprocess.Popen[bytes]]:
    outdir.mkdir(parents=True, exist_ok=True)
    spies = []
    for name, pid in pids.items():
        spies.append(
            subprocess.Popen(
                [
                    str(BIN / "py-spy"),
                    "record",
                    "--pid",
                    str(pid),
                    "--duration",
                    str(max(1, round(seconds))),
                    "--rate",
                    "250",
                    "--nonblocking",
                    "--format",
                    "raw",
                    "--output",
                    str(outdir / f"{name}.txt"),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
    return spies


def summarize_spy(path: Path, top: int = 12) -> list[tuple[str, float, float]]:
    """(function, self %, inclusive %) from py-spy's collapsed stacks, biggest self first."""
    own: dict[str, int] = {}
    incl: dict[str, int] = {}
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = [re.sub(r":\d+\)$", ")", f) for f in stack.split(";")]
        own[frames[-1]] = own.get(frames[-1], 0) + count
        for frame in set(frames):
            incl[frame] = incl.get(frame, 0) + count
    if not total:
        return []
    ranked = sorted(own.items(), key=lambda kv: -kv[1])[:top]
    return [(f, 100 * n / total, 100 * incl[f] / total) for f, n in ranked]


# -- the table ---------------------------------------------------------------------------------


@dataclass
class Row:
    figure: str
    ours: float | None
    unit: str
    baseline: float | None = None
    baseline_name: str = ""
    target: str = ""
    met: bool | None = None


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    if unit in ("req/s", "calls/s"):
        return f"{value:,.0f} {unit}"
    if unit in ("µs", "ms") and value < 10:
        return f"{value:.2f} {unit}"
    if unit == "MB":
        return f"{value:+.1f} MB" if value < 0 else f"{value:.1f} MB"
    if unit == "":
        return f"{value:,.0f}"
    return f"{value:,.1f} {unit}"


def table(rows: list[Row]) -> str:
    head = [
        "figure",
        "ours",
        "baseline (same run)",
        "ours ÷ baseline",
        "target (DESIGN §5)",
        "met?",
    ]
    body = []
    for r in rows:
        ratio = "—"
        if r.ours is not None and r.baseline:
            ratio = f"{r.ours / r.baseline:.2f}×"
        base = fmt(r.baseline, r.unit) if r.baseline is not None else "—"
        if r.baseline_name:
            base = f"{base} ({r.baseline_name})"
        met = "—" if r.met is None else ("yes" if r.met else "**no**")
        body.append([r.figure, fmt(r.ours, r.unit), base, ratio, r.target, met])
    widths = [max(len(x[i]) for x in [head, *body]) for i in range(len(head))]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(head), sep, *(line(b) for b in body)])


# -- the run -----------------------------------------------------------------------------------


def machine() -> str:
    model = "unknown CPU"
    try:
        for ln in Path("/proc/cpuinfo").read_text().splitlines():
            if ln.startswith("model name"):
                model = ln.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{os.cpu_count()} CPUs ({model}), {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}"
    )


def wait_quiet(limit: float, busy_below: float = 25.0, windows: int = 3) -> float:
    """Wait (at most ``limit`` s) until the machine stays under ``busy_below`` % of one core
    busy for ``windows`` consecutive 3 s windows; the business last seen."""
    deadline = time.monotonic() + limit
    quiet = 0
    while True:
        b0 = machine_busy()
        time.sleep(3)
        busy = 100 * (machine_busy() - b0) / 3
        quiet = quiet + 1 if busy < busy_below else 0
        if quiet >= windows or time.monotonic() >= deadline:
            return busy
        if not quiet:
            log(f"machine busy ({busy:.0f}% of a core used by others); waiting")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="1 wrk run of 5 s each, 100k requests")
    parser.add_argument("--duration", type=float, help="seconds per wrk / RPC-rate run")
    parser.add_argument("--runs", type=int, help="wrk runs per HTTP system (median taken)")
    parser.add_argument("--requests", type=int, help="requests for the memory test")
    parser.add_argument("--calls", type=int, help="sequential calls for the 1-in-flight figure")
    parser.add_argument("--py-spy", metavar="DIR", help="also profile proxy/runtime/worker")
    parser.add_argument(
        "--tcp",
        action="store_true",
        help="proxy and RPC client use loopback TCP, not the runtime's unix sockets",
    )
    parser.add_argument("--json", metavar="FILE", help="write every figure as JSON here")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=0,
        metavar="S",
        help="first wait up to S seconds for other processes to leave the CPUs idle",
    )
    args = parser.parse_args()
    duration = args.duration or (5.0 if args.quick else 10.0)
    runs = args.runs or (1 if args.quick else 3)
    requests = args.requests or (100_000 if args.quick else 1_000_000)
    calls = args.calls or (2_000 if args.quick else 10_000)

    # a SIGTERM (a timeout, a supervisor) unwinds through the finally block that stops everything
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    workdir = Path(tempfile.mkdtemp(prefix="cocaine-bench-"))
    procs = Procs(workdir)
    results: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": machine(),
        "mode": "quick" if args.quick else "full",
        "hop": "loopback TCP" if args.tcp else "unix sockets",
        "duration": duration,
        "runs": runs,
        "requests": requests,
        "calls": calls,
        "cpu": {},
        "syscalls": {},
    }
    if args.wait_quiet:
        results["busy_before"] = wait_quiet(args.wait_quiet)
    results["date"] = time.strftime("%Y-%m-%d %H:%M:%S %Z")  # when measuring began
    started = time.monotonic()
    log(f"bench: {results['mode']} mode, {runs}×{duration:g} s wrk runs, workdir {workdir}")
    try:
        # -- start everything that the rounds compare; idle processes cost nothing
        log("starting the baselines and our runtime + proxy + bench app (pool-limit 1)")
        front = procs.start("front", [PY, str(BASELINES / "front.py")])
        front_port = int(front.wait_for(r"ready (\d+)").group(1))
        results["front_rss_mb"] = rss_mb(front.pid)
        sock = str(workdir / "hop.sock")
        spawn_ms = []
        for _ in range(3):  # also the baseline for first-request latency: a Python server's start
            t0 = time.perf_counter()
            worker = procs.start(
                "hop-worker", [PY, str(BASELINES / "hop_worker.py"), "--socket", sock]
            )
            worker.wait_for(r"ready", timeout=20)
            spawn_ms.append((time.perf_counter() - t0) * 1000)
            if len(spawn_ms) < 3:
                procs.stop(worker)
        results["spawn_ms"] = spawn_ms
        hop = procs.start("front-hop", [PY, str(BASELINES / "front_hop.py"), "--socket", sock])
        hop_port = int(hop.wait_for(r"ready (\d+)").group(1))
        echo = procs.start("rpc-echo", [PY, str(BASELINES / "rpc_echo.py"), "server"])
        echo_port = int(echo.wait_for(r"ready (\d+)").group(1))
        runtime, locator = start_runtime(procs, workdir, "main")
        asyncio.run(deploy(locator, ["bench", "first0", "first1", "first2"], ["bench"]))
        # Same machine: the proxy and the RPC client reach the runtime through its unix sockets
        # (as the apps' workers do), unless --tcp asks for loopback TCP.
        runtime_dir = None if args.tcp else str(workdir / "state-main" / "run")
        unix = [] if runtime_dir is None else ["--runtime-dir", runtime_dir]
        proxy, proxy_port = start_proxy(procs, locator, runtime_dir)

        def our_pids() -> dict[str, int]:
            found = {"runtime": runtime.pid}
            if proxy.popen.poll() is None:
                found["proxy"] = proxy.pid
            for i, pid in enumerate(children_of(runtime.pid)):
                found[f"worker{i or ''}"] = pid
            return found

        # -- HTTP: the three systems take turns, so drifting background load hits all alike
        http_systems = [
            ("front", f"http://127.0.0.1:{front_port}/", lambda: {"front": front.pid}),
            (
                "front_hop",
                f"http://127.0.0.1:{hop_port}/echo/http",
                lambda: {"front": hop.pid, "worker": worker.pid},
            ),
            ("http", f"http://127.0.0.1:{proxy_port}/bench/http", our_pids),
        ]
        for name, url, _ in http_systems:
            run_wrk(url, 1)  # warm up: connections, worker spawn, caches
            results[name] = HttpFigure()
        for i in range(runs):
            log(f"HTTP round {i + 1}/{runs}: front, front + 1 hop, ours")
            for name, url, pids in http_systems:
                result, usage, sc = measure_wrk(url, duration, pids)
                results[name].runs.append(result)
                if i == runs // 2:
                    results["cpu"][name] = usage
                    results["syscalls"][name] = sc
                log(
                    f"  {name}: {result.rps:,.0f} req/s, p99 {result.p99_ms:.2f} ms,"
                    f" errors {result.errors}"
                )
        if args.py_spy:
            log(f"  profiling a wrk run of ours with py-spy into {args.py_spy}")
            spies = py_spy(our_pids(), duration, Path(args.py_spy))
            time.sleep(0.5)
            run_wrk(http_systems[2][1], duration)
            for spy in spies:
                spy.wait(duration + 30)
            results["py_spy"] = {
                p.stem: summarize_spy(p) for p in sorted(Path(args.py_spy).glob("*.txt"))
            }
        procs.stop(proxy)
        procs.stop(front)
        procs.stop(hop)
        procs.stop(worker)

        # -- RPC: raw msgpack and ours take turns too
        raw = [PY, str(BASELINES / "rpc_echo.py"), "client", "--port", str(echo_port)]
        load = [PY, str(HERE / "rpc_load.py")]
        rpc_systems = [
            ("raw", raw, lambda: {"server": echo.pid}),
            ("rpc", [*load, "--locator", locator, *unix], our_pids),
        ]
        ones: dict[str, list[dict[str, float]]] = {"raw": [], "rpc": []}
        manys: dict[str, list[dict[str, float]]] = {"raw": [], "rpc": []}
        for i in range(runs):
            log(f"RPC round {i + 1}/{runs}: raw msgpack, ours")
            for name, argv, pids in rpc_systems:
                mode = ["one"] if name == "rpc" else []
                ones[name].append(run_json([*argv, *mode, "--count", str(calls)], 300))
                mode = ["many"] if name == "rpc" else ["--inflight", "32"]
                meter = CpuMeter(pids, children="client")
                with meter:
                    manys[name].append(
                        run_json([*argv, *mode, "--duration", str(duration)], duration + 120)
                    )
                if i == runs // 2:
                    meter.usage.update({f"{k} (kernel share)": v for k, v in meter.system.items()})
                    results["cpu"][f"{name}_many"] = meter.usage
                log(
                    f"  {name}: {ones[name][-1]['median_us']:.1f} µs one at a time,"
                    f" {manys[name][-1]['rate']:,.0f}/s with 32 in flight"
                )
        for name in ("raw", "rpc"):
            results[f"{name}_one"] = {
                k: statistics.median(x[k] for x in ones[name]) for k in ("median_us", "p99_us")
            }
            results[f"{name}_many"] = {"rate": statistics.median(x["rate"] for x in manys[name])}
            results[f"{name}_runs"] = {"one": ones[name], "many": manys[name]}
        procs.stop(echo)

        log("ours: first request to an app with no worker (3 fresh apps)")
        results["first_ms"] = asyncio.run(first_requests(locator, ["first0", "first1", "first2"]))
        log("  " + ", ".join(f"{t:.0f} ms" for t in results["first_ms"]))
        procs.stop(runtime)

        # -- ours: memory, in a fresh runtime
        log(f"ours: runtime RSS idle and across {requests:,} RPC requests (fresh runtime)")
        runtime, locator = start_runtime(procs, workdir, "memory")
        time.sleep(2)
        results["rss_idle_mb"] = rss_mb(runtime.pid)
        asyncio.run(deploy(locator, ["bench"], ["bench"]))
        run_json([*load, "total", "--locator", locator, "--requests", "10000"], 300)
        time.sleep(1)
        results["rss_before_mb"] = rss_mb(runtime.pid)
        memory = procs.start(
            "memory-load",
            [*load, "total", "--locator", locator, "--requests", str(requests)],
        )
        samples: list[tuple[float, float]] = []
        t0 = time.monotonic()
        limit = t0 + max(600.0, requests / 500)  # bounded even if something is very slow
        while memory.popen.poll() is None and time.monotonic() < limit:
            samples.append((time.monotonic() - t0, rss_mb(runtime.pid)))
            time.sleep(1)
        if memory.popen.poll() is None:
            raise RuntimeError("memory load did not finish in time")
        procs.stop(memory)
        results["rss_load"] = json.loads(
            [ln for ln in memory.out.read_text().splitlines() if ln.startswith("{")][-1]
        )
        time.sleep(1)
        results["rss_after_mb"] = rss_mb(runtime.pid)
        results["rss_samples"] = samples
        results["rss_max_mb"] = max([s[1] for s in samples] + [results["rss_after_mb"]])
        log(
            f"  RSS idle {results['rss_idle_mb']:.1f} MB, before {results['rss_before_mb']:.1f},"
            f" after {results['rss_after_mb']:.1f}, max {results['rss_max_mb']:.1f}"
            f" ({results['rss_load']['rate']:,.0f} calls/s, {results['rss_load']['errors']} errors)"
        )
        procs.stop(runtime)
    finally:
        procs.stop_all()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    results["elapsed_s"] = time.monotonic() - started
    report(results)
    if args.json:
        Path(args.json).write_text(json.dumps(results, default=lambda o: o.__dict__, indent=1))
    return 0


def cpu_per_request(usage: dict[str, float], rate: float) -> dict[str, float]:
    """µs of CPU per request for each measured process (kernel shares and totals left out)."""
    return {
        k: v / 100 / rate * 1e6
        for k, v in usage.items()
        if k != "whole machine" and "(" not in k and rate
    }


def report(r: dict[str, Any]) -> None:
    front, hop, http = r["front"], r["front_hop"], r["http"]
    cpu_http = sum(cpu_per_request(r["cpu"]["http"], http.rps).values())
    cpu_hop = sum(cpu_per_request(r["cpu"]["front_hop"], hop.rps).values())
    cpu_rpc = sum(cpu_per_request(r["cpu"]["rpc_many"], r["rpc_many"]["rate"]).values())
    cpu_raw = sum(cpu_per_request(r["cpu"]["raw_many"], r["raw_many"]["rate"]).values())
    first = statistics.median(r["first_ms"])
    spawn = statistics.median(r["spawn_ms"])
    growth = r["rss_after_mb"] - r["rss_before_mb"]
    rows = [
        Row(
            "HTTP echo, proxy → runtime → worker",
            http.rps,
            "req/s",
            hop.rps,
            "front + 1 hop",
            "≥ 40 % of front + 1 hop",
            http.rps >= 0.4 * hop.rps,
        ),
        Row(
            "HTTP p99 latency, 32 connections",
            http.p99_ms,
            "ms",
            hop.p99_ms,
            "front + 1 hop",
            "≤ 5 ms",
            http.p99_ms <= 5,
        ),
        Row(
            "HTTP errors (socket + non-2xx)",
            http.errors,
            "",
            hop.errors,
            "front + 1 hop",
            "0",
            http.errors == 0,
        ),
        Row(
            "RPC echo, 32 in flight",
            r["rpc_many"]["rate"],
            "calls/s",
            r["raw_many"]["rate"],
            "raw msgpack",
            "≥ 50,000/s",
            r["rpc_many"]["rate"] >= 50_000,
        ),
        Row(
            "RPC echo, 1 in flight (median)",
            r["rpc_one"]["median_us"],
            "µs",
            r["raw_one"]["median_us"],
            "raw msgpack",
            "≤ 150 µs",
            r["rpc_one"]["median_us"] <= 150,
        ),
        Row(
            "RPC echo, 1 in flight (p99)",
            r["rpc_one"]["p99_us"],
            "µs",
            r["raw_one"]["p99_us"],
            "raw msgpack",
        ),
        Row(
            "CPU per HTTP request, all processes incl. wrk",
            cpu_http,
            "µs",
            cpu_hop,
            "front + 1 hop",
        ),
        Row(
            "CPU per RPC call, all processes incl. client (≈)",
            cpu_rpc,
            "µs",
            cpu_raw,
            "raw msgpack",
        ),
        Row(
            "first request, no worker running (median of 3)",
            first,
            "ms",
            spawn,
            "bare Python server start",
            "≤ 300 ms",
            max(r["first_ms"]) <= 300,
        ),
        Row(
            "runtime RSS, idle after start",
            r["rss_idle_mb"],
            "MB",
            r["front_rss_mb"],
            "idle minimal front",
            "≤ 40 MB",
            r["rss_idle_mb"] <= 40,
        ),
        Row(
            f"runtime RSS after {r['requests']:,} requests",
            r["rss_after_mb"],
            "MB",
            r["rss_before_mb"],
            "before them",
        ),
        Row("runtime RSS growth across them", growth, "MB", None, "", "flat (≤ 5 MB)", growth <= 5),
    ]
    print()
    print(
        f"Cocaine for Python benchmark — {r['date']} — {r['mode']} mode "
        f"({r['runs']} × {r['duration']:g} s wrk runs, {r['calls']:,} sequential calls, "
        f"{r['requests']:,} requests for memory; {r['elapsed_s']:.0f} s in all)"
    )
    print(f"machine: {r['machine']}")
    print(f"proxy → runtime and RPC client → runtime over {r.get('hop', 'loopback TCP')}")
    print()
    print(table(rows))
    print()
    print("Baselines measured in this run:")
    print(
        f"- minimal uvloop + httptools front answering itself: {front.rps:,.0f} req/s,"
        f" p99 {front.p99_ms:.2f} ms"
    )
    print(
        f"- the same front + one unix-socket msgpack hop to a worker: {hop.rps:,.0f} req/s,"
        f" p99 {hop.p99_ms:.2f} ms ({hop.rps / front.rps:.0%} of the front)"
    )
    print(
        f"- ours is {http.rps / front.rps:.0%} of the minimal front and"
        f" {http.rps / hop.rps:.0%} of the one-hop front"
    )
    print(
        f"- raw msgpack RPC: {r['raw_one']['median_us']:.1f} µs one at a time,"
        f" {r['raw_many']['rate']:,.0f}/s with 32 coroutines in flight"
    )
    print(
        f"- a bare Python (uvloop + msgpack) server starts in {spawn:.0f} ms "
        f"(runs: {', '.join(f'{t:.0f}' for t in r['spawn_ms'])}); our first requests: "
        f"{', '.join(f'{t:.0f}' for t in r['first_ms'])} ms"
    )
    print(
        f"- memory run: {r['rss_load']['count']:,} calls at {r['rss_load']['rate']:,.0f}/s, "
        f"{r['rss_load']['errors']} errors; RSS max {r['rss_max_mb']:.1f} MB"
    )
    print()
    print(
        "CPU per process during the runs (% of one core; in brackets the part of it spent in"
        f" the kernel; the machine has {os.cpu_count()} cores):"
    )
    disturbed = []
    for name, usage in r["cpu"].items():
        procs = {k: v for k, v in usage.items() if k != "whole machine" and "(" not in k}
        ours = sum(procs.values())
        others = usage.get("whole machine", 0) - ours
        parts = ", ".join(
            f"{k} {v:.0f}%"
            + (
                f" (kernel {usage[k + ' (kernel share)']:.0f}%)"
                if k + " (kernel share)" in usage
                else ""
            )
            for k, v in procs.items()
        )
        print(f"- {name}: {parts}; other processes on the machine {max(0, others):.0f}%")
        if others > 20:
            disturbed.append(name)
    print()
    print("CPU time per request, µs (process CPU ÷ requests served; for RPC approximate: the")
    print("client's warm-up is included):")
    rates = {
        "front": front.rps,
        "front_hop": hop.rps,
        "http": http.rps,
        "raw_many": r["raw_many"]["rate"],
        "rpc_many": r["rpc_many"]["rate"],
    }
    for name, usage in r["cpu"].items():
        rate = rates.get(name)
        if not rate:
            continue
        per = cpu_per_request(usage, rate)
        parts = ", ".join(f"{k} {v:.1f}" for k, v in per.items())
        print(f"- {name}: {parts}; total {sum(per.values()):.1f}")
    print()
    print(
        "System calls per HTTP request (reads + writes, from /proc/<pid>/io; wrk's own not "
        "counted):"
    )
    for name, per_req in r["syscalls"].items():
        parts = ", ".join(f"{k} {rd:.2f} + {wr:.2f}" for k, (rd, wr) in per_req.items())
        total = sum(rd + wr for rd, wr in per_req.values())
        print(f"- {name}: {parts} = {total:.2f}")
    if disturbed:
        print()
        print(
            f"WARNING: other processes used more than 20% of a core during: "
            f"{', '.join(disturbed)}. The figures are disturbed; rerun on a quiet machine."
        )
    if r.get("py_spy"):
        print()
        print("py-spy, top functions by own time during one wrk run (self %, inclusive %):")
        for proc, rows_ in r["py_spy"].items():
            print(f"- {proc}:")
            for fn, own, incl in rows_:
                print(f"    {own:5.1f}% {incl:5.1f}%  {fn}")


if __name__ == "__main__":
    sys.exit(main())
