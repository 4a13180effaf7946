"""The frame decoder and encoder (spec §2.1), against bytes captured from the original peers."""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cocaine.errors import Category, Transport, TransportError
from cocaine.protocol.framing import (
    DEFAULT_MAX_FRAME_SIZE,
    Frame,
    FrameDecoder,
    encode_frame,
    encode_frame3,
    encode_frame_packed_headers,
    encode_stream,
    pack,
    pack_literal_headers,
)
from cocaine.protocol.headers import DEFAULT_TRACE_ENTRIES, HeaderDecoder, HeaderEncoder

UUID = b"3e2b9b59-8d8a-4e21-9d2f-6f0c2a1b7c55"
ZERO = bytes(8)
H0 = [[False, b"trace_id", ZERO], [False, b"span_id", ZERO], [False, b"parent_id", ZERO]]


def hexb(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


# The runtime's heartbeat reply (spec §3.2), spelled out byte by byte.
HEARTBEAT_REPLY = (
    hexb("94 01 00 90 93")
    + hexb("93 c2 a8")
    + b"trace_id"
    + hexb("a8")
    + ZERO
    + hexb("93 c2 a7")
    + b"span_id"
    + hexb("a8")
    + ZERO
    + hexb("93 c2 a9")
    + b"parent_id"
    + hexb("a8")
    + ZERO
)

# (wire bytes, decoded frame, how our encoder produces the same bytes)
CAPTURES = {
    "resolve echo": (
        hexb("94 01 00 91 a4 65 63 68 6f 90"),
        Frame(1, 0, [b"echo"], []),
        lambda: encode_frame(1, 0, ["echo"]),
    ),
    "resolve storage": (
        hexb("94 01 00 91 a7 73746f72616765 90"),
        Frame(1, 0, [b"storage"], []),
        lambda: encode_frame(1, 0, [b"storage"], []),
    ),
    "enqueue ping": (
        hexb("94 01 00 91 a4 70696e67 90"),
        Frame(1, 0, [b"ping"], []),
        lambda: encode_frame(1, 0, ["ping"], []),
    ),
    "write hello": (
        hexb("94 01 00 91 a5 68656c6c6f 90"),
        Frame(1, 0, [b"hello"], []),
        lambda: encode_frame(1, 0, [b"hello"]),
    ),
    "close": (hexb("94 01 02 90 90"), Frame(1, 2, [], []), lambda: encode_frame(1, 2, [])),
    "worker handshake": (
        hexb("93 01 00 91 da 00 24") + UUID,
        Frame(1, 0, [UUID], []),
        lambda: encode_frame3(1, 0, [UUID.decode()]),
    ),
    "worker heartbeat": (hexb("93 01 00 90"), Frame(1, 0, [], []), lambda: encode_frame3(1, 0, [])),
    "runtime heartbeat reply": (
        HEARTBEAT_REPLY,
        Frame(1, 0, [], H0),
        lambda: encode_frame_packed_headers(1, 0, [], pack(DEFAULT_TRACE_ENTRIES)),
    ),
}


def decode_all(data: bytes, limit: int = DEFAULT_MAX_FRAME_SIZE) -> list[Frame]:
    decoder = FrameDecoder(limit)
    frames = decoder.feed(data)
    assert decoder.pending == 0
    return frames


def decode_bytewise(data: bytes, limit: int = DEFAULT_MAX_FRAME_SIZE) -> list[Frame]:
    decoder = FrameDecoder(limit)
    frames: list[Frame] = []
    for i in range(len(data)):
        frames += decoder.feed(data[i : i + 1])
    assert decoder.pending == 0
    return frames


def decode_in_drawn_chunks(wire: bytes, data: st.DataObject, max_cuts: int) -> list[Frame]:
    """``wire`` fed in pieces cut where hypothesis draws; nothing may stay pending."""
    cuts = sorted(data.draw(st.lists(st.integers(0, len(wire)), max_size=max_cuts)))
    decoder = FrameDecoder()
    out: list[Frame] = []
    start = 0
    for cut in [*cuts, len(wire)]:
        out += decoder.feed(wire[start:cut])
        start = cut
    assert decoder.pending == 0
    return out


# -- captures -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(CAPTURES))
def test_capture_decodes(name: str) -> None:
    wire, frame, _ = CAPTURES[name]
    assert decode_all(wire) == [frame]


@pytest.mark.parametrize("name", list(CAPTURES))
def test_capture_reencodes_byte_for_byte(name: str) -> None:
    wire, frame, encode = CAPTURES[name]
    assert encode() == wire
    if wire[0] == 0x94:
        assert encode_frame(*frame) == wire
    else:
        assert encode_frame3(frame.channel, frame.type, frame.args) == wire


def test_heartbeat_reply_equals_trace_entries_packed_inline() -> None:
    assert encode_frame(1, 0, [], DEFAULT_TRACE_ENTRIES) == HEARTBEAT_REPLY


@pytest.mark.parametrize("name", list(CAPTURES))
def test_capture_split_at_every_boundary(name: str) -> None:
    wire, frame, _ = CAPTURES[name]
    for cut in range(len(wire) + 1):
        decoder = FrameDecoder()
        first = decoder.feed(wire[:cut])
        second = decoder.feed(wire[cut:])
        assert first + second == [frame], cut
        assert first == ([frame] if cut == len(wire) else [])
    assert decode_bytewise(wire) == [frame]


def test_client_session_in_one_feed_and_bytewise() -> None:
    """Spec §2.7(b): enqueue, write, close from the client arrive back to back."""
    session = b"".join(CAPTURES[n][0] for n in ("enqueue ping", "write hello", "close"))
    expected = [Frame(1, 0, [b"ping"], []), Frame(1, 0, [b"hello"], []), Frame(1, 2, [], [])]
    assert decode_all(session) == expected
    assert decode_bytewise(session) == expected
    for cut in range(len(session) + 1):
        decoder = FrameDecoder()
        assert decoder.feed(session[:cut]) + decoder.feed(session[cut:]) == expected


def test_worker_session_mixes_3_and_4_element_frames() -> None:
    stream = (
        CAPTURES["worker handshake"][0]
        + CAPTURES["worker heartbeat"][0]
        + HEARTBEAT_REPLY
        + encode_frame3(2, 0, [b"chunk"])
        + encode_frame(2, 2, [], [[False, b"trace_bit", b"1"]])
    )
    assert decode_bytewise(stream) == [
        Frame(1, 0, [UUID], []),
        Frame(1, 0, [], []),
        Frame(1, 0, [], H0),
        Frame(2, 0, [b"chunk"], []),
        Frame(2, 2, [], [[False, b"trace_bit", b"1"]]),
    ]


def test_other_decoded_exchanges_roundtrip() -> None:
    manifest = msgpack.packb({"slave": "worker.py", "environment": {"FOO": "bar"}})
    frames = [
        Frame(1, 1, [[10, 1], b"service is not available"], H0),
        Frame(1, 1, [[0x52FF, 1], b"queue is full"], H0),
        Frame(1, 0, [b"echo2", b"default"], [23]),
        Frame(2, 1, [b"manifests", b"echo2", manifest, [b"app"]], [23]),
        Frame(1, 0, [[[b"127.0.0.1", 34241], [b"::1", 34241]], 1, {65535: [b"revoke", {}]}], []),
    ]
    wire = b"".join(encode_frame(*f) for f in frames)
    assert decode_all(wire) == frames
    assert b"".join(encode_frame(*f) for f in decode_all(wire)) == wire
    # graph keys 65532..65535 are cd ff fc .. cd ff ff
    assert pack(65532) == hexb("cd ff fc") and pack(65535) == hexb("cd ff ff")


# -- the msgpack dialect --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("length", "head"),
    [
        (0, "a0"),
        (31, "bf"),
        (32, "da 00 20"),
        (36, "da 00 24"),
        (255, "da 00 ff"),
        (65535, "da ff ff"),
        (65536, "db 00 01 00 00"),
    ],
)
def test_strings_and_bytes_go_out_as_old_spec_raw(length: int, head: str) -> None:
    prefix = hexb(head)
    for value in (b"u" * length, "u" * length):
        packed = pack(value)
        assert packed[: len(prefix)] == prefix
        assert len(packed) == len(prefix) + length
        assert packed[0] not in (0xD9, 0xC4, 0xC5, 0xC6)


