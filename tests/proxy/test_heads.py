"""Response heads: parsed and checked once per distinct head, written as the proxy needs them."""

from __future__ import annotations

import msgpack
import pytest

from cocaine.protocol.framing import pack
from cocaine.protocol.headers import TRACE_ID, HeaderDecoder, HeaderEncoder, pack_u64
from cocaine.proxy.apps import AppPool
from cocaine.proxy.bridge import HEAD_CACHE, Bridge


def packed(code: int, fields: list[list[bytes]]) -> bytes:
    return msgpack.packb([code, fields], use_bin_type=False)


def bridge() -> Bridge:
    return Bridge(AppPool([], max_frame_size=1 << 20), timeout=30.0)


async def test_a_head_is_parsed_once_and_keeps_the_apps_fields_in_order() -> None:
    heads = bridge()
    chunk = packed(201, [[b"Content-Type", b"text/plain"], [b"Content-Length", b"5"]])
    head = heads.head(chunk)
    assert heads.head(chunk) is head
    assert head.code == 201 and head.has_length and not head.proto11
    assert head.text == b"HTTP/1.1 201 Created\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n"


async def test_the_proxy_sets_framing_headers_itself() -> None:
    head = bridge().head(
        packed(
            200,
            [
                [b"Transfer-Encoding", b"chunked"],
                [b"connection", b"keep-alive"],
                [b"X-Cocaine-HTTP-Proto-Version", b"1.1"],
            ],
        )
    )
    assert head.text == b"HTTP/1.1 200 OK\r\nX-Cocaine-HTTP-Proto-Version: 1.1\r\n"
    assert head.proto11 and not head.has_length


@pytest.mark.parametrize("value", [b"a\r\nSet-Cookie: x=1", b"a\nb", b"a\0b"])
async def test_a_head_that_would_split_the_response_is_refused_every_time(value: bytes) -> None:
    heads = bridge()
    chunk = packed(200, [[b"X-Bad", value]])
    for _ in range(2):
        with pytest.raises(ValueError):
            heads.head(chunk)
    assert heads.heads == {}


async def test_the_cache_of_heads_stays_bounded() -> None:
    heads = bridge()
    for i in range(3 * HEAD_CACHE):
        heads.head(packed(200, [[b"X-Seq", b"%d" % i]]))
        assert len(heads.heads) <= HEAD_CACHE


@pytest.mark.parametrize("trace_id", [0, 1, 0x0123456789ABCDEF, 2**64 - 1])
async def test_the_enqueue_headers_are_the_timeout_and_trace_as_the_encoder_packs_them(
    trace_id: int,
) -> None:
    heads = bridge()
    packed_by_bridge = heads.trace_headers(trace_id)
    trace = [heads.timeout_header, (TRACE_ID, pack_u64(trace_id))]
    assert packed_by_bridge == pack(HeaderEncoder().encode(trace))
    assert HeaderDecoder().decode(msgpack.unpackb(packed_by_bridge, raw=True)) == trace
