"""Frames: the stream decoder (bytes in, frames out) and the encoder (frames in, bytes out).

A connection carries concatenated msgpack values with no length prefix. Each value is one frame,
``[channel, type, args]`` or ``[channel, type, args, headers]``. Every string is decoded as
``bytes`` (old-spec raw, ``str8`` and ``bin`` alike) and every string goes out as old-spec raw.

Size limits are enforced on declared lengths as well as on buffered bytes: a frame whose array,
map or string header announces more than the limit is refused as soon as that header arrives,
before any of its bytes do. After an error the decoder stays broken (the connection must close).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any, Final, NamedTuple

import msgpack

from cocaine.errors import Transport, TransportError
from cocaine.protocol.headers import DEFAULT_TRACE_ENTRIES

DEFAULT_MAX_FRAME_SIZE: Final = 64 * 1024 * 1024


class Frame(NamedTuple):
    channel: int
    type: int
    args: list[Any]
    headers: list[Any]


RawFrame = tuple[int, int, list[Any], list[Any]]


def _check(obj: Any) -> RawFrame:
    if type(obj) is list and len(obj) == 4:  # the common shape, checked inline
        channel, mtype, args, headers = obj
        if (
            type(channel) is int
            and type(mtype) is int
            and channel >= 0
            and mtype >= 0
            and type(args) is list
            and type(headers) is list
        ):
            return (channel, mtype, args, headers)
    if not isinstance(obj, list) or len(obj) < 3:
        raise TransportError(
            "a frame must be an array of 3 or 4 elements", code=Transport.FRAME_FORMAT
        )
    channel, mtype, args = obj[0], obj[1], obj[2]
    if type(channel) is not int or type(mtype) is not int or channel < 0 or mtype < 0:
        raise TransportError("frame channel and type must be unsigned integers")
    if not isinstance(args, list):
        raise TransportError("frame args must be an array")
    headers = obj[3] if len(obj) > 3 else []
    if not isinstance(headers, list):
        raise TransportError("frame headers must be an array")
    return (channel, mtype, args, headers)


class FrameDecoder:
    """Feed bytes, get whole frames. Broken for good after the first error.

    Theory of operation. Frames of the shapes that carry requests (a uint channel and type,
    arguments that are empty or one string, headers that are empty, the runtime's default
    trace or a few literal entries) are parsed in place by :func:`_parse_common`. Any other
    frame is measured by a :class:`_Walker`, which steps over its items without building
    them, and then unpacked whole by msgpack. A frame that is still incomplete at the end of
    the bytes is kept in a tail; the walker resumes on it as more bytes arrive and refuses an
    oversized declared length as soon as its header is there.
    """

    def __init__(self, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE) -> None:
        self.max_frame_size = max_frame_size
        self._tail = bytearray()  # bytes of the frame still incomplete
        self._walker = _Walker(max_frame_size)
        self._error: TransportError | None = None

    @property
    def pending(self) -> int:
        """Bytes buffered for a frame that has not completed yet."""
        return len(self._tail)

    def feed(self, data: bytes) -> list[Frame]:
        """Whole frames from ``data`` (and what came before it), as :class:`Frame` tuples."""
        return [Frame._make(frame) for frame in self.feed_raw(data)]

    def feed_raw(self, data: bytes) -> list[RawFrame]:
        """As :meth:`feed`, as plain tuples ``(channel, type, args, headers)``: the hot path.

        The headers of a frame that carries the runtime's default trace are the shared
        ``DEFAULT_TRACE_ENTRIES`` list: never mutate it.
        """
        if self._error is not None:
            raise self._error
        try:
            return self._feed(data)
        except TransportError as exc:
            self._error = exc
            raise
        except (ValueError, msgpack.exceptions.ExtraData, msgpack.exceptions.FormatError) as exc:
            self._error = TransportError(f"malformed msgpack: {exc}", code=Transport.PARSE)
        except Exception as exc:  # StackError and friends from the C unpacker
            self._error = TransportError(f"malformed msgpack: {exc!r}", code=Transport.PARSE)
        raise self._error

    def _feed(self, data: bytes) -> list[RawFrame]:
        frames: list[RawFrame] = []
        limit = self.max_frame_size
        tail = self._tail
        if tail:
            tail += data
            end = self._walker.advance(tail)
            if end < 0:
                if len(tail) > limit:
                    raise _too_large(limit)
                return frames
            if end > limit:
                raise _too_large(limit)
            buf = bytes(tail)
            tail.clear()  # a big frame is not held twice while it is unpacked
            frames.append(_check(self._unpack(buf[:end])))
            pos = end
        else:
            buf = data
            pos = 0
        size = len(buf)
        while pos < size:
            after = _parse_common(buf, pos, size, frames)
            if after < 0:  # another shape, or incomplete: measured without being built
                walker = self._walker
                walker.reset(pos)
                after = walker.advance(buf)
                if after < 0:  # incomplete: kept for the next feed
                    if size - pos > limit:
                        raise _too_large(limit)
                    self._tail = bytearray(buf[pos:])
                    walker.rebase(pos)
                    return frames
                if after - pos > limit:
                    raise _too_large(limit)
                frames.append(_check(self._unpack(buf[pos:after])))
            elif after - pos > limit:
                raise _too_large(limit)
            pos = after
        return frames

    def _unpack(self, frame: bytes) -> Any:
        limit = self.max_frame_size
        return msgpack.unpackb(
            frame,
            raw=True,
            strict_map_key=False,
            use_list=True,
            max_str_len=limit,
            max_bin_len=limit,
            max_array_len=limit,
            max_map_len=limit,
            max_ext_len=limit,
        )


def _too_large(limit: int) -> TransportError:
    return TransportError(f"frame exceeds the limit of {limit} bytes", code=Transport.PARSE)


def _parse_common(buf: bytes, pos: int, end: int, frames: list[RawFrame]) -> int:
    """Parse one frame of the common shapes at ``pos`` and append it to ``frames``.

    Returns the offset just past it, or -1 (nothing appended) when the frame has another
    shape or is not complete: the general path decides about it then. The values are the
    ones msgpack would build: raws as ``bytes``, arrays as lists.
    """
    if end - pos < 4:
        return -1
    size = buf[pos]
    if size != 0x94 and size != 0x93:
        return -1
    channel, p = _uint_at(buf, pos + 1, end)
    if channel < 0:
        return -1
    mtype, p = _uint_at(buf, p, end)
    if mtype < 0 or p >= end:
        return -1
    b = buf[p]
    args: list[Any]
    if b == 0x90:
        args = []
        p += 1
    elif b == 0x91:
        n, p = _raw_at(buf, p + 1, end)
        if n < 0 or p + n > end:
            return -1
        args = [buf[p : p + n]]
        p += n
    else:
        return -1
    headers: list[Any]
    if size == 0x93:
        headers = []
    elif p >= end:
        return -1
    else:
        b = buf[p]
        if b == 0x90:
            headers = []
            p += 1
        elif b == 0x93 and buf[p : p + _DEFAULT_TRACE_SIZE] == _PACKED_DEFAULT_TRACE:
            headers = DEFAULT_TRACE_ENTRIES
            p += _DEFAULT_TRACE_SIZE
        elif 0x90 < b <= 0x9F:
            headers = []
            p += 1
            for _ in range(b & 0x0F):
                p = _header_entry_at(buf, p, end, headers)
                if p < 0:
                    return -1
        else:
            return -1
    frames.append((channel, mtype, args, headers))
    return p


def _header_entry_at(buf: bytes, p: int, end: int, headers: list[Any]) -> int:
    """One header entry (an index, or a ``[store, name, value]`` literal) appended; the offset
    after it, or -1."""
    if p >= end:
        return -1
    b = buf[p]
    if b != 0x93:
        index, p = _uint_at(buf, p, end)
        if index < 0:
            return -1
        headers.append(index)
        return p
    if p + 2 >= end:
        return -1
    flag = buf[p + 1]
    if flag != 0xC2 and flag != 0xC3:
        return -1
    name: Any
    n, q = _raw_at(buf, p + 2, end)
    if n >= 0:
        if q + n > end:
            return -1
        name = buf[q : q + n]
        q += n
    else:
        name, q = _uint_at(buf, p + 2, end)
        if name < 0:
            return -1
    n, q = _raw_at(buf, q, end)
    if n < 0 or q + n > end:
        return -1
    headers.append([flag == 0xC3, name, buf[q : q + n]])
    return q + n


def _uint_at(buf: bytes, p: int, end: int) -> tuple[int, int]:
    """(an unsigned integer at ``p``, the offset after it), or (-1, p)."""
    if p >= end:
        return -1, p
    b = buf[p]
    if b < 0x80:
        return b, p + 1
    if b == 0xCC:
        if p + 2 > end:
            return -1, p
        return buf[p + 1], p + 2
    if b == 0xCD:
        if p + 3 > end:
            return -1, p
        return (buf[p + 1] << 8) | buf[p + 2], p + 3
    if b == 0xCE:
        if p + 5 > end:
            return -1, p
        return (buf[p + 1] << 24) | (buf[p + 2] << 16) | (buf[p + 3] << 8) | buf[p + 4], p + 5
    if b == 0xCF:
        if p + 9 > end:
            return -1, p
        return int.from_bytes(buf[p + 1 : p + 9], "big"), p + 9
    return -1, p


def _raw_at(buf: bytes, p: int, end: int) -> tuple[int, int]:
    """(the length of a string or bin at ``p``, the offset of its bytes), or (-1, p); the
    bytes themselves may still be missing."""
    if p >= end:
        return -1, p
    b = buf[p]
    if 0xA0 <= b <= 0xBF:
        return b & 0x1F, p + 1
    if b == 0xD9 or b == 0xC4:
        if p + 2 > end:
            return -1, p
        return buf[p + 1], p + 2
    if b == 0xDA or b == 0xC5:
        if p + 3 > end:
            return -1, p
        return (buf[p + 1] << 8) | buf[p + 2], p + 3
    if b == 0xDB or b == 0xC6:
        if p + 5 > end:
            return -1, p
        return int.from_bytes(buf[p + 1 : p + 5], "big"), p + 5
    return -1, p


class _Walker:
    """Steps over the items of one frame without building them, to find where it ends and to
    refuse oversized declared lengths early.

    It resumes where it stopped when an incomplete frame grows, and jumps over string bodies,
    so its cost is proportional to the number of items, not bytes.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.reset(0)

    def reset(self, start: int) -> None:
        self._offset = start
        self._stack: list[int] = [1]  # items still expected at each nesting level

    def rebase(self, shift: int) -> None:
        """The bytes before ``shift`` were dropped from the buffer."""
        self._offset -= shift

    def advance(self, buf: bytes | bytearray) -> int:
        """The offset just past the frame, or -1 while it is incomplete."""
        limit = self.limit
        stack = self._stack
        while stack:
            pos = self._offset
            if pos >= len(buf):
                return -1
            b = buf[pos]
            need, children = _item_size(buf, pos, b)
            if need < 0:
                return -1  # header incomplete
            if need - (1 if b <= 0x7F or b >= 0xE0 else 0) > limit or children > limit:
                raise TransportError(
                    f"declared length exceeds the frame limit of {limit} bytes",
                    code=Transport.PARSE,
                )
            if pos + need > len(buf):
                return -1  # body incomplete; its length was checked
            stack[-1] -= 1
            if children:
                stack.append(children)
            self._offset = pos + need
            while stack and stack[-1] == 0:
                stack.pop()
        return self._offset