def test_uuid_is_packed_as_raw16_never_str8_or_bin() -> None:
    frame = encode_frame3(1, 0, [UUID])
    assert frame[4:7] == hexb("da 00 24")
    assert hexb("d9 24") not in frame and hexb("c4 24") not in frame


@pytest.mark.parametrize(
    "encoded",
    [
        "d9 04 65 63 68 6f",  # str8
        "c4 04 65 63 68 6f",  # bin8
        "c5 00 04 65 63 68 6f",  # bin16
        "c6 00 00 00 04 65 63 68 6f",  # bin32
        "db 00 00 00 04 65 63 68 6f",  # str32
    ],
)
def test_str8_and_bin_are_accepted_and_decoded_as_bytes(encoded: str) -> None:
    wire = hexb("94 01 00 91") + hexb(encoded) + hexb("91 a1 78")
    assert decode_all(wire) == [Frame(1, 0, [b"echo"], [b"x"])]
    assert decode_bytewise(wire) == [Frame(1, 0, [b"echo"], [b"x"])]
    assert encode_frame(1, 0, [b"echo"], [b"x"]) == hexb("94 01 00 91 a4 65 63 68 6f 91 a1 78")


def test_3_and_4_element_frames() -> None:
    assert decode_all(encode_frame3(7, 2, [])) == [Frame(7, 2, [], [])]
    assert decode_all(encode_frame(7, 2, [], [80])) == [Frame(7, 2, [], [80])]
    assert encode_frame3(7, 2, [])[0] == 0x93
    assert encode_frame(7, 2, [])[0] == 0x94


