"""Frame headers: the HPACK-like header tables, their decoder and encoder, and known headers.

The fourth element of a frame is a list of header entries. Each entry is either an ``int`` (a full
reference into the table) or a literal ``[store, name, value]`` whose ``name`` may itself be an
index; ``store=True`` asks the receiver to push the header onto its dynamic table. There is no
Huffman coding and no table-size update. Each direction of a connection has its own table, so a
connection owns one :class:`HeaderDecoder` (what it receives) and one :class:`HeaderEncoder` (what
it sends), and both sides stay in sync only if every frame is decoded in order.

Theory of operation of a table: indices 1..82 are the static table, 83 and up the dynamic table,
newest first. Pushing costs ``len(name) + len(value) + 32`` bytes; the oldest entries are evicted
until the total fits the capacity, and an entry larger than the whole capacity empties the table
and is not stored (RFC 7541 §4.4).

Names and values are ``bytes`` throughout, as the frame decoder delivers them. No I/O here.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from typing import Any, Final

from cocaine.errors import Transport, TransportError

Header = tuple[bytes, bytes]

DEFAULT_CAPACITY: Final = 4096
ENTRY_OVERHEAD: Final = 32

TRACE_ID: Final = b"trace_id"
SPAN_ID: Final = b"span_id"
PARENT_ID: Final = b"parent_id"
TRACE_BIT: Final = b"trace_bit"
REQUEST_TIMEOUT: Final = b"request_timeout"
AUTHORIZATION: Final = b"authorization"

_ZERO_U64 = bytes(8)
_EMPTY: Header = (b"", b"")

STATIC_TABLE: tuple[Header, ...] = (
    _EMPTY,  # 0 is reserved: an index of 0 is invalid on the wire
    (b":authority", b""),
    (b":method", b"GET"),
    (b":method", b"POST"),
    (b":path", b"/"),
    (b":path", b"/index.html"),
    (b":scheme", b"http"),
    (b":scheme", b"https"),
    (b":status", b"200"),
    (b":status", b"204"),
    (b":status", b"206"),
    (b":status", b"304"),
    (b":status", b"400"),
    (b":status", b"404"),
    (b":status", b"500"),
    (b"accept-charset", b""),
    (b"accept-encoding", b"gzip, deflate"),
    (b"accept-language", b""),
    (b"accept-ranges", b""),
    (b"accept", b""),
    (b"access-control-allow-origin", b""),
    (b"age", b""),
    (b"allow", b""),
    (AUTHORIZATION, b""),  # 23
    (b"cache-control", b""),
    (b"content-disposition", b""),
    (b"content-encoding", b""),
    (b"content-language", b""),
    (b"content-length", b""),
    (b"content-location", b""),
    (b"content-range", b""),
    (b"content-type", b""),
    (b"cookie", b""),
    (b"date", b""),
    (b"etag", b""),
    (b"expect", b""),
    (b"expires", b""),
    (b"from", b""),
    (b"host", b""),
    (b"if-match", b""),
    (b"if-modified-since", b""),
    (b"if-none-match", b""),
    (b"if-range", b""),
    (b"if-unmodified-since", b""),
    (b"last-modified", b""),
    (b"link", b""),
    (b"location", b""),
    (b"max-forwards", b""),
    (b"proxy-authenticate", b""),
    (b"proxy-authorization", b""),
    (b"range", b""),
    (b"referer", b""),
    (b"refresh", b""),
    (b"retry-after", b""),
    (b"server", b""),
    (b"set-cookie", b""),
    (b"strict-transport-security", b""),
    (b"transfer-encoding", b""),
    (b"user-agent", b""),
    (b"vary", b""),
    (b"via", b""),
    (b"www-authenticate", b""),  # 61
    *((_EMPTY,) * 18),  # 62..79: placeholders that keep the trace headers at 80..82
    (TRACE_ID, _ZERO_U64),  # 80
    (SPAN_ID, _ZERO_U64),  # 81
    (PARENT_ID, _ZERO_U64),  # 82
)

DYNAMIC_BASE = len(STATIC_TABLE)  # 83: the index of the newest dynamic entry

# Lookups for the encoder: the lowest static index for each header and each name.
# Slot 0 and the placeholders have an empty name and are never offered as matches.
_STATIC_FULL: dict[Header, int] = {}
_STATIC_NAMES: dict[bytes, int] = {}
for _index, _header in enumerate(STATIC_TABLE):
    if _header[0]:
        _STATIC_FULL.setdefault(_header, _index)
        _STATIC_NAMES.setdefault(_header[0], _index)
del _index, _header


def _hpack_error(reason: str) -> TransportError:
    return TransportError(reason, code=Transport.HPACK)


class HeaderTable:
    """The static table plus one dynamic table: one direction of one connection."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 0:
            raise ValueError(f"header table capacity must be >= 0, got {capacity}")
        self._capacity = capacity
        self._size = 0
        self._entries: deque[Header] = deque()  # newest at the left
        # Every push gets a sequence number; for each header and each name we keep the number of
        # its newest push still in the table. Eviction removes the oldest entry first, so the
        # newest occurrence is the last to go and the maps stay exact.
        self._pushed = 0
        self._full: dict[Header, int] = {}
        self._names: dict[bytes, int] = {}

    @property
    def capacity(self) -> int:
        """The most bytes the dynamic table may hold."""
        return self._capacity

    @property
    def size(self) -> int:
        """Bytes held by the dynamic table (each entry counts ``len(name) + len(value) + 32``)."""
        return self._size

    def __len__(self) -> int:
        """The number of entries in the dynamic table."""
        return len(self._entries)

    def __repr__(self) -> str:
        return f"HeaderTable(entries={len(self._entries)}, size={self._size}/{self._capacity})"

    def get(self, index: int) -> Header:
        """The header at ``index``; raises ``TransportError`` (hpack) for 0 or out of range."""
        if 0 < index < DYNAMIC_BASE:
            return STATIC_TABLE[index]
        position = index - DYNAMIC_BASE
        if 0 <= position < len(self._entries):
            return self._entries[position]
        raise _hpack_error(
            f"header index {index} is out of range (valid: 1..{DYNAMIC_BASE + len(self) - 1})"
        )

    def push(self, header: Header) -> None:
        """Insert ``header`` as the newest dynamic entry, evicting the oldest ones to fit."""
        name, value = header
        cost = len(name) + len(value) + ENTRY_OVERHEAD
        if cost > self._capacity:
            self._clear()
            return
        self._size += cost
        while self._size > self._capacity:
            self._evict()
        header = (name, value)
        self._entries.appendleft(header)
        self._full[header] = self._names[name] = self._pushed
        self._pushed += 1

    def find(self, header: Header) -> tuple[int, bool] | None:
        """The best index for ``header``: ``(index, True)`` for a full match, ``(index, False)``
        when only the name matches, ``None`` when neither does. Static entries win ties."""
        index = _STATIC_FULL.get(header)
        if index is not None:
            return index, True
        seq = self._full.get(header)
        if seq is not None:
            return self._index_of(seq), True
        name = header[0]
        index = _STATIC_NAMES.get(name)
        if index is not None:
            return index, False
        seq = self._names.get(name)
        if seq is not None:
            return self._index_of(seq), False
        return None

    def _index_of(self, seq: int) -> int:
        return DYNAMIC_BASE + self._pushed - 1 - seq

    def _evict(self) -> None:
        seq = self._pushed - len(self._entries)
        header = self._entries.pop()
        name, value = header
        self._size -= len(name) + len(value) + ENTRY_OVERHEAD
        if self._full.get(header) == seq:
            del self._full[header]
        if self._names.get(name) == seq:
            del self._names[name]

    def _clear(self) -> None:
        self._entries.clear()
        self._full.clear()
        self._names.clear()
        self._size = 0


