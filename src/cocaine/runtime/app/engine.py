"""The engine of one app: a bounded FIFO queue, a pool of slaves, and the rules that size it.

* Enqueue: an event goes straight to the least-loaded active slave below ``concurrency``;
  otherwise it waits in the queue (``queue-limit``; beyond it: ``[0x52FF, 1] queue is full``).
* Deadlines: ``request_timeout`` header (ms) or the profile's ``request-timeout``. An event
  that expires in the queue is answered with the deadline error and never reaches a worker.
* Pool target, after every enqueue, death, handshake or control change: the manual target when
  one is set through ``control``; else ``queue / grow-threshold`` (or, with no queue limit, what
  the queue needs beyond the vacant slots), clamped to ``[1, pool-limit]``. Nothing is spawned
  before the first enqueue, nor while the respawn backoff runs (1 s doubling to 32 s after
  abnormal deaths less than 32 s apart).
* A worker that dies before its handshake while no other worker is alive fails the queued
  events with its error (spawn or activate timeout …) instead of leaving them to their deadline.
* Idle workers are sealed after ``idle-timeout`` without work, down to one.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import time
import uuid as uuidlib
from collections import deque
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from cocaine.errors import Category, CocaineError, app_stopped, queue_is_full
from cocaine.errors import Slave as SlaveCode
from cocaine.protocol.headers import Header, request_timeout
from cocaine.rpc.channel import Channel
from cocaine.rpc.connection import RUNTIME_DIR_ENV
from cocaine.rpc.deadlines import Deadlines
from cocaine.runtime.app.crashlog import store_crashlog
from cocaine.runtime.app.invocation import Invocation, Phase
from cocaine.runtime.app.manifest import Manifest
from cocaine.runtime.app.profile import Profile
from cocaine.runtime.app.slave import Slave, State
from cocaine.runtime.isolate.base import Handle, Isolate
from cocaine.runtime.services.storage import Backend

log = logging.getLogger(__name__)
_wall_clock: Final = time.time  # an event's birth stamp, as the info report shows its age

BACKOFF_MIN, BACKOFF_MAX = 1.0, 32.0


class Engine:
    def __init__(
        self,
        name: str,
        profile: Profile,
        manifest: Manifest,
        workdir: Path,
        isolate: Isolate,
        storage: Backend,
        socket_path: str,
        locator: str,
        env: Mapping[str, str],
    ) -> None:
        self.name = name
        self.profile = profile
        self.manifest = manifest
        self.workdir = workdir
        self.isolate = isolate
        self.storage = storage
        self.socket_path = socket_path
        self.locator = locator
        self.env = dict(env)
        # Our worker framework heartbeats at a third of this (original workers use 20 s).
        self.env["COCAINE_HEARTBEAT_TIMEOUT"] = str(profile.heartbeat_timeout)
        # Services the app calls are reached through the runtime's unix sockets.
        self.env[RUNTIME_DIR_ENV] = os.path.dirname(socket_path)
        self.loop = asyncio.get_running_loop()
        self.deadlines: Deadlines[Invocation] = Deadlines(self.loop)
        self.queue: deque[Invocation] = deque()
        self.slaves: dict[str, Slave] = {}
        self.manual_target = 0
        self.accepted = 0
        self.rejected = 0
        self.stopping = False
        self._demanded = False
        self._backoff = 0.0
        self._last_failure = -math.inf
        self._backoff_timer: asyncio.TimerHandle | None = None
        self._idle_timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self.started = time.monotonic()

    # -- enqueue --------------------------------------------------------------------------

    def enqueue(self, client: Channel, event: str, headers: list[Header]) -> Invocation | None:
        if self.stopping:
            client.send(1, app_stopped().to_wire())
            return None
        now = self.loop.time()
        timeout = request_timeout(headers) or self.profile.request_timeout
        invocation = Invocation(client, event, headers, _wall_clock(), now + timeout)
        invocation.on_done = self._done
        self._demanded = True
        slave = None if self.queue else self._pick()
        if slave is not None:
            self.accepted += 1
            invocation.timer = self.deadlines.add(invocation, invocation.deadline)
            slave.inject(invocation)
            return invocation if invocation.phase is not Phase.DONE else None
        if self._queue_full():
            self.rejected += 1
            client.send(1, queue_is_full().to_wire())
            return None
        self.accepted += 1
        self.queue.append(invocation)
        invocation.timer = self.deadlines.add(invocation, invocation.deadline)
        self.rebalance()
        return invocation

    def _queue_full(self) -> bool:
        limit = self.profile.queue_limit
        if limit > 0:
            return len(self.queue) >= limit
        capacity = self.profile.pool_limit * self.profile.concurrency
        return len(self.queue) + sum(s.load for s in self.slaves.values()) >= capacity

    def _pick(self) -> Slave | None:
        best: Slave | None = None
        for slave in self.slaves.values():
            if slave.available and (best is None or slave.load < best.load):
                best = slave
        return best

    def _done(self, invocation: Invocation) -> None:
        slave = invocation.slave
        if slave is None:
            if invocation in self.queue:
                self.queue.remove(invocation)
            return
        slave.release(invocation)
        if not slave.invocations:
            self._arm_idle()
        self.assign()

    def assign(self) -> None:
        """Hand queued events to free slaves, oldest first."""
        queue = self.queue
        while queue:
            slave = self._pick()
            if slave is None:
                return
            invocation = queue.popleft()
            if invocation.phase is not Phase.QUEUED:
                continue
            if self.loop.time() >= invocation.deadline:
                invocation.expire()
                continue
            slave.inject(invocation)

    # -- pool -----------------------------------------------------------------------------

    @property
    def pool(self) -> list[Slave]:
        """Slaves that count toward the pool: not sealing, terminating or closed."""
        live = (State.SPAWNING, State.HANDSHAKING, State.ACTIVE)
        return [s for s in self.slaves.values() if s.state in live]

    def target(self) -> int:
        profile = self.profile
        pool = self.pool
        if self.manual_target > 0:
            return min(self.manual_target, profile.pool_limit)
        if profile.queue_limit > 0:
            wanted = len(self.queue) // profile.threshold
        else:
            vacant = len(pool) * profile.concurrency - sum(s.load for s in pool)
            wanted = len(pool) + math.ceil((len(self.queue) - vacant) / profile.concurrency)
        return max(1, min(wanted, profile.pool_limit))

    def rebalance(self) -> None:
        if self.stopping or not self._demanded:
            return
        target = self.target()
        pool = self.pool
        if self.manual_target > 0 and len(pool) > target:
            active = sorted((s for s in pool if s.state is State.ACTIVE), key=lambda s: s.load)
            for slave in active[: len(pool) - target]:
                slave.seal()
            return
        if self._backoff_timer is not None:
            return
        for _ in range(target - len(pool)):
            self._spawn_slave()

    def _spawn_slave(self) -> None:
        slave = Slave(self, str(uuidlib.uuid4()))
        self.slaves[slave.uuid] = slave
        task = self.loop.create_task(slave.life(), name=f"slave-{self.name}-{slave.uuid}")
        slave.task = task
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        log.info(
            "app %s: spawning worker %s (pool %d/%d)",
            self.name,
            slave.uuid,
            len(self.pool),
            self.profile.pool_limit,
        )

    async def spawn(self, slave: Slave) -> Handle:
        argv = [
            "--app",
            self.name,
            "--endpoint",
            self.socket_path,
            "--locator",
            self.locator,
            "--protocol",
            "1",
            "--uuid",
            slave.uuid,
        ]
        on_output = None
        if self.profile.log_output:

            def on_output(line: str) -> None:
                log.info("app %s: worker %s: %s", self.name, slave.uuid[:8], line)

        return await self.isolate.spawn(
            self.workdir,
            self.manifest.slave,
            argv,
            self.env,
            output_lines=self.profile.crashlog_limit,
            on_output=on_output,
        )

    def slave_active(self, slave: Slave) -> None:
        self.assign()
        self._arm_idle()

    def slave_closed(self, slave: Slave, abnormal: bool) -> None:
        self.slaves.pop(slave.uuid, None)
        if abnormal and not slave.activated and not self.pool:
            # The only candidate failed to start (spawn or handshake): answer the queue now
            # rather than keep it waiting out the backoff and its request timeout.
            error = slave.error or CocaineError(
                "the worker failed to start", Category.SLAVE, SlaveCode.UNKNOWN_ACTIVATE_ERROR
            )
            while self.queue:
                self.queue.popleft().fail(error)
        if abnormal:
            self._schedule_backoff()
            if slave.handle is not None:
                task = self.loop.create_task(
                    store_crashlog(self.storage, self.name, slave.uuid, list(slave.handle.output))
                )
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        self.rebalance()

    def _schedule_backoff(self) -> None:
        now = self.loop.time()
        if self._backoff_timer is not None:
            # Deaths while the timer runs (a whole pool failing at once) count as one failure.
            self._last_failure = now
            return
        if now - self._last_failure < BACKOFF_MAX:
            self._backoff = min(BACKOFF_MAX, max(BACKOFF_MIN, self._backoff * 2))
        else:
            self._backoff = BACKOFF_MIN
        self._last_failure = now
        self._backoff_timer = self.loop.call_later(self._backoff, self._backoff_over)
        log.info("app %s: respawn in %.0f s", self.name, self._backoff)

    def _backoff_over(self) -> None:
        self._backoff_timer = None
        self.rebalance()

    def set_manual_target(self, target: int) -> None:
        self.manual_target = max(0, target)
        self._demanded = self._demanded or target > 0
        self.rebalance()
        if self.manual_target == 0:
            self._arm_idle()  # back to automatic: workers kept for the manual target may idle out

    # -- idle shrink ----------------------------------------------------------------------

    def _arm_idle(self) -> None:
        if self._idle_timer is not None or self.stopping:
            return
        self._idle_timer = self.loop.call_later(self.profile.idle_timeout, self._idle_check)

    def _idle_check(self) -> None:
        self._idle_timer = None
        now = time.monotonic()
        limit = self.profile.idle_timeout
        pool = self.pool
        keep = max(1, self.manual_target)
        idle = [
            s
            for s in pool
            if s.state is State.ACTIVE
            and not s.invocations
            and s.idle_since is not None
            and now - s.idle_since >= limit
        ]
        for slave in idle[: max(0, len(pool) - keep)]:
            log.info("app %s: worker %s is idle; stopping it", self.name, slave.uuid)
            slave.seal(SlaveCode.IDLE, "slave is idle")
        if any(s.state is State.ACTIVE for s in self.pool) and len(self.pool) > keep:
            self._arm_idle()

    # -- stop -----------------------------------------------------------------------------

    async def stop(self) -> None:
        """Refuse new events, fail the queue, drain and terminate every slave."""
        self.stopping = True
        for timer in (self._backoff_timer, self._idle_timer):
            if timer is not None:
                timer.cancel()
        while self.queue:
            self.queue.popleft().fail(app_stopped())
        for slave in list(self.slaves.values()):
            slave.seal(SlaveCode.OVERSEER_SHUTDOWN, "overseer is shutting down")
        tasks = [s.task for s in self.slaves.values() if s.task is not None]
        profile = self.profile
        grace = profile.seal_timeout + profile.terminate_timeout + 2 * 5.0
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=grace)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=10)
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5)
        self.deadlines.close()

    # -- report ---------------------------------------------------------------------------

    def report(self) -> dict[str, Any]:
        profile = self.profile
        slaves = {s.uuid: s.report() for s in self.slaves.values()}
        active = sum(1 for s in self.slaves.values() if s.state is State.ACTIVE)
        idle = sum(1 for s in self.slaves.values() if s.state is State.ACTIVE and not s.load)
        oldest = self.queue[0].birth if self.queue else None
        return {
            "queue": {
                "capacity": profile.queue_limit,
                "depth": len(self.queue),
                "oldest_event_age": round((time.time() - oldest) * 1000) if oldest else 0,
            },
            "pool": {
                "active": active,
                "idle": idle,
                "capacity": profile.pool_limit,
                "target": self.target() if self._demanded else 0,
                "slaves": slaves,
            },
            "requests": {"accepted": self.accepted, "rejected": self.rejected},
            "load": sum(s.load for s in self.slaves.values()),
            "backoff": self._backoff if self._backoff_timer is not None else 0,
        }


def worker_environment(manifest: Manifest) -> dict[str, str]:
    """The runtime's environment plus the manifest's; Python workers find this package."""
    import sys

    import cocaine

    env = dict(os.environ)
    bindir = str(Path(sys.executable).parent)
    env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
    package_root = str(Path(cocaine.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    env.setdefault("PYTHONUNBUFFERED", "1")
    env.pop("COCAINE_LOCATOR", None)
    env.pop(RUNTIME_DIR_ENV, None)
    env.update(manifest.environment)
    return env


__all__ = ["Engine", "worker_environment"]