def test_elements_beyond_four_are_ignored() -> None:
    wire = msgpack.packb([3, 1, [b"a"], [], b"extra", 5], use_bin_type=False)
    assert decode_all(wire) == [Frame(3, 1, [b"a"], [])]


def test_big_channel_and_type_ids() -> None:
    frames = [Frame(2**64 - 1, 65535, [], []), Frame(2**32, 65533, [-1, 2**63], [])]
    assert decode_all(b"".join(encode_frame(*f) for f in frames)) == frames


def test_many_frames_in_one_feed() -> None:
    frames = [Frame(i, i % 3, [i, b"x" * (i % 40)], []) for i in range(1, 1001)]
    wire = b"".join(encode_frame(*f) for f in frames)
    assert decode_all(wire) == frames


def test_pending_counts_the_incomplete_frame() -> None:
    wire = CAPTURES["resolve storage"][0] + CAPTURES["close"][0]
    decoder = FrameDecoder()
    assert decoder.feed(wire[:5]) == []
    assert decoder.pending == 5
    assert decoder.feed(wire[5:14]) == [Frame(1, 0, [b"storage"], [])]
    assert decoder.pending == 1
    assert decoder.feed(wire[14:]) == [Frame(1, 2, [], [])]
    assert decoder.pending == 0


# -- malformed frames -----------------------------------------------------------------------------


def packed(obj: object) -> bytes:
    return msgpack.packb(obj, use_bin_type=False)


BAD_FRAMES = {
    "not an array": (packed(5), Transport.FRAME_FORMAT),
    "a map": (packed({0: 1, 1: 0, 2: []}), Transport.FRAME_FORMAT),
    "a string": (packed(b"hello"), Transport.FRAME_FORMAT),
    "two elements": (packed([1, 0]), Transport.FRAME_FORMAT),
    "empty array": (packed([]), Transport.FRAME_FORMAT),
    "negative channel": (packed([-1, 0, []]), Transport.FRAME_FORMAT),
    "negative type": (packed([1, -3, []]), Transport.FRAME_FORMAT),
    "string channel": (packed([b"1", 0, []]), Transport.FRAME_FORMAT),
    "bool channel": (packed([True, 0, []]), Transport.FRAME_FORMAT),
    "nil type": (packed([1, None, []]), Transport.FRAME_FORMAT),
    "float channel": (packed([1.0, 0, []]), Transport.FRAME_FORMAT),
    "args not an array": (packed([1, 0, b"echo"]), Transport.FRAME_FORMAT),
    "args a map": (packed([1, 0, {}]), Transport.FRAME_FORMAT),
    "headers not an array": (packed([1, 0, [], {}]), Transport.FRAME_FORMAT),
    "headers nil": (packed([1, 0, [], None]), Transport.FRAME_FORMAT),
    "invalid byte 0xc1": (hexb("c1"), Transport.PARSE),
    "0xc1 inside a frame": (hexb("94 01 00 91 c1 90"), Transport.PARSE),
    "0xc1 inside an incomplete frame": (hexb("94 01 00 92 a1 78 c1"), Transport.PARSE),
}


@pytest.mark.parametrize("name", list(BAD_FRAMES))
def test_bad_frame_raises_transport_error(name: str) -> None:
    wire, code = BAD_FRAMES[name]
    decoder = FrameDecoder()
    with pytest.raises(TransportError) as info:
        decoder.feed(wire)
    assert info.value.pair == (Category.TRANSPORT, code)