_FIXED = {
    0xC0: 1,
    0xC2: 1,
    0xC3: 1,
    0xCA: 5,
    0xCB: 9,
    0xCC: 2,
    0xCD: 3,
    0xCE: 5,
    0xCF: 9,
    0xD0: 2,
    0xD1: 3,
    0xD2: 5,
    0xD3: 9,
    0xD4: 3,
    0xD5: 4,
    0xD6: 6,
    0xD7: 10,
    0xD8: 18,
}
_LEN = {
    0xC4: (1, "B"),
    0xC5: (2, ">H"),
    0xC6: (4, ">I"),
    0xD9: (1, "B"),
    0xDA: (2, ">H"),
    0xDB: (4, ">I"),
    0xC7: (1, "B"),
    0xC8: (2, ">H"),
    0xC9: (4, ">I"),
}
_CONTAINER = {0xDC: (2, ">H", 1), 0xDD: (4, ">I", 1), 0xDE: (2, ">H", 2), 0xDF: (4, ">I", 2)}


def _item_size(buf: bytes | bytearray, pos: int, b: int) -> tuple[int, int]:
    """(bytes of this item excluding children, number of child items); (-1, 0) if unknown yet."""
    if b <= 0x7F or b >= 0xE0:
        return 1, 0
    if 0x80 <= b <= 0x8F:
        return 1, 2 * (b & 0x0F)
    if 0x90 <= b <= 0x9F:
        return 1, b & 0x0F
    if 0xA0 <= b <= 0xBF:
        return 1 + (b & 0x1F), 0
    if b in _FIXED:
        return _FIXED[b], 0
    if b in _LEN:
        width, fmt = _LEN[b]
        if pos + 1 + width > len(buf):
            return -1, 0
        (n,) = struct.unpack_from(fmt, buf, pos + 1)
        extra = 1 if b in (0xC7, 0xC8, 0xC9) else 0  # ext type byte
        return 1 + width + extra + n, 0
    if b in _CONTAINER:
        width, fmt, mult = _CONTAINER[b]
        if pos + 1 + width > len(buf):
            return -1, 0
        (n,) = struct.unpack_from(fmt, buf, pos + 1)
        return 1 + width, n * mult
    raise TransportError(f"invalid msgpack type byte 0x{b:02x}", code=Transport.PARSE)


