"""Channel states (spec §2.2, §3.2): both ends of a channel, paired in memory."""

from __future__ import annotations

import pytest

from cocaine.errors import Category, Dispatch, DispatchError
from cocaine.idl import APP, CONTROL, HANDSHAKE, INVOKE, LOGGING, STORAGE
from cocaine.idl.worker import CLOSE, ERROR, HEARTBEAT, TERMINATE, WRITE
from cocaine.protocol.channel import ChannelPhase, ChannelState
from cocaine.protocol.graph import PRIMITIVE, STREAMING, Protocol

OPEN, HALF, CLOSED = ChannelPhase.OPEN, ChannelPhase.HALF_CLOSED, ChannelPhase.CLOSED


class Pair:
    """The opener's and the other end's view of one channel; every message goes both ways."""

    def __init__(self, root: Protocol, mtype: int) -> None:
        self.opener, sent = ChannelState.opened_by_us(root, mtype)
        self.peer, received = ChannelState.opened_by_peer(root, mtype)
        assert sent is received

    def opener_sends(self, mtype: int) -> str:
        alias = self.opener.on_send(mtype).alias
        assert self.peer.on_receive(mtype).alias == alias
        return alias

    def peer_sends(self, mtype: int) -> str:
        alias = self.peer.on_send(mtype).alias
        assert self.opener.on_receive(mtype).alias == alias
        return alias

    @property
    def phases(self) -> tuple[ChannelPhase, ChannelPhase]:
        return self.opener.phase, self.peer.phase


def snapshot(state: ChannelState) -> tuple[Protocol | None, Protocol | None]:
    return state.send, state.recv


# -- primitive calls ------------------------------------------------------------------------------


@pytest.mark.parametrize("reply", [0, 1], ids=["value", "error"])
def test_primitive_call_closes_both_sides_after_the_reply(reply: int) -> None:
    pair = Pair(STORAGE.root, STORAGE.root.id_of("read"))
    # the caller sent its only message: its send side is done, it waits for the reply
    assert pair.opener.send is None and pair.opener.recv is PRIMITIVE
    assert pair.peer.send is PRIMITIVE and pair.peer.recv is None
    assert pair.phases == (HALF, HALF)
    assert pair.peer_sends(reply) == ("value", "error")[reply]
    assert pair.phases == (CLOSED, CLOSED)
    assert pair.opener.closed and pair.peer.closed


def test_nothing_more_after_the_reply() -> None:
    pair = Pair(STORAGE.root, 0)
    pair.peer_sends(0)
    for state, act in ((pair.peer, pair.peer.on_send), (pair.opener, pair.opener.on_receive)):
        with pytest.raises(DispatchError) as info:
            act(0)
        assert info.value.pair == (Category.DISPATCH, Dispatch.REVOKED_CHANNEL)
        assert state.closed


def test_caller_cannot_send_after_a_call() -> None:
    pair = Pair(STORAGE.root, 1)
    with pytest.raises(DispatchError) as info:
        pair.opener.on_send(0)
    assert info.value.code == Dispatch.REVOKED_CHANNEL
    with pytest.raises(DispatchError):
        pair.peer.on_receive(0)
    assert pair.phases == (HALF, HALF)


def test_mute_call_is_closed_at_once() -> None:
    pair = Pair(LOGGING.root, LOGGING.root.id_of("emit"))
    assert pair.phases == (CLOSED, CLOSED)


@pytest.mark.parametrize("mtype", [65532, 65533, 65534, 65535])
def test_control_messages_are_primitive_calls(mtype: int) -> None:
    pair = Pair(APP.root, mtype)
    assert pair.phases == (HALF, HALF)
    assert pair.peer_sends(0) == "value"
    assert pair.phases == (CLOSED, CLOSED)


# -- streaming ------------------------------------------------------------------------------------


def test_streaming_write_is_recursive_close_is_terminal() -> None:
    pair = Pair(APP.root, APP.root.id_of("enqueue"))
    assert pair.opener.send is STREAMING and pair.opener.recv is STREAMING
    assert pair.phases == (OPEN, OPEN)
    for _ in range(3):
        assert pair.opener_sends(WRITE) == "write"
        assert pair.peer_sends(WRITE) == "write"
    assert pair.phases == (OPEN, OPEN)
    assert pair.opener_sends(CLOSE) == "close"
    assert pair.phases == (HALF, HALF)
    assert pair.opener.send is None and pair.peer.recv is None
    # the other direction still flows
    assert pair.peer_sends(WRITE) == "write"
    assert pair.peer_sends(WRITE) == "write"
    assert pair.phases == (HALF, HALF)
    assert pair.peer_sends(CLOSE) == "close"
    assert pair.phases == (CLOSED, CLOSED)


def test_streaming_directions_close_in_either_order() -> None:
    pair = Pair(APP.root, 0)
    assert pair.peer_sends(ERROR) == "error"  # the reply side ends first
    assert pair.phases == (HALF, HALF)
    assert pair.opener.recv is None and pair.opener.send is STREAMING
    assert pair.opener_sends(WRITE) == "write"
    assert pair.opener_sends(ERROR) == "error"
    assert pair.phases == (CLOSED, CLOSED)