@pytest.mark.parametrize("name", list(BAD_FRAMES))
def test_bad_frame_fed_bytewise_raises_the_same_code(name: str) -> None:
    wire, code = BAD_FRAMES[name]
    decoder = FrameDecoder()
    with pytest.raises(TransportError) as info:
        for i in range(len(wire)):
            decoder.feed(wire[i : i + 1])
    assert info.value.pair == (Category.TRANSPORT, code)


@pytest.mark.parametrize("name", ["two elements", "invalid byte 0xc1", "headers nil"])
def test_decoder_stays_broken_after_an_error(name: str) -> None:
    wire, code = BAD_FRAMES[name]
    good = CAPTURES["resolve echo"][0]
    decoder = FrameDecoder()
    with pytest.raises(TransportError):
        decoder.feed(good + wire + good)
    for _ in range(2):
        with pytest.raises(TransportError) as info:
            decoder.feed(good)
        assert info.value.code == code
    with pytest.raises(TransportError):
        decoder.feed(b"")


def test_frames_before_an_error_in_earlier_feeds_were_delivered() -> None:
    decoder = FrameDecoder()
    assert decoder.feed(CAPTURES["close"][0]) == [Frame(1, 2, [], [])]
    with pytest.raises(TransportError):
        decoder.feed(packed([1, 0]))


# -- size limits ----------------------------------------------------------------------------------

LIMIT = 4096


def frame_of_size(size: int) -> bytes:
    base = len(encode_frame(1, 0, [b"x" * 1000]))
    wire = encode_frame(1, 0, [b"x" * (1000 + size - base)])
    assert len(wire) == size
    return wire


def test_frame_at_the_limit_is_accepted() -> None:
    wire = frame_of_size(LIMIT)
    assert len(decode_all(wire, LIMIT)) == 1
    assert len(decode_bytewise(wire, LIMIT)) == 1


@pytest.mark.parametrize("size", [LIMIT + 1, 2 * LIMIT, 10 * LIMIT])
def test_frame_over_the_limit_fed_at_once_is_refused(size: int) -> None:
    decoder = FrameDecoder(LIMIT)
    with pytest.raises(TransportError) as info:
        decoder.feed(frame_of_size(size))
    assert info.value.category == Category.TRANSPORT
    with pytest.raises(TransportError):
        decoder.feed(CAPTURES["close"][0])


BIG_DECLARED = {
    "str32": "db 00 01 00 00",
    "bin32": "c6 00 01 00 00",
    "str16": "da ff ff",
    "bin16": "c5 ff ff",
    "array32": "dd 00 01 00 00",
    "map32": "df 00 01 00 00",
    "array16": "dc ff ff",
    "ext32": "c9 00 01 00 00",
}


@pytest.mark.parametrize("name", list(BIG_DECLARED))
@pytest.mark.parametrize("where", ["as an argument", "as the whole frame", "nested in headers"])
def test_oversized_declared_length_is_refused_from_the_header_alone(name: str, where: str) -> None:
    prefix = {
        "as an argument": "94 01 00 91",
        "as the whole frame": "",
        "nested in headers": "94 01 00 90 91 93 c2 17",
    }[where]
    wire = hexb(prefix) + hexb(BIG_DECLARED[name])
    decoder = FrameDecoder(LIMIT)
    with pytest.raises(TransportError) as info:
        decoder.feed(wire)
    assert info.value.category == Category.TRANSPORT
    # one byte at a time: refused by the feed that completes the length field, not later
    decoder = FrameDecoder(LIMIT)
    for i in range(len(wire) - 1):
        assert decoder.feed(wire[i : i + 1]) == []
    with pytest.raises(TransportError):
        decoder.feed(wire[-1:])


@pytest.mark.parametrize("name", ["str32", "bin32", "str16"])
@pytest.mark.parametrize(
    "prefix",
    [
        "94 cd 01 00 00 91",  # channel 256: a 3-byte uint split across feeds
        "94 01 00 90 91 93 c2 a1 78",  # a header name string split across feeds
    ],
)
def test_oversized_length_after_a_split_item_is_refused_from_the_header(
    name: str, prefix: str
) -> None:
    wire = hexb(prefix) + hexb(BIG_DECLARED[name])
    decoder = FrameDecoder(LIMIT)
    with pytest.raises(TransportError):
        for i in range(len(wire)):
            decoder.feed(wire[i : i + 1])


