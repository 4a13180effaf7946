"""Header tables, the header decoder and encoder, and the known headers (spec §2.3)."""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cocaine.errors import Transport, TransportError
from cocaine.protocol.headers import (
    AUTHORIZATION,
    DEFAULT_TRACE_ENTRIES,
    PARENT_ID,
    REQUEST_TIMEOUT,
    SPAN_ID,
    STATIC_TABLE,
    TRACE_BIT,
    TRACE_ID,
    Header,
    HeaderDecoder,
    HeaderEncoder,
    HeaderTable,
    find_header,
    pack_u64,
    request_timeout,
    trace_entries,
    trace_of,
    unpack_u64,
)

ZERO = bytes(8)


def wire(obj: object) -> object:
    """Through msgpack and back, the way a peer would see it."""
    return msgpack.unpackb(msgpack.packb(obj, use_bin_type=False), raw=True)


def cost(header: Header) -> int:
    return len(header[0]) + len(header[1]) + 32


def dynamic(table: HeaderTable) -> list[Header]:
    return [table.get(83 + i) for i in range(len(table))]


# --- the static table -----------------------------------------------------------------------


def test_static_table_layout() -> None:
    assert len(STATIC_TABLE) == 83
    assert STATIC_TABLE[0] == (b"", b"")
    assert STATIC_TABLE[1] == (b":authority", b"")
    assert STATIC_TABLE[2] == (b":method", b"GET")
    assert STATIC_TABLE[3] == (b":method", b"POST")
    assert STATIC_TABLE[5] == (b":path", b"/index.html")
    assert STATIC_TABLE[7] == (b":scheme", b"https")
    statuses = [STATIC_TABLE[i] for i in range(8, 15)]
    assert statuses == [
        (b":status", s) for s in (b"200", b"204", b"206", b"304", b"400", b"404", b"500")
    ]
    assert STATIC_TABLE[16] == (b"accept-encoding", b"gzip, deflate")
    assert STATIC_TABLE[23] == (AUTHORIZATION, b"")
    assert STATIC_TABLE[61] == (b"www-authenticate", b"")
    assert all(STATIC_TABLE[i] == (b"", b"") for i in range(62, 80))
    assert STATIC_TABLE[80:] == ((TRACE_ID, ZERO), (SPAN_ID, ZERO), (PARENT_ID, ZERO))
    assert all(type(n) is bytes and type(v) is bytes for n, v in STATIC_TABLE)


def test_table_get_bounds() -> None:
    table = HeaderTable()
    assert table.get(82) == (PARENT_ID, ZERO)
    for bad in (0, -1, 83, 10**20):
        with pytest.raises(TransportError) as info:
            table.get(bad)
        assert info.value.pair == (6, Transport.HPACK)
    table.push((b"a", b"1"))
    assert table.get(83) == (b"a", b"1")
    with pytest.raises(TransportError):
        table.get(84)


def test_find_prefers_full_matches_then_static() -> None:
    table = HeaderTable()
    assert table.find((AUTHORIZATION, b"")) == (23, True)
    assert table.find((AUTHORIZATION, b"token")) == (23, False)
    assert table.find((b":method", b"POST")) == (3, True)
    assert table.find((b":method", b"PUT")) == (2, False)
    assert table.find((TRACE_ID, ZERO)) == (80, True)
    assert table.find((b"", b"")) is None  # slot 0 and placeholders are never offered
    assert table.find((b"x-custom", b"v")) is None
    table.push((b"x-custom", b"v"))
    table.push((AUTHORIZATION, b"token"))
    assert table.find((AUTHORIZATION, b"token")) == (83, True)
    assert table.find((b"x-custom", b"v")) == (84, True)
    assert table.find((b"x-custom", b"w")) == (84, False)
    table.push((b"x-custom", b"w"))
    assert table.find((b"x-custom", b"other")) == (83, False)  # the newest name match
    assert table.find((b"x-custom", b"v")) == (85, True)


# --- eviction -------------------------------------------------------------------------------


def test_eviction_at_capacity() -> None:
    a, b, c = (b"a", b"1"), (b"b", b"2"), (b"c", b"3")  # 34 bytes each
    table = HeaderTable(capacity=68)
    table.push(a)
    table.push(b)
    assert dynamic(table) == [b, a]
    assert table.size == 68  # exactly at capacity: nothing evicted
    table.push(c)
    assert dynamic(table) == [c, b]
    assert table.size == 68
    assert table.find(a) is None
    assert table.find(b) == (84, True)