_packer: Final = msgpack.Packer(use_bin_type=False, autoreset=True)
_pack: Final = _packer.pack


_PACKED_DEFAULT_TRACE: Final = _pack(DEFAULT_TRACE_ENTRIES)
_DEFAULT_TRACE_SIZE: Final = len(_PACKED_DEFAULT_TRACE)


def pack(obj: Any) -> bytes:
    """Pack one value in the wire dialect (old-spec raw strings, no bin)."""
    return _pack(obj)


def encode_frame(
    channel: int, mtype: int, args: Sequence[Any], headers: Sequence[Any] = ()
) -> bytes:
    """A 4-element frame. ``headers`` are already-encoded header entries."""
    if not headers and len(args) == 1 and type(args[0]) is bytes:  # a chunk: no re-copy
        chunk: bytes = args[0]
        return b"".join(
            (b"\x94", _uint(channel), _uint(mtype), _one_raw(len(chunk)), chunk, b"\x90")
        )
    return _pack([channel, mtype, args, headers])


def encode_frame_packed_headers(
    channel: int, mtype: int, args: Sequence[Any], packed_headers: bytes
) -> bytes:
    """A 4-element frame whose headers array was packed once in advance (the hot path)."""
    return encode_frame_on(_uint(channel), mtype, args, packed_headers)