def test_slow_sender_of_a_big_valid_frame_within_the_limit() -> None:
    frame = Frame(
        9,
        0,
        [b"x" * 20000, [b"ab"] * 3000, {i: [i, None, True, b"v"] for i in range(500)}],
        [[False, b"trace_id", ZERO]],
    )
    wire = encode_frame(*frame)
    limit = 64 * 1024
    assert len(wire) < limit
    assert decode_bytewise(wire, limit) == [frame]
    assert decode_bytewise(wire + wire, limit) == [frame, frame]


@pytest.mark.parametrize("chunk", [1, 100, 3100])
def test_frame_over_the_limit_fed_in_chunks_is_refused(chunk: int) -> None:
    wire = encode_frame(1, 0, [b"x" * 3000, b"y" * 3000])
    assert len(wire) > LIMIT
    decoder = FrameDecoder(LIMIT)
    with pytest.raises(TransportError):
        for i in range(0, len(wire), chunk):
            decoder.feed(wire[i : i + chunk])


def test_many_small_frames_in_one_feed_larger_than_the_limit() -> None:
    frames = [Frame(i, 0, [b"x" * 20], []) for i in range(1, 201)]
    wire = b"".join(encode_frame(*f) for f in frames)
    assert len(wire) > 1024
    assert decode_all(wire, 1024) == frames


def test_small_limit_refuses_a_frame_over_it() -> None:
    wire = encode_frame(1, 0, [b"x" * 40] * 10)
    assert len(wire) > 100
    with pytest.raises(TransportError):
        FrameDecoder(100).feed(wire)


# -- property: any frames, any chunking -----------------------------------------------------------

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.binary(max_size=70)
)
keys = st.integers(min_value=-(2**63), max_value=2**64 - 1) | st.binary(max_size=10)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=20,
)
header_entries = st.integers(min_value=1, max_value=200) | st.tuples(
    st.booleans(), st.binary(max_size=20) | st.integers(0, 200), st.binary(max_size=40)
).map(list)
frames_st = st.builds(
    lambda c, t, a, h: Frame(c, t, a, h),
    st.integers(min_value=0, max_value=2**64 - 1),
    st.integers(min_value=0, max_value=2**64 - 1),
    st.lists(values, max_size=5),
    st.none() | st.lists(header_entries, max_size=4),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(frames_st, min_size=1, max_size=6), st.data())
def test_roundtrip_random_frames_random_chunks(frames: list[Frame], data: st.DataObject) -> None:
    wire = b""
    expected = []
    for f in frames:
        if f.headers is None:
            wire += encode_frame3(f.channel, f.type, f.args)
            expected.append(f._replace(headers=[]))
        else:
            wire += encode_frame(*f)
            expected.append(f)
    assert decode_in_drawn_chunks(wire, data, max_cuts=12) == expected
    reencoded = b"".join(
        encode_frame(*f) if f.headers is not None else encode_frame3(f.channel, f.type, f.args)
        for f in frames
    )
    assert reencoded == wire


_CHUNK_SIZES = st.sampled_from([0, 1, 31, 32, 255, 256, 65535, 65536, 70000]) | st.integers(0, 300)


@settings(max_examples=60, deadline=None)
@given(
    channel=st.sampled_from([127, 128, 255, 256, 65535, 65536, 2**32 - 1, 2**32])
    | st.integers(0, 2**64 - 1),
    mtype=st.integers(0, 2**16),
    size=_CHUNK_SIZES,
    headers=st.sampled_from([[], DEFAULT_TRACE_ENTRIES]),
)
def test_chunk_frames_are_the_bytes_the_packer_writes(
    channel: int, mtype: int, size: int, headers: list[object]
) -> None:
    """The chunk fast paths (no copy through the packer) change nothing on the wire."""
    chunk = bytes(range(256)) * (size // 256) + bytes(size % 256)
    expected = msgpack.packb([channel, mtype, [chunk], headers], use_bin_type=False)
    assert encode_frame(channel, mtype, [chunk], headers) == expected
    assert encode_frame_packed_headers(channel, mtype, [chunk], pack(headers)) == expected
    stream = encode_stream(channel, (0, ["évent"], pack(headers)), 0, chunk, 2, pack(headers))
    assert stream == b"".join(
        msgpack.packb(frame, use_bin_type=False)
        for frame in (
            [channel, 0, ["évent"], headers],
            [channel, 0, [chunk], headers],
            [channel, 2, [], headers],
        )
    )


# -- property: the in-place parse of the common shapes agrees with msgpack ------------------------

_UINTS = st.sampled_from([0, 127, 128, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**64 - 1])
_RAWS = st.binary(max_size=40) | st.sampled_from([b"x" * 31, b"x" * 32, b"y" * 255, b"z" * 256])
_COMMON_HEADERS = st.sampled_from([[], DEFAULT_TRACE_ENTRIES]) | st.lists(
    _UINTS | st.tuples(st.booleans(), _RAWS | _UINTS, _RAWS).map(list), max_size=15
)
_COMMON_FRAMES = st.tuples(
    _UINTS | st.integers(0, 300),
    _UINTS | st.integers(0, 3),
    st.sampled_from([[], [b""], [b"hello"], [b"r" * 70000]]) | st.lists(_RAWS, max_size=1),
    _COMMON_HEADERS,
    st.sampled_from(["4 elements, raw", "4 elements, str8 and bin", "3 elements"]),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_COMMON_FRAMES, min_size=1, max_size=5), st.data())
