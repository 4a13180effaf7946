"""Garbage in, nothing out of bounds: the codec under hypothesis, the runtime under bad bytes.

In memory, the frame decoder and the header decoder are fed arbitrary input and must fail only
with ``TransportError`` (and stay failed). Against a real runtime, raw sockets send random bytes
and hand-made frames (``msgpack.packb`` lists) that break the protocol one rule at a time; each
test checks what happens to the offending connection and that everything else keeps working.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
from datetime import timedelta
from pathlib import Path
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cocaine.client import Service
from cocaine.errors import TransportError
from cocaine.protocol.framing import DEFAULT_MAX_FRAME_SIZE, Frame, FrameDecoder
from cocaine.protocol.headers import HeaderDecoder
from support.processes import RuntimeProcess

DEADLINE = 10.0  # seconds a well-behaved runtime has to answer or hang up; never slept


def pack(obj: Any) -> bytes:
    return msgpack.packb(obj, use_bin_type=False)


# -- the codec, in memory -----------------------------------------------------------------------

VALID_FRAMES = [
    pack([1, 0, [b"collection", b"key"], []]),
    pack([7, 1, [b"c", b"k", b"blob" * 10, [b"tag"]], [[True, b"x-custom", b"v"], 23]]),
    pack([2, 65533, []]),
    pack([3, 0, [[1, 2], {b"a": 1}]]),
]


@st.composite
def hostile_bytes(draw: st.DrawFn) -> bytes:
    """Pure noise, or valid frames with noise spliced in or bytes flipped."""
    noise = draw(st.binary(max_size=512))
    how = draw(st.sampled_from(["noise", "prefix", "flip", "truncate"]))
    if how == "noise":
        return noise
    frames = b"".join(draw(st.lists(st.sampled_from(VALID_FRAMES), min_size=1, max_size=4)))
    if how == "prefix":
        return frames + noise
    if how == "truncate":
        return frames[: draw(st.integers(0, len(frames)))]
    buf = bytearray(frames)
    for _ in range(draw(st.integers(1, 4))):
        buf[draw(st.integers(0, len(buf) - 1))] = draw(st.integers(0, 255))
    return bytes(buf)


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    edges = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(edges)]


@pytest.mark.timeout(60)
@settings(max_examples=400, deadline=timedelta(seconds=2))
@given(
    data=hostile_bytes(),
    cuts=st.lists(st.integers(0, 4096), max_size=12),
    limit=st.sampled_from([1024, 4096, DEFAULT_MAX_FRAME_SIZE]),
)
def test_frame_decoder_fails_only_with_transport_error_and_stays_broken(
    data: bytes, cuts: list[int], limit: int
) -> None:
    decoder = FrameDecoder(max_frame_size=limit)
    failure: TransportError | None = None
    for chunk in split(data, cuts):
        try:
            frames = decoder.feed(chunk)
        except TransportError as exc:
            failure = exc
            break
        assert all(isinstance(f, Frame) for f in frames)
        assert decoder.pending <= limit  # buffered bytes never exceed one frame's limit
    if failure is None:
        return
    assert failure.category == 6 and failure.code in (1, 2, 3, 4)
    for more in (b"", VALID_FRAMES[0], data):
        with pytest.raises(TransportError) as again:
            decoder.feed(more)
        assert again.value is failure  # broken for good, with the first reason


def test_frame_decoder_refuses_a_declared_gigabyte_before_it_arrives() -> None:
    decoder = FrameDecoder()
    header = b"\x94\x01\x00\x92\xa1c\xdb" + (1 << 30).to_bytes(4, "big")
    with pytest.raises(TransportError) as info:
        decoder.feed(header)
    assert "declared length" in info.value.reason


msgpackable = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=True)
    | st.binary(max_size=40)
    | st.text(max_size=40),
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.dictionaries(st.text(max_size=5) | st.integers(0, 9), inner, max_size=4)
    ),
    max_leaves=30,
)
entry_like = st.one_of(
    st.integers(-3, 120),
    st.lists(
        st.one_of(st.booleans(), st.integers(-2, 120), st.binary(max_size=8), msgpackable),
        min_size=0,
        max_size=4,
    ),
    msgpackable,
)


@settings(max_examples=500, deadline=timedelta(seconds=2))
@given(st.lists(st.one_of(msgpackable, st.lists(entry_like, max_size=6)), max_size=5))
def test_header_decoder_fails_only_with_transport_error(frames: list[Any]) -> None:
    decoder = HeaderDecoder()
    for entries in frames:
        # what the frame decoder would hand over: the same object after a msgpack round trip
        wire = msgpack.unpackb(pack(entries), raw=True, strict_map_key=False)
        try:
            headers = decoder.decode(wire)
        except TransportError as exc:
            assert exc.category == 6 and exc.code == 2
            continue
        assert all(type(n) is bytes and type(v) is bytes for n, v in headers)
        assert decoder.table.size <= decoder.table.capacity


# -- raw sockets against a live runtime ---------------------------------------------------------


class Raw:
    """A socket speaking hand-made frames; replies are decoded with our own frame decoder."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.decoder = FrameDecoder()
        self.frames: list[Frame] = []

    @classmethod
    async def open(cls, port: int) -> Raw:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    def send(self, *frames: Any) -> None:
        self.writer.write(b"".join(pack(f) for f in frames))

    def send_bytes(self, data: bytes) -> None:
        self.writer.write(data)

    async def frame(self, channel: int) -> Frame:
        """The next frame on ``channel`` (frames on other channels are kept in ``frames``)."""
        async with asyncio.timeout(DEADLINE):
            while True:
                for f in self.frames:
                    if f.channel == channel:
                        self.frames.remove(f)
                        return f
                data = await self.reader.read(65536)
                if not data:
                    raise AssertionError(f"connection closed while waiting on channel {channel}")
                self.frames += self.decoder.feed(data)

    async def hung_up(self) -> bytes:
        """Wait for the runtime to close the connection; return whatever it sent before."""
        received = bytearray()
        async with asyncio.timeout(DEADLINE):
            while True:
                try:
                    data = await self.reader.read(65536)
                except ConnectionResetError:
                    return bytes(received)
                if not data:
                    return bytes(received)
                received += data

    def close(self) -> None:
        self.writer.close()