class HeaderDecoder:
    """Turns the header entries of received frames into ``(name, value)`` pairs.

    Frames must be decoded in the order they arrived. After a ``TransportError`` the table may
    be out of sync with the peer's; the connection has to close.
    """

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self._table = HeaderTable(capacity)

    @property
    def table(self) -> HeaderTable:
        return self._table

    def decode(self, entries: object) -> list[Header]:
        """Decode the headers element of one frame; raises ``TransportError`` (hpack)."""
        if entries is DEFAULT_TRACE_ENTRIES:  # as the frame decoder hands over the default trace
            return list(_DEFAULT_TRACE_DECODED)
        items: list[Any]
        if type(entries) is list:
            items = entries
        elif isinstance(entries, tuple):
            items = list(entries)
        else:
            raise _hpack_error(f"frame headers must be an array, got {_kind(entries)}")
        if not items:
            return []
        table = self._table
        headers: list[Header] = []
        try:
            for entry in items:
                if type(entry) is list and len(entry) == 3:  # the common literal, checked inline
                    store = entry[0]
                    name = entry[1]
                    value = entry[2]
                    if store is False and type(name) is bytes and type(value) is bytes:
                        headers.append((name, value))
                        continue
                if type(entry) is int:
                    headers.append(table.get(entry))
                    continue
                if type(entry) is not list and not isinstance(entry, tuple):
                    raise _hpack_error(
                        f"expected an index or [store, name, value], got {_kind(entry)}"
                    )
                if len(entry) != 3:
                    raise _hpack_error(
                        f"a literal header must be [store, name, value], got {len(entry)} elements"
                    )
                store, name, value = entry
                if type(name) is int:
                    name = table.get(name)[0]
                elif type(name) is not bytes:
                    if type(name) is not str:
                        raise _hpack_error(
                            f"header name must be a string or index, got {_kind(name)}"
                        )
                    name = name.encode()
                if type(value) is not bytes:
                    if type(value) is not str:
                        raise _hpack_error(f"header value must be a string, got {_kind(value)}")
                    value = value.encode()
                header = (name, value)
                if store is True:
                    table.push(header)
                elif store is not False:
                    raise _hpack_error(f"header store flag must be a boolean, got {_kind(store)}")
                headers.append(header)
        except TransportError as exc:
            raise _hpack_error(f"bad header entry $[{len(headers)}]: {exc.reason}") from None
        return headers