def test_common_frames_decode_as_msgpack_does(
    frames: list[tuple[int, int, list[bytes], list[object], str]], data: st.DataObject
) -> None:
    """Channel and type in every uint width, no argument or one string in every string and
    bin form, headers empty, the default trace, or indexes and literals: each frame decodes
    to what msgpack makes of it, at any chunking."""
    wire = b""
    expected = []
    for channel, mtype, args, headers, form in frames:
        if form == "3 elements":
            wire += msgpack.packb([channel, mtype, args], use_bin_type=False)
            expected.append(Frame(channel, mtype, args, []))
        else:
            one = msgpack.packb(
                [channel, mtype, args, headers], use_bin_type=form == "4 elements, str8 and bin"
            )
            wire += one
            expected.append(Frame(*msgpack.unpackb(one, raw=True)))
    assert decode_in_drawn_chunks(wire, data, max_cuts=6) == expected


def test_the_default_trace_arrives_as_the_shared_entries_and_decodes_to_a_fresh_list() -> None:
    frames = decode_all(HEARTBEAT_REPLY * 2)
    assert frames[0].headers is DEFAULT_TRACE_ENTRIES and frames[1].headers is DEFAULT_TRACE_ENTRIES
    decoder = HeaderDecoder()
    first, second = decoder.decode(frames[0].headers), decoder.decode(frames[1].headers)
    assert first == [(b"trace_id", ZERO), (b"span_id", ZERO), (b"parent_id", ZERO)]
    assert first == second and first is not second


def test_a_trace_that_differs_in_one_byte_is_decoded_in_full() -> None:
    wire = bytearray(HEARTBEAT_REPLY)
    wire[-1] = 1  # the parent id's last byte
    (frame,) = decode_all(bytes(wire))
    assert frame.headers is not DEFAULT_TRACE_ENTRIES
    assert frame.headers == [H0[0], H0[1], [False, b"parent_id", ZERO[:7] + b"\x01"]]


_SIZED_RAWS = st.binary(max_size=40) | st.sampled_from([31, 32, 65535, 65536]).map(b"h".__mul__)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(_SIZED_RAWS, _SIZED_RAWS), max_size=20))
def test_literal_headers_are_packed_as_the_encoder_and_packer_write_them(
    headers: list[tuple[bytes, bytes]],
) -> None:
    assert pack_literal_headers(headers) == pack(HeaderEncoder().encode(headers))


@settings(max_examples=150, deadline=None)
@given(
    channel=_UINTS | st.integers(0, 2**64 - 1),
    mtype=_UINTS,
    args=st.sampled_from([[], ["http"], ["événement"], [b""], [b"x" * 40]])
    | st.lists(st.text(max_size=40) | _SIZED_RAWS | st.integers(-(2**63), 2**64 - 1), max_size=3),
)
def test_frames_of_the_request_path_are_the_bytes_the_packer_writes(
    channel: int, mtype: int, args: list[object]
) -> None:
    trace = pack(DEFAULT_TRACE_ENTRIES)
    expected = msgpack.packb([channel, mtype, args, DEFAULT_TRACE_ENTRIES], use_bin_type=False)
    assert encode_frame_packed_headers(channel, mtype, args, trace) == expected


@pytest.mark.parametrize("count", [0, 15, 16, 65535, 65536])
def test_literal_header_arrays_take_the_packers_head_at_every_size(count: int) -> None:
    headers = [(b"n", b"v")] * count
    assert pack_literal_headers(headers) == pack(HeaderEncoder().encode(headers))