def error_pair(frame: Frame) -> tuple[int, int]:
    assert frame.type == 1, frame
    category, code = frame.args[0]
    return category, code


async def service_port(runtime: RuntimeProcess, name: str) -> int:
    locator = Service("locator", locator=runtime.locator)
    try:
        endpoints, _, _ = await locator.resolve(name)
    finally:
        locator.close()
    host, port = endpoints[0]
    assert host == "127.0.0.1"
    return int(port)


async def assert_still_serving(runtime: RuntimeProcess) -> None:
    assert runtime.proc is not None and runtime.proc.poll() is None
    storage = Service("storage", locator=runtime.locator)
    try:
        await storage.write("after", "fuzz", b"still here", ["t"])
        assert await storage.read("after", "fuzz") == b"still here"
        assert await storage.find("after", ["t"]) == ["fuzz"]
    finally:
        storage.close()
    assert "Traceback" not in runtime.log and "internal error" not in runtime.log


def hostile_payload(rng: random.Random) -> bytes:
    how = rng.choice(["noise", "prefix", "flip"])
    noise = rng.randbytes(rng.randint(1, 4096))
    if how == "noise":
        return noise
    frame = pack([rng.randint(1, 9), rng.randint(0, 4), [b"c", b"k"], []])
    if how == "prefix":
        return frame + noise
    buf = bytearray(frame * 3)
    for _ in range(rng.randint(1, 6)):
        buf[rng.randrange(len(buf))] = rng.randrange(256)
    return bytes(buf)


async def test_random_bytes_on_storage_and_locator_connections(runtime: RuntimeProcess) -> None:
    ports = {"storage": await service_port(runtime, "storage"), "locator": runtime.port}

    async def one(seed: int, port: int) -> str:
        rng = random.Random(seed)
        payload = hostile_payload(rng)
        oracle = FrameDecoder()
        try:
            oracle.feed(payload)
            broken = False
        except TransportError:
            broken = True
        raw = await Raw.open(port)
        try:
            raw.send_bytes(payload)
            try:
                await raw.writer.drain()
            except (ConnectionResetError, BrokenPipeError):
                return "closed"
            if not broken:
                # Whatever the runtime made of it, our EOF must end the connection cleanly.
                raw.writer.write_eof()
            await raw.hung_up()  # the runtime hangs up on bad bytes without any help
            return "closed" if broken else "open until our EOF"
        finally:
            raw.close()

    jobs = [one(seed, port) for seed in range(30) for port in ports.values()]
    outcomes = await asyncio.gather(*jobs)
    assert len(outcomes) == 60 and "closed" in outcomes
    await assert_still_serving(runtime)
    locator = Service("locator", locator=runtime.locator)
    assert (await locator.resolve("storage"))[1] == 1
    locator.close()