class HeaderEncoder:
    """Turns ``(name, value)`` pairs into header entries for frames to send.

    ``compress=False`` sends every header as an unindexed literal ``[False, name, value]``, as
    the runtime does. ``compress=True`` refers to the table where it can and stores new headers,
    as the Python client does; the peer's decoder then tracks the same table.
    """

    def __init__(self, capacity: int = DEFAULT_CAPACITY, *, compress: bool = False) -> None:
        self._table = HeaderTable(capacity)
        self._compress = compress

    @property
    def table(self) -> HeaderTable:
        return self._table

    @property
    def compress(self) -> bool:
        return self._compress

    def encode(self, headers: Iterable[Header]) -> list[object]:
        """Header entries for one frame, packable with ``use_bin_type=False``."""
        if not self._compress:
            return [[False, name, value] for name, value in headers]
        table = self._table
        entries: list[object] = []
        for name, value in headers:
            header = (name, value)
            found = table.find(header)
            if found is None:
                entries.append([True, name, value])
            elif found[1]:
                entries.append(found[0])
                continue
            else:
                entries.append([True, found[0], value])
            table.push(header)
        return entries


def pack_u64(value: int) -> bytes:
    """An unsigned 64-bit integer as 8 little-endian bytes (the trace and timeout headers)."""
    return value.to_bytes(8, "little")


def unpack_u64(raw: bytes) -> int:
    """The inverse of :func:`pack_u64`; raises ``TransportError`` (hpack) unless 8 bytes long."""
    if len(raw) != 8:
        raise _hpack_error(f"expected an 8-byte little-endian integer, got {len(raw)} bytes")
    return int.from_bytes(raw, "little")


def trace_entries(trace_id: int = 0, span_id: int = 0, parent_id: int = 0) -> list[object]:
    """The three trace headers as unindexed literals, as the runtime prepends to every frame."""
    return [
        [False, TRACE_ID, pack_u64(trace_id)],
        [False, SPAN_ID, pack_u64(span_id)],
        [False, PARENT_ID, pack_u64(parent_id)],
    ]


# The trace headers of a frame outside any trace. Shared: never mutate it.
DEFAULT_TRACE_ENTRIES: list[object] = trace_entries()


def find_header(headers: Sequence[Header], name: bytes) -> bytes | None:
    """The value of the last header called ``name``, or ``None``."""
    i = len(headers)
    while i > 0:  # an index loop: compiled, cheaper than a reversed() iterator
        i -= 1
        header = headers[i]
        if header[0] == name:
            return header[1]
    return None


def request_timeout(headers: Sequence[Header]) -> float | None:
    """The ``request_timeout`` header in seconds (it travels as uint64 milliseconds), or None."""
    raw = find_header(headers, REQUEST_TIMEOUT)
    if raw is None:
        return None
    return unpack_u64(raw) / 1000.0


def trace_of(headers: Sequence[Header]) -> tuple[int, int, int]:
    """``(trace_id, span_id, parent_id)``, each 0 when absent; malformed ones raise."""
    trace = find_header(headers, TRACE_ID)
    span = find_header(headers, SPAN_ID)
    parent = find_header(headers, PARENT_ID)
    return (
        0 if trace is None else unpack_u64(trace),
        0 if span is None else unpack_u64(span),
        0 if parent is None else unpack_u64(parent),
    )


def _kind(obj: object) -> str:
    return type(obj).__name__


__all__ = [
    "AUTHORIZATION",
    "DEFAULT_CAPACITY",
    "DEFAULT_TRACE_ENTRIES",
    "DYNAMIC_BASE",
    "ENTRY_OVERHEAD",
    "PARENT_ID",
    "REQUEST_TIMEOUT",
    "SPAN_ID",
    "STATIC_TABLE",
    "TRACE_BIT",
    "TRACE_ID",
    "Header",
    "HeaderDecoder",
    "HeaderEncoder",
    "HeaderTable",
    "find_header",
    "pack_u64",
    "request_timeout",
    "trace_entries",
    "trace_of",
    "unpack_u64",
]


# The runtime's default headers, decoded.
_DEFAULT_TRACE_DECODED: Final[tuple[Header, ...]] = tuple(
    (name, _ZERO_U64) for name in (TRACE_ID, SPAN_ID, PARENT_ID)
)
