"""The graph model and the service tables, in the wire form ``resolve`` sends (spec §2.4, §4)."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest

from cocaine.idl import APP, LOCATOR, LOGGING, NODE, STORAGE
from cocaine.idl.interface import Interface
from cocaine.protocol.graph import (
    CONTROL_IDS,
    PRIMITIVE,
    RECURSIVE,
    STREAMING,
    TERMINAL,
    VOID,
    Message,
    Protocol,
    after,
    from_wire,
    kind,
    to_wire,
    with_control,
)

P = {0: ["value", {}], 1: ["error", {}]}
S = {0: ["write", None], 1: ["error", {}], 2: ["close", {}]}
CONTROL_ENTRIES = {
    65532: ["goaway", {}, P],
    65533: ["ping", {}, P],
    65534: ["settings", {}, P],
    65535: ["revoke", {}, P],
}


def test_app_graph_is_exactly_the_resolved_one() -> None:
    """Spec §2.7(a): what ``resolve("echo")`` returns as the graph."""
    assert to_wire(APP.root) == {
        0: ["enqueue", S, S],
        1: ["info", {}, P],
        2: ["control", S, P],
        **CONTROL_ENTRIES,
    }
    assert APP.version == 1


def test_app_graph_packs_like_the_runtime() -> None:
    packed = msgpack.packb(to_wire(APP.root), use_bin_type=False)
    # control keys are uint16 (cd ff fc .. cd ff ff), aliases raw strings
    for key in (b"\xcd\xff\xfc", b"\xcd\xff\xfd", b"\xcd\xff\xfe", b"\xcd\xff\xff"):
        assert key in packed
    assert b"\xa7enqueue" in packed and b"\xa5write\xc0" in packed


SERVICES: dict[str, tuple[Interface, int, list[str]]] = {
    "locator": (
        LOCATOR,
        3,
        ["resolve", "connect", "refresh", "cluster", "publish", "routing", "uuid"],
    ),
    "storage": (STORAGE, 1, ["read", "write", "remove", "find"]),
    "logging": (LOGGING, 2, ["emit", "verbosity", "set_verbosity"]),
    "node": (NODE, 1, ["start_app", "pause_app", "list", "info", "control", "enqueue"]),
    "app": (APP, 1, ["enqueue", "info", "control"]),
}


@pytest.mark.parametrize("name", list(SERVICES))
def test_service_ids_names_and_versions(name: str) -> None:
    iface, version, aliases = SERVICES[name]
    assert iface.version == version
    wire = to_wire(iface.root)
    assert {mid: entry[0] for mid, entry in wire.items() if mid < 65532} == dict(enumerate(aliases))
    assert {mid: entry for mid, entry in wire.items() if mid >= 65532} == CONTROL_ENTRIES
    for mid, alias in enumerate(aliases):
        assert iface.root.id_of(alias) == mid
        assert iface.root[mid].alias == alias


def test_locator_transitions() -> None:
    wire = to_wire(LOCATOR.root)
    discard = {0: ["discard", {}], **{mid: [a, {}] for a, mid in CONTROL_IDS.items()}}
    assert wire[0] == ["resolve", {}, P]
    assert wire[1] == ["connect", {}, S]
    assert wire[2] == ["refresh", {}, P]
    assert wire[3] == ["cluster", {}, P]
    assert wire[4] == ["publish", discard, P]
    assert wire[5] == ["routing", discard, S]
    assert wire[6] == ["uuid", {}, P]


def test_storage_node_logging_transitions() -> None:
    assert [e[1:] for m, e in sorted(to_wire(STORAGE.root).items()) if m < 4] == [[{}, P]] * 4
    logging = to_wire(LOGGING.root)
    assert logging[0] == ["emit", {}, {}]  # mute: no reply at all
    assert logging[1] == ["verbosity", {}, P]
    assert logging[2] == ["set_verbosity", {}, P]
    node = to_wire(NODE.root)
    assert [node[i][1:] for i in range(4)] == [[{}, P]] * 4
    assert node[4] == ["control", S, P]
    assert node[5] == ["enqueue", S, S]


def shape(t: Any) -> Any:
    """A comparable picture of a transition: aliases and transitions only."""
    if t is RECURSIVE:
        return "recursive"
    assert isinstance(t, Protocol)
    return {mid: (m.alias, shape(m.dispatch)) for mid, m in t.messages.items()}


@pytest.mark.parametrize("name", list(SERVICES))
def test_from_wire_after_msgpack_gives_back_the_graph(name: str) -> None:
    iface = SERVICES[name][0]
    raw = msgpack.unpackb(
        msgpack.packb(to_wire(iface.root), use_bin_type=False), raw=True, strict_map_key=False
    )
    assert isinstance(raw[0][0], bytes)  # aliases come back as raw bytes
    root = from_wire(raw, iface.name)
    assert to_wire(root) == to_wire(iface.root)
    for mid, message in iface.root.messages.items():
        got = root[mid]
        assert got.alias == message.alias
        assert shape(got.dispatch) == shape(message.dispatch)
        assert shape(got.upstream) == shape(message.upstream)
        assert kind(got.upstream) == kind(message.upstream)
    assert root.by_alias == iface.root.by_alias


def test_from_wire_keeps_recursive_terminal_and_switch_apart() -> None:
    root = from_wire({0: [b"enqueue", S, S], 1: [b"info", {}, P], 2: [b"mute", {}, {}]})
    enqueue = root[0]
    assert isinstance(enqueue.dispatch, Protocol)
    assert enqueue.dispatch[0].dispatch is RECURSIVE  # write
    assert after(enqueue.dispatch, enqueue.dispatch[0].dispatch) is enqueue.dispatch
    assert after(enqueue.dispatch, enqueue.dispatch[2].dispatch) is None  # close
    assert root[1].dispatch.terminal and after(root, root[1].dispatch) is None
    assert root[2].upstream.terminal
    assert root.id_of("info") == 1


def test_kind() -> None:
    assert kind(PRIMITIVE) == "primitive"
    assert kind(STREAMING) == "streaming"
    assert kind(VOID) == "void" and kind(TERMINAL) == "void"
    assert kind(RECURSIVE) == "other"
    assert kind(Protocol("x", {0: Message("heartbeat", RECURSIVE)})) == "other"
    assert kind(from_wire({0: [b"a", {}, P]})[0].upstream) == "primitive"
    assert kind(from_wire({0: [b"a", {}, S]})[0].upstream) == "streaming"
    assert kind(from_wire({0: [b"a", {}, {}]})[0].upstream) == "void"
    assert kind(from_wire({0: [b"a", {}, None]})[0].upstream) == "other"
    assert kind(APP.root[0].upstream) == "streaming"
    assert kind(LOGGING.root[0].upstream) == "void"


def test_with_control_adds_the_four_entries() -> None:
    proto = with_control("x", {0: Message("only")})
    assert sorted(proto.messages) == [0, 65532, 65533, 65534, 65535]
    for alias, mid in CONTROL_IDS.items():
        assert proto.id_of(alias) == mid
        assert proto[mid].dispatch is TERMINAL or proto[mid].dispatch.terminal
        assert proto[mid].upstream is PRIMITIVE
    assert CONTROL_IDS == {"goaway": 65532, "ping": 65533, "settings": 65534, "revoke": 65535}


def test_protocol_membership() -> None:
    assert 0 in APP.root and 3 not in APP.root and 65533 in APP.root
    assert TERMINAL.terminal and not STREAMING.terminal
    with pytest.raises(KeyError):
        APP.root.id_of("nope")


@pytest.mark.parametrize(
    "raw",
    [
        None,
        [],
        [[b"a", {}, {}]],
        b"graph",
        {0: b"enqueue"},
        {0: [b"enqueue", {}]},  # a root entry needs three elements
        {0: [b"enqueue", {}, {}, {}]},
        {b"0": [b"enqueue", {}, {}]},
        {0: [5, {}, {}]},
        {0: [None, {}, {}]},
        {0: [b"enqueue", [], {}]},
        {0: [b"enqueue", {}, 7]},
        {0: [b"enqueue", {}, b"primitive"]},
        {0: [b"enqueue", {0: [b"write"]}, {}]},  # a nested entry needs two
        {0: [b"enqueue", {0: b"write"}, {}]},
        {0: [b"enqueue", {b"x": [b"write", None]}, {}]},
        {0: [b"enqueue", {}, {0: [7, {}]}]},
        {0: [b"enqueue", {0: [b"write", {0: [b"deep", 5]}]}, {}]},
    ],
)
def test_malformed_graphs_raise_value_error(raw: Any) -> None:
    with pytest.raises(ValueError):
        from_wire(raw)