async def test_non_increasing_channel_id_closes_the_connection(runtime: RuntimeProcess) -> None:
    raw = await Raw.open(await service_port(runtime, "storage"))
    raw.send([5, 0, [b"c", b"missing"], []])
    assert error_pair(await raw.frame(5)) == (12, 2)
    raw.send([4, 0, [b"c", b"missing"], []])  # 4 < 5: not a new channel, not a live one
    assert await raw.hung_up() == b""
    raw.close()
    await assert_still_serving(runtime)


@pytest.mark.parametrize("when", ["after the reply", "before the reply"])
async def test_message_on_a_finished_channel_closes_the_connection(
    runtime: RuntimeProcess, when: str
) -> None:
    raw = await Raw.open(await service_port(runtime, "storage"))
    read = [1, 0, [b"c", b"missing"], []]
    if when == "after the reply":
        raw.send(read)
        assert error_pair(await raw.frame(1)) == (12, 2)
        raw.send(read)
    else:
        raw.send(read, read)  # the client side of a read ends with its first message
    await raw.hung_up()
    raw.close()
    await assert_still_serving(runtime)


async def test_unknown_method_is_answered_on_its_channel(runtime: RuntimeProcess) -> None:
    storage = Service("storage", locator=runtime.locator)
    await storage.write("c", "k", b"value")
    storage.close()
    raw = await Raw.open(await service_port(runtime, "storage"))
    raw.send([1, 77, [], []])
    reply = await raw.frame(1)
    assert error_pair(reply) == (7, 5) and b"77" in reply.args[1]
    raw.send([2, 0, [b"c", b"k"], []])  # the connection keeps working
    assert await raw.frame(2) == (2, 0, [b"value"], reply.headers)
    raw.close()


@pytest.mark.parametrize(
    "args",
    [[], [b"only-one"], [b"c", b"k", b"extra", b"more"], [1, 2], [b"c", [b"k"]], [None, b"k"]],
    ids=["none", "too-few", "too-many", "ints", "list", "nil"],
)
async def test_wrong_arguments_are_answered_7_2(runtime: RuntimeProcess, args: list[Any]) -> None:
    raw = await Raw.open(await service_port(runtime, "storage"))
    raw.send([1, 0, args, []])
    assert error_pair(await raw.frame(1)) == (7, 2)
    raw.send([2, 0, [b"c", b"missing"], []])
    assert error_pair(await raw.frame(2)) == (12, 2)  # still serving this connection
    raw.close()


async def test_frame_over_the_configured_limit_closes_the_connection(
    runtime_factory: Any, tmp_path: Path
) -> None:
    config = tmp_path / "runtime.json"
    config.write_text(json.dumps({"limits": {"max-frame-size": 65536}}))
    runtime = runtime_factory("-c", str(config))
    port = await service_port(runtime, "storage")
    within = await Raw.open(port)
    within.send([1, 1, [b"c", b"small", b"x" * 60_000, []], []])
    assert (await within.frame(1)).type == 0  # written: the limit is not hit below it
    over = await Raw.open(port)
    over.send([1, 1, [b"c", b"big", b"x" * 70_000, []], []])
    assert await over.hung_up() == b""
    over.close()
    within.send([2, 0, [b"c", b"small"], []])  # other connections carry on
    assert len((await within.frame(2)).args[0]) == 60_000
    within.close()
    await assert_still_serving(runtime)