def encode_frame_on(
    packed_channel: bytes, mtype: int, args: Sequence[Any], packed_headers: bytes
) -> bytes:
    """As :func:`encode_frame_packed_headers`, for a channel id packed once
    (:func:`pack_uint`) and reused for every frame on the channel."""
    if type(args) is list and len(args) == 1:
        chunk = args[0]
        if type(chunk) is bytes:  # joined around the chunk: it is not copied twice
            mt = _uint(mtype)
            return b"".join(
                (b"\x94", packed_channel, mt, _one_raw(len(chunk)), chunk, packed_headers)
            )
    return b"".join((b"\x94", packed_channel, _uint(mtype), _packed_args(args), packed_headers))


def _packed_args(args: Sequence[Any]) -> bytes:
    """The arguments array; the request path's shapes (none, one string) without the packer."""
    if type(args) is list:
        if not args:
            return b"\x90"
        if len(args) == 1:
            arg = args[0]
            if type(arg) is str:
                arg = arg.encode()
            if type(arg) is bytes:
                return _one_raw(len(arg)) + arg
    return _pack(args)


def pack_literal_headers(headers: Sequence[tuple[bytes, bytes]]) -> bytes:
    """The headers element of a frame, packed, with every header an unindexed literal
    ``[false, name, value]`` (as a non-compressing header encoder writes them)."""
    count = len(headers)
    parts = [_array_head(count)]
    for name, value in headers:
        if type(name) is not bytes or type(value) is not bytes:
            return _pack([[False, n, v] for n, v in headers])
        parts.append(b"\x93\xc2")
        parts.append(_raw_head(len(name)))
        parts.append(name)
        parts.append(_raw_head(len(value)))
        parts.append(value)
    return b"".join(parts)