def test_client_streams_into_a_primitive_reply() -> None:
    """app.control: the client writes pool sizes; the runtime answers once."""
    pair = Pair(APP.root, APP.root.id_of("control"))
    assert pair.opener.send is STREAMING and pair.opener.recv is PRIMITIVE
    pair.opener_sends(WRITE)
    pair.peer_sends(0)
    assert pair.phases == (HALF, HALF)
    pair.opener_sends(WRITE)
    pair.opener_sends(CLOSE)
    assert pair.phases == (CLOSED, CLOSED)


# -- illegal messages -----------------------------------------------------------------------------


@pytest.mark.parametrize("mtype", [3, 7, 65531, -1])
def test_illegal_message_leaves_the_state_unchanged(mtype: int) -> None:
    pair = Pair(APP.root, 0)
    pair.opener_sends(WRITE)
    for state in (pair.opener, pair.peer):
        before = snapshot(state)
        with pytest.raises(DispatchError) as info:
            state.on_send(mtype)
        assert info.value.pair == (Category.DISPATCH, Dispatch.SLOT_NOT_FOUND)
        assert snapshot(state) == before
        with pytest.raises(DispatchError) as info:
            state.on_receive(mtype)
        assert info.value.code == Dispatch.SLOT_NOT_FOUND
        assert snapshot(state) == before
    assert pair.phases == (OPEN, OPEN)
    pair.opener_sends(CLOSE)  # still usable


def test_message_on_a_closed_direction_leaves_the_state_unchanged() -> None:
    pair = Pair(APP.root, 0)
    pair.opener_sends(CLOSE)
    before = snapshot(pair.opener)
    with pytest.raises(DispatchError) as info:
        pair.opener.on_send(WRITE)
    assert info.value.code == Dispatch.REVOKED_CHANNEL
    assert snapshot(pair.opener) == before
    with pytest.raises(DispatchError):
        pair.peer.on_receive(WRITE)
    assert pair.phases == (HALF, HALF)


@pytest.mark.parametrize("opened", ["opened_by_us", "opened_by_peer"])
def test_unknown_first_message(opened: str) -> None:
    with pytest.raises(DispatchError) as info:
        getattr(ChannelState, opened)(APP.root, 3)
    assert info.value.pair == (Category.DISPATCH, Dispatch.SLOT_NOT_FOUND)


# -- the worker protocol --------------------------------------------------------------------------


def test_worker_handshake_heartbeats_then_terminate_from_the_runtime() -> None:
    pair = Pair(HANDSHAKE, 0)  # the worker opens channel 1 with its uuid
    worker, runtime = pair.opener, pair.peer
    assert worker.send is CONTROL and worker.recv is CONTROL
    assert runtime.send is CONTROL and runtime.recv is CONTROL
    for _ in range(3):
        assert pair.opener_sends(HEARTBEAT) == "heartbeat"  # worker → runtime
        assert pair.peer_sends(HEARTBEAT) == "heartbeat"  # the runtime's reply
    assert pair.phases == (OPEN, OPEN)
    assert pair.peer_sends(TERMINATE) == "terminate"  # runtime → worker
    assert pair.phases == (HALF, HALF)
    with pytest.raises(DispatchError):
        runtime.on_send(HEARTBEAT)
    assert pair.opener_sends(HEARTBEAT) == "heartbeat"  # a late heartbeat is still legal
    assert pair.opener_sends(TERMINATE) == "terminate"  # the worker echoes it and stops
    assert pair.phases == (CLOSED, CLOSED)


def test_worker_commits_suicide() -> None:
    pair = Pair(HANDSHAKE, 0)
    pair.opener_sends(HEARTBEAT)
    pair.opener_sends(TERMINATE)
    assert pair.phases == (HALF, HALF)
    pair.peer_sends(TERMINATE)
    assert pair.phases == (CLOSED, CLOSED)


def test_worker_cannot_handshake_twice_on_the_channel() -> None:
    pair = Pair(HANDSHAKE, 0)
    # 0 on the control protocol is a heartbeat, not a second handshake; 2 does not exist
    assert pair.opener_sends(0) == "heartbeat"
    with pytest.raises(DispatchError):
        pair.opener.on_send(2)


def test_invoke_streams_both_ways_and_closes_independently() -> None:
    pair = Pair(INVOKE, 0)  # the runtime opens channel N with invoke [event]
    runtime, worker = pair.opener, pair.peer
    assert runtime.send is STREAMING and worker.send is STREAMING
    pair.opener_sends(WRITE)  # request chunk
    pair.opener_sends(CLOSE)
    assert pair.phases == (HALF, HALF)
    pair.peer_sends(WRITE)  # reply chunks
    pair.peer_sends(WRITE)
    pair.peer_sends(CLOSE)
    assert pair.phases == (CLOSED, CLOSED)
    assert runtime.closed and worker.closed
