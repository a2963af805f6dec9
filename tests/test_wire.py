from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flask_sse_resilience import wire
from flask_sse_resilience.models import Event

from .sse import parse


def test_data_is_split_on_every_spec_line_ending() -> None:
    frame = wire.encode("a\r\nb\rc\nd", event_id="1-0")
    assert frame == b"id: 1-0\ndata: a\ndata: b\ndata: c\ndata: d\n\n"
    (event,) = parse([frame])
    assert event.data == "a\nb\nc\nd"
    assert event.id == "1-0"


@pytest.mark.parametrize("bad", ["a\nb", "a\rb", "a\0b"])
def test_event_and_id_refuse_line_breaks_and_nul(bad: str) -> None:
    with pytest.raises(ValueError):
        wire.encode("x", event=bad)
    with pytest.raises(ValueError):
        wire.encode("x", event_id=bad)


def test_retry_and_comment() -> None:
    assert wire.encode("x", retry=1500) == b"retry: 1500\ndata: x\n\n"
    with pytest.raises(ValueError):
        wire.encode("x", retry=-1)
    assert wire.comment("hi\nthere") == b": hi\n: there\n\n"
    (keepalive,) = parse([wire.KEEPALIVE])
    assert keepalive.event == "heartbeat"  # not "message": onmessage ignores it
    assert wire.KEEPALIVE.startswith(b": heartbeat\n")


def test_dumps_refuses_what_json_parse_cannot_read() -> None:
    with pytest.raises(ValueError):
        wire.dumps(math.nan)
    with pytest.raises(TypeError):
        wire.dumps({1, 2})


def test_lone_surrogates_are_escaped_not_lost() -> None:
    text = wire.dumps({"s": "\udc80x"})
    assert text.isascii()
    assert json.loads(text) == {"s": "\udc80x"}


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(), children, max_size=4)
    ),
    max_leaves=12,
)


@given(json_values, st.text(min_size=1, max_size=20).filter(lambda t: t.isprintable()))
def test_any_json_value_round_trips_as_one_event(value: object, kind: str) -> None:
    event = Event(id="5-1", seq=1, type=kind, data_json=wire.dumps(value))
    frame = event.encode()
    # Split the frame at an arbitrary point, as TCP may.
    middle = len(frame) // 2
    parsed = list(parse([frame[:middle], frame[middle:]]))
    assert len(parsed) == 1
    assert parsed[0].id == "5-1"
    assert json.loads(parsed[0].data) == {"type": kind, "data": value}


@given(st.text())
def test_any_text_round_trips_modulo_line_ending_normalisation(text: str) -> None:
    try:
        frame = wire.encode(text)
    except UnicodeEncodeError:
        return  # lone surrogates are not text a socket can carry
    (event,) = parse([frame])
    expected = text.replace("\r\n", "\n").replace("\r", "\n")
    assert event.data == expected