def test_entry_larger_than_capacity_empties_the_table() -> None:
    table = HeaderTable(capacity=64)
    table.push((b"a", b"1"))
    table.push((b"big", b"x" * 30))  # 65 bytes
    assert len(table) == 0
    assert table.size == 0
    assert table.find((b"a", b"1")) is None
    assert table.find((b"big", b"x" * 30)) is None


def test_eviction_keeps_newer_duplicates_findable() -> None:
    table = HeaderTable(capacity=3 * 34)
    h = (b"a", b"1")
    table.push(h)
    table.push(h)
    table.push((b"b", b"2"))
    table.push((b"c", b"3"))  # evicts the older copy of h only
    assert table.find(h) == (85, True)
    table.push((b"d", b"4"))
    assert table.find(h) is None
    assert table.find((b"a", b"9")) is None


def test_capacity_zero_stores_nothing() -> None:
    table = HeaderTable(capacity=0)
    table.push((b"", b""))
    assert len(table) == 0
    with pytest.raises(ValueError):
        HeaderTable(capacity=-1)


# --- decoding -------------------------------------------------------------------------------


def test_decode_empty_and_indexed() -> None:
    decoder = HeaderDecoder()
    assert decoder.decode([]) == []
    assert decoder.decode(wire([23])) == [(AUTHORIZATION, b"")]


def test_decode_stored_literal_then_reference() -> None:
    decoder = HeaderDecoder()
    first = decoder.decode(wire([[True, b"trace_bit", b"1"]]))
    second = decoder.decode(wire([83]))
    assert first == second == [(TRACE_BIT, b"1")]


def test_decode_literal_with_indexed_name_and_str() -> None:
    decoder = HeaderDecoder()
    headers = decoder.decode([[False, 23, b"secret"], [True, "x-name", "value"], 83])
    assert headers == [(AUTHORIZATION, b"secret"), (b"x-name", b"value"), (b"x-name", b"value")]
    assert len(decoder.table) == 1  # the unindexed literal was not stored


def test_decode_runtime_trace_headers() -> None:
    decoder = HeaderDecoder()
    entries = wire(trace_entries(1, 2, 3))
    assert decoder.decode(entries) == [
        (TRACE_ID, pack_u64(1)),
        (SPAN_ID, pack_u64(2)),
        (PARENT_ID, pack_u64(3)),
    ]
    assert len(decoder.table) == 0


@pytest.mark.parametrize(
    "entries",
    [
        None,
        b"",
        {},
        [0],
        [83],
        [True],
        [1.5],
        [b"authorization"],
        [[True, b"a"]],
        [[True, b"a", b"b", b"c"]],
        [[1, b"a", b"b"]],
        [[None, b"a", b"b"]],
        [[True, 0, b"b"]],
        [[True, 200, b"b"]],
        [[True, None, b"b"]],
        [[True, b"a", 5]],
        [[True, b"a", None]],
        [[True, b"a", [b"b"]]],
    ],
)
def test_decode_rejects_bad_entries(entries: object) -> None:
    with pytest.raises(TransportError) as info:
        HeaderDecoder().decode(entries)
    assert info.value.pair == (6, 2)


def test_decode_error_names_the_entry() -> None:
    with pytest.raises(TransportError, match=r"\$\[1\].*index 90"):
        HeaderDecoder().decode([23, 90])


# --- encoding -------------------------------------------------------------------------------


def test_default_trace_entries_bytes() -> None:
    expected = (
        b"\x93"
        + b"\x93\xc2\xa8trace_id\xa8" + ZERO
        + b"\x93\xc2\xa7span_id\xa8" + ZERO
        + b"\x93\xc2\xa9parent_id\xa8" + ZERO
    )  # fmt: skip
    assert msgpack.packb(DEFAULT_TRACE_ENTRIES, use_bin_type=False) == expected
    assert trace_entries(0, 0, 0) == DEFAULT_TRACE_ENTRIES


def test_uncompressed_encoder_sends_literals() -> None:
    encoder = HeaderEncoder()
    headers = [(AUTHORIZATION, b""), (b"x", b"y")]
    assert encoder.encode(headers) == [[False, AUTHORIZATION, b""], [False, b"x", b"y"]]
    assert encoder.encode(headers) == [[False, AUTHORIZATION, b""], [False, b"x", b"y"]]
    assert len(encoder.table) == 0