def encode_stream(
    channel: int,
    first: tuple[int, Sequence[Any], bytes],
    write: int,
    chunk: bytes,
    close: int,
    packed_headers: bytes,
) -> bytes:
    """Three frames on one channel in one step: ``first`` (type, args, its packed headers),
    ``write [chunk]`` and ``close []``, the last two with ``packed_headers``."""
    mtype, args, first_headers = first
    ch = _uint(channel)
    return b"".join(
        (
            b"\x94", ch, _uint(mtype), _packed_args(args), first_headers,
            b"\x94", ch, _uint(write), _one_raw(len(chunk)), chunk, packed_headers,
            b"\x94", ch, _uint(close), b"\x90", packed_headers,
        )
    )  # fmt: skip


def pack_uint(value: int) -> bytes:
    """An unsigned integer as the packer writes it (a channel id, packed once per channel)."""
    return _uint(value)


def _uint(value: int) -> bytes:
    """An unsigned integer as the packer writes it (channel ids grow past one byte)."""
    if 0 <= value < 0x80:
        return _FIXINT[value]
    if 0 <= value < 0x100:
        return _UINT8[value]
    if 0 <= value < 0x10000:
        return (0xCD0000 | value).to_bytes(3, "big")
    if 0 <= value < 0x100000000:
        return (0xCE00000000 | value).to_bytes(5, "big")
    return _pack(value)


def _array_head(size: int) -> bytes:
    """The head of an array of ``size`` items (fixarray, array16 or array32)."""
    return _sized_head(size, _FIXARRAY, 0xDC, 0xDD)


def _raw_head(size: int) -> bytes:
    """The head of a raw string of ``size`` bytes (fixstr, str16 or str32)."""
    return _sized_head(size, _FIXSTR, 0xDA, 0xDB)


def _sized_head(size: int, fixed: tuple[bytes, ...], code16: int, code32: int) -> bytes:
    """A head with the size inside it while it fits ``fixed``, else ``code16`` or ``code32``
    and the size in two or four bytes."""
    if size < len(fixed):
        return fixed[size]
    if size < 0x10000:
        return ((code16 << 16) | size).to_bytes(3, "big")
    return ((code32 << 32) | size).to_bytes(5, "big")


def _one_raw(size: int) -> bytes:
    """The head of ``[raw]`` for a raw string of ``size`` bytes: the chunk itself is not copied
    into the packer (fixstr, str16 or str32, as the packer writes them)."""
    return _ONE_FIXSTR[size] if size < 32 else b"\x91" + _raw_head(size)


_ONE_FIXSTR: Final[tuple[bytes, ...]] = tuple(bytes((0x91, 0xA0 | n)) for n in range(32))
_FIXSTR: Final[tuple[bytes, ...]] = tuple(bytes((0xA0 | n,)) for n in range(32))
_FIXARRAY: Final[tuple[bytes, ...]] = tuple(bytes((0x90 | n,)) for n in range(16))
_FIXINT: Final[tuple[bytes, ...]] = tuple(bytes((i,)) for i in range(128))  # positive fixints
_UINT8: Final[tuple[bytes, ...]] = tuple(bytes((0xCC, i)) for i in range(256))


def encode_frame3(channel: int, mtype: int, args: Sequence[Any]) -> bytes:
    """A 3-element frame, as v12 workers of the original framework send."""
    return _pack([channel, mtype, args])


__all__ = [
    "DEFAULT_MAX_FRAME_SIZE",
    "Frame",
    "FrameDecoder",
    "RawFrame",
    "encode_frame",
    "encode_frame3",
    "encode_frame_on",
    "encode_frame_packed_headers",
    "encode_stream",
    "pack",
    "pack_literal_headers",
    "pack_uint",
]