async def test_slow_sender_does_not_block_other_connections(runtime: RuntimeProcess) -> None:
    port = await service_port(runtime, "storage")
    storage = Service("storage", locator=runtime.locator)
    await storage.write("c", "k", b"v")
    slow = await Raw.open(port)
    frame = pack([1, 0, [b"c", b"k"], []])
    slow.send_bytes(frame[:3])
    await slow.writer.drain()
    others = [await Raw.open(port) for _ in range(3)]
    for n, other in enumerate(others, start=1):
        other.send([n, 0, [b"c", b"k"], []])
    for n, other in enumerate(others, start=1):
        assert (await other.frame(n)).args == [b"v"]
        other.close()
    assert await storage.read("c", "k") == b"v"
    slow.send_bytes(frame[3:])  # the slow one completes its frame and gets its answer
    assert (await slow.frame(1)).args == [b"v"]
    slow.close()
    storage.close()


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.mark.parametrize(
    "declaration",
    [
        b"\x94\x01\x01\x93\xa1c\xa1k\xdb" + (1 << 30).to_bytes(4, "big"),  # str32 of 1 GiB
        b"\x94\x01\x01\x93\xa1c\xa1k\xc6" + (1 << 30).to_bytes(4, "big"),  # bin32 of 1 GiB
        b"\x94\x01\x01\xdd\xff\xff\xff\xff",  # an array of 4G elements
        b"\x94\x01\x01\x91\xdf\xff\xff\xff\xff",  # a map of 4G pairs
    ],
    ids=["str32", "bin32", "array32", "map32"],
)
async def test_huge_declared_length_is_refused_at_once(
    runtime: RuntimeProcess, declaration: bytes
) -> None:
    assert runtime.proc is not None
    before = rss_kib(runtime.proc.pid)
    raw = await Raw.open(await service_port(runtime, "storage"))
    raw.send_bytes(declaration + b"x" * 1000)  # the header and a little of the body, no more
    assert await raw.hung_up() == b""
    raw.close()
    assert rss_kib(runtime.proc.pid) - before < 64 * 1024
    await assert_still_serving(runtime)


async def test_half_open_client_does_not_keep_the_connection(runtime: RuntimeProcess) -> None:
    """A client that shuts down its write side mid-frame is hung up on."""
    raw = await Raw.open(await service_port(runtime, "storage"))
    raw.send_bytes(pack([1, 0, [b"c", b"k"], []])[:5])
    raw.writer.write_eof()
    assert await raw.hung_up() == b""
    raw.close()
    await assert_still_serving(runtime)


def random_value(rng: random.Random, depth: int = 0) -> Any:
    """A value of any wire type, biased toward names and numbers that mean something."""
    choices: list[Any] = [
        None,
        rng.random() < 0.5,
        rng.randint(-(2**63), 2**64 - 1),
        rng.choice([0, 1, 2, 3, -1, 7, 2**32]),
        rng.randbytes(rng.randint(0, 12)),  # often not UTF-8
        rng.choice(["", ".", "..", "ok", "a/b", "x\ny", "apps", "profiles", "é" * 300]),
        1.5,
    ]
    if depth < 2:
        choices.append([random_value(rng, depth + 1) for _ in range(rng.randint(0, 3))])
        choices.append({rng.choice(["a", "b"]): random_value(rng, depth + 1)})
    return rng.choice(choices)


@pytest.mark.parametrize("name", ["storage", "logging", "node", "locator"])
async def test_random_calls_get_typed_answers(runtime: RuntimeProcess, name: str) -> None:
    """Every method (and some unknown ids) with random arguments: every call that has a reply
    gets one, no reply is an uncaught (7, 7), and the runtime logs no traceback."""
    locator = Service("locator", locator=runtime.locator)
    endpoints, _, graph = await locator.resolve(name)
    locator.close()
    raw = await Raw.open(int(endpoints[0][1]))
    rng = random.Random(name)
    expected: set[int] = set()
    for channel in range(1, 301):
        mid = rng.choice(list(graph)) if rng.random() < 0.9 else rng.randint(0, 40)
        args = [random_value(rng) for _ in range(rng.randint(0, 4))]
        raw.send([channel, mid, args, []])
        entry = graph.get(mid)
        if entry is None or entry[2]:  # unknown ids and non-mute methods always answer
            expected.add(channel)
    answered: dict[int, Frame] = {}
    async with asyncio.timeout(DEADLINE):
        while not expected <= answered.keys():
            data = await raw.reader.read(65536)
            assert data, f"{name} closed the connection"
            for frame in raw.decoder.feed(data):
                answered.setdefault(frame.channel, frame)
    raw.close()
    uncaught = [f for f in answered.values() if f.type == 1 and f.args[0] == [7, 7]]
    assert not uncaught, uncaught
    await assert_still_serving(runtime)