def test_compressed_encoder_as_the_python_client() -> None:
    encoder = HeaderEncoder(compress=True)
    assert encoder.encode([(AUTHORIZATION, b"")]) == [23]
    assert encoder.encode([(TRACE_BIT, b"1")]) == [[True, TRACE_BIT, b"1"]]
    assert encoder.encode([(TRACE_BIT, b"1")]) == [83]
    assert encoder.encode([(AUTHORIZATION, b"tok")]) == [[True, 23, b"tok"]]
    assert encoder.encode([(AUTHORIZATION, b"tok"), (TRACE_BIT, b"1")]) == [83, 84]
    packed = msgpack.packb(encoder.encode([(AUTHORIZATION, b"")]), use_bin_type=False)
    assert packed == b"\x91\x17"


# --- known headers --------------------------------------------------------------------------


def test_u64() -> None:
    assert pack_u64(1) == b"\x01" + bytes(7)
    assert unpack_u64(pack_u64(2**64 - 1)) == 2**64 - 1
    with pytest.raises(TransportError) as info:
        unpack_u64(b"\x01")
    assert info.value.code == Transport.HPACK


def test_find_header_last_wins() -> None:
    headers = [(b"a", b"1"), (b"b", b"2"), (b"a", b"3")]
    assert find_header(headers, b"a") == b"3"
    assert find_header(headers, b"c") is None


def test_request_timeout() -> None:
    assert request_timeout([]) is None
    assert request_timeout([(REQUEST_TIMEOUT, pack_u64(1500))]) == 1.5
    with pytest.raises(TransportError) as info:
        request_timeout([(REQUEST_TIMEOUT, b"1500")])
    assert info.value.code == Transport.HPACK


def test_trace_of() -> None:
    assert trace_of([]) == (0, 0, 0)
    decoded = HeaderDecoder().decode(wire(trace_entries(7, 8, 2**63)))
    assert trace_of(decoded) == (7, 8, 2**63)
    assert trace_of([(SPAN_ID, pack_u64(5))]) == (0, 5, 0)


# --- properties -----------------------------------------------------------------------------

names = st.one_of(
    st.sampled_from(
        [AUTHORIZATION, TRACE_ID, TRACE_BIT, b":method", b":status", b"x-a", b"x-b", b""]
    ),
    st.binary(max_size=12),
)
values = st.one_of(
    st.sampled_from([b"", b"GET", b"200", ZERO, b"1", b"v"]),
    st.binary(max_size=40),
)
headers_st = st.tuples(names, values)
capacities = st.sampled_from([0, 32, 40, 70, 100, 200, 4096])


@settings(max_examples=150, deadline=None)
@given(capacities, st.lists(st.lists(headers_st, max_size=8), max_size=8))
def test_compressed_round_trip_keeps_tables_in_sync(
    capacity: int, frames: list[list[Header]]
) -> None:
    encoder = HeaderEncoder(capacity, compress=True)
    decoder = HeaderDecoder(capacity)
    for frame in frames:
        assert decoder.decode(wire(encoder.encode(frame))) == frame
        assert dynamic(decoder.table) == dynamic(encoder.table)
        assert decoder.table.size == encoder.table.size <= capacity


@settings(max_examples=150, deadline=None)
@given(capacities, st.lists(headers_st, max_size=30), headers_st)
def test_table_matches_a_simple_model(capacity: int, pushes: list[Header], probe: Header) -> None:
    table = HeaderTable(capacity)
    model: list[Header] = []
    for header in pushes:
        table.push(header)
        if cost(header) > capacity:
            model = []
            continue
        model.insert(0, header)
        while sum(map(cost, model)) > capacity:
            model.pop()
    assert dynamic(table) == model
    assert table.size == sum(map(cost, model))
    for header in [probe, *pushes]:
        found = table.find(header)
        every = [STATIC_TABLE[i] for i in range(1, 83)] + model
        # slot 0 and the static placeholders have empty names and are never matched
        usable = [(i + 1, h) for i, h in enumerate(every) if h[0] or i + 1 > 82]
        full = [i for i, h in usable if h == header]
        named = [i for i, h in usable if h[0] == header[0]]
        if full:
            assert found == (full[0], True)
        elif named:
            assert found == (named[0], False)
        else:
            assert found is None
