"""The proxy's routing table (spec §7): which app and event a request is for, and its URI."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cocaine.proxy.routing import Route, route


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (b"/echo/web", ("echo", "web", b"/")),
        (b"/echo/web?x=1", ("echo", "web", b"/?x=1")),
        (b"/echo/web/", ("echo", "web", b"/")),
        (b"/echo/web/a/b?c=d&e=/f", ("echo", "web", b"/a/b?c=d&e=/f")),
        (b"/echo/web?next=/echo/other", ("echo", "web", b"/?next=/echo/other")),
        (b"/echo/web//double", ("echo", "web", b"//double")),
        (b"/my-app.v2/do_it/x", ("my-app.v2", "do_it", b"/x")),
    ],
)
def test_the_path_names_app_and_event_and_the_rest_is_the_uri(path: bytes, expected: Route) -> None:
    assert route(path, None, None) == expected


@pytest.mark.parametrize(
    "path",
    [
        b"/",
        b"",
        b"/echo",
        b"/echo/",
        b"/echo?x=1",
        b"/echo?x=/web",
        b"//web",
        b"//web/rest",
        b"/echo/?x=1",
        b"/ping",
        b"echo/web",
        b"http://host/echo/web",
    ],
)
def test_a_path_without_app_and_event_has_no_route(path: bytes) -> None:
    assert route(path, None, None) is None


def test_both_headers_win_and_keep_the_uri() -> None:
    assert route(b"/other/thing?q=1", b"echo", b"web") == ("echo", "web", b"/other/thing?q=1")
    assert route(b"/", b"echo", b"web") == ("echo", "web", b"/")
    assert route(b"/ping", b"echo", b"web") == ("echo", "web", b"/ping")


@pytest.mark.parametrize(("service", "event"), [(b"echo", None), (None, b"web"), (b"", b"web")])
def test_one_header_alone_is_ignored(service: bytes | None, event: bytes | None) -> None:
    assert route(b"/app/event?x=1", service, event) == ("app", "event", b"/?x=1")
    assert route(b"/", service, event) is None


segment = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="/?"),
    min_size=1,
    max_size=12,
)
rest = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=20).filter(
    lambda r: r == "" or r[0] in "/?"
)


@given(app=segment, event=segment, tail=rest)
def test_any_app_and_event_round_trip(app: str, event: str, tail: str) -> None:
    found = route(f"/{app}/{event}{tail}".encode(), None, None)
    uri = tail if tail.startswith("/") else "/" + tail
    assert found == (app, event, uri.encode())


_GRAMMAR = re.compile(rb"^/([^/?]+)/([^/?]+)(.*)$", re.DOTALL)


@given(
    path=st.binary(max_size=24) | st.lists(st.sampled_from([b"/", b"?", b"a", b"\n"])).map(b"".join)
)
def test_routing_follows_the_grammar_for_any_path(path: bytes) -> None:
    """``/<app>/<event><rest>``, app and event free of '/' and '?', as a regular expression."""
    match = _GRAMMAR.match(path)
    if match is None:
        assert route(path, None, None) is None
    else:
        app, event, tail = match.groups()
        uri = tail if tail.startswith(b"/") else b"/" + tail
        assert route(path, None, None) == (app.decode("latin-1"), event.decode("latin-1"), uri)
