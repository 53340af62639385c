"""Hostile input on the request socket: every message gets a clear error (or is dropped) and the hub keeps serving.

Hypothesis drives the decode path of a live hub over a DEALER socket (frames ``[b"", body]``, or
any frames for the tests of garbage that is not a request).  For each example the expected outcome
comes from scripts/hostile.py's ``expected_outcome`` (the hub's own rules: drop, ``protocol``,
``invalid``, or accept), and a ``status`` request on the same socket must be answered right after.

Invalid UTF-8 and absurdly deep nesting once killed the hub (msgspec raises UnicodeDecodeError and
RecursionError outside its own exception tree); the tests at the end pin that they no longer do.
"""

from __future__ import annotations

import json
import subprocess
import sys
import typing
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from statehub.hub.paths import Layout, read_hub_info
from statehub.hub.protocol import (
    MAX_MESSAGE_BYTES,
    Error,
    Get,
    History,
    HubStatus,
    List,
    Op,
    Request,
    Set,
    Snapshot,
    Status,
    Txn,
    Unset,
    reply_decoder,
)
from statehub.testing import HubProcess
from tests.conftest import SCRIPTS, load_script

hostile = load_script("hostile")
expected_outcome = hostile.expected_outcome
decode_reply = reply_decoder().decode
encode = msgspec.msgpack.encode

FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The rpc endpoint of one hub shared by the fuzz tests (each example checks it still serves)."""
    with HubProcess(tmp_path_factory.mktemp("hostile") / "data") as hub:
        info = read_hub_info(Layout(hub.data_dir))
        assert info is not None
        yield info.rpc
        assert hub.process is not None and hub.process.poll() is None, hub.log[-3000:]


def exchange(endpoint: str, frames: list[bytes], timeout: float = 5.0) -> list[bytes]:
    """Send ``frames`` from a fresh DEALER, then a status request; return the replies before the status reply.

    Fails if the hub does not answer the status request: it must keep serving after any input.
    """
    with zmq.Context.instance().socket(zmq.DEALER) as sock:
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(endpoint)
        sock.send_multipart(frames)
        replies = []
        if expected_outcome(frames) != "dropped":
            assert sock.poll(timeout * 1000), f"no reply within {timeout} s to {frames!r:.200}"
            replies.append(sock.recv_multipart()[-1])
        sock.send_multipart([b"", encode(Status(v=1))])
        assert sock.poll(timeout * 1000), "the hub stopped answering"
        last = sock.recv_multipart()
        assert isinstance(decode_reply(last[-1]), HubStatus), decode_reply(last[-1])
        assert last[:-1] == [b""]
        return replies


def check_answer(endpoint: str, frames: list[bytes]) -> Error | None:
    """Send a hostile message: it is dropped or answered as the hub's rules say; the hub keeps serving."""
    expected = expected_outcome(frames)
    replies = exchange(endpoint, frames)
    if expected == "dropped":
        assert replies == []
        return None
    [reply] = replies
    assert hostile.matches(expected, reply), (expected, decode_reply(reply))
    answer = decode_reply(reply)
    return answer if isinstance(answer, Error) else None


# --- strategies ---------------------------------------------------------------------------

ints = st.integers(-(2**63), 2**63 - 1)
keys = st.one_of(st.sampled_from(["plant.rate", "a", "fuzz.k", "x-y_z.0"]), st.text(max_size=20))
values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats()
    | st.text(max_size=20)
    | st.binary(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=12,
)
valid_requests = st.one_of(
    st.builds(Get, v=st.just(1), key=keys),
    st.builds(List, v=st.just(1), prefix=st.sampled_from(["", "plant.", "fuzz."])),
    st.builds(Snapshot, v=st.just(1)),
    st.builds(History, v=st.just(1), key=keys, limit=st.integers(1, 100)),
    st.builds(Status, v=st.just(1)),
    st.builds(
        Set, v=st.just(1), key=st.sampled_from(["fuzz.a", "fuzz.b"]), value=ints | st.text(max_size=10)
    ),
    st.builds(
        Unset, v=st.just(1), key=st.sampled_from(["fuzz.a", "fuzz.b"]), expect=st.none() | st.integers(0, 5)
    ),
    st.builds(
        Txn,
        v=st.just(1),
        ops=st.lists(
            st.builds(
                Op, op=st.just("set"), key=st.sampled_from(["fuzz.t0", "fuzz.t1", "fuzz.t2"]), value=ints
            ),
            min_size=1,
            max_size=3,
        ),
    ),
)
# Every request type the protocol has, from its union, so a new request never reads as "unknown" here.
request_types = [kind.__struct_config__.tag for kind in typing.get_args(Request)]
field_names = [
    "type",
    "v",
    "key",
    "value",
    "expect",
    "ops",
    "limit",
    "prefix",
    "request_id",
    "source",
    "user",
]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(encode(draw(valid_requests)))
    for _ in range(draw(st.integers(1, 8))):
        at = draw(st.integers(0, max(0, len(data) - 1)))
        action = draw(st.sampled_from(["flip", "replace", "insert", "delete"]))
        if action == "insert" or not data:
            data.insert(at, draw(st.integers(0, 255)))
        elif action == "flip":
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif action == "replace":
            data[at] = draw(st.integers(0, 255))
        else:
            del data[at]
    return bytes(data)


@st.composite
def truncated(draw: st.DrawFn) -> bytes:
    body = encode(draw(valid_requests))
    return body[: draw(st.integers(0, len(body) - 1))]


def with_raw_value(raw_value: bytes) -> bytes:
    """A set request whose ``value`` is ``raw_value``, bytes as they go on the wire."""
    head = encode({"type": "set", "v": 1, "key": "fuzz.deep"})
    return bytes([head[0] + 1]) + head[1:] + encode("value") + raw_value


# --- Hypothesis on the decode path ----------------------------------------------------------


@FUZZ
@given(body=st.binary(max_size=600))
def test_random_bytes_get_a_protocol_error(endpoint: str, body: bytes) -> None:
    """Random bytes as a request body: an error reply (`protocol`, unless by chance it is a valid request)."""
    check_answer(endpoint, [b"", body])


@FUZZ
@given(body=truncated())
def test_truncated_requests_get_a_protocol_error(endpoint: str, body: bytes) -> None:
    """A valid request cut short: `protocol` error naming the truncation."""
    error = check_answer(endpoint, [b"", body])
    assert error is not None and error.code == "protocol"


@FUZZ
@given(body=mutated())
def test_mutated_requests_are_answered_by_the_rules(endpoint: str, body: bytes) -> None:
    """A valid request with a few bytes flipped, replaced, inserted or deleted: answered as the rules say."""
    check_answer(endpoint, [b"", body])


@FUZZ
@given(
    fields=st.dictionaries(st.sampled_from(field_names), values, max_size=6),
    kind=st.sampled_from(request_types),
)
def test_wrong_field_types_get_a_clear_error(endpoint: str, fields: dict[str, object], kind: str) -> None:
    """Any field of any type on any request: `protocol` (naming the field and types) or `invalid`, or accepted when it fits."""
    message = {"type": kind, "v": 1, **fields}
    body = encode(message)
    error = check_answer(endpoint, [b"", body])
    if error is not None and error.code == "protocol" and "type" not in fields and "v" not in fields:
        assert "Expected `" in error.message or "missing required field" in error.message, error.message


@FUZZ
@given(kind=st.text(max_size=12).filter(lambda t: t not in request_types))
def test_unknown_request_types_get_a_protocol_error(endpoint: str, kind: str) -> None:
    """Any `type` that is not a request: `protocol`, quoting the value that is not allowed."""
    error = check_answer(endpoint, [b"", encode({"type": kind, "v": 1})])
    assert error is not None and error.code == "protocol" and "Invalid value" in error.message


@FUZZ
@given(request=valid_requests, version=st.integers(-(2**63), 2**64 - 1).filter(lambda v: v != 1))
def test_a_wrong_protocol_version_is_named_in_the_error(endpoint: str, request: object, version: int) -> None:
    """Any request with a version other than 1: `protocol`, naming the version sent and the one spoken."""
    error = check_answer(endpoint, [b"", encode({**msgspec.to_builtins(request), "v": version})])
    assert error is not None and error.code == "protocol"
    assert error.message == f"unsupported protocol version {version}; this hub speaks version 1"


@FUZZ
@given(key=st.text(max_size=300), kind=st.sampled_from(["get", "set", "history", "unset"]))
def test_invalid_keys_are_refused_with_the_key_and_the_rule(endpoint: str, key: str, kind: str) -> None:
    """Arbitrary text as a key: either a valid key, or `invalid` quoting the key and the broken rule."""
    message = {"type": kind, "v": 1, "key": key, **({"value": 1} if kind == "set" else {})}
    error = check_answer(endpoint, [b"", encode(message)])
    if expected_outcome([b"", encode(message)]) == "invalid":
        assert error is not None and error.message.startswith("invalid key")


@FUZZ
@given(
    depth=st.integers(33, 400),
    leaf=st.sampled_from([b"\xc0", b"\x80", b"\x90", b"\xa1x"]),
    as_map=st.booleans(),
)
def test_values_nested_deeper_than_the_limit_are_refused(
    endpoint: str, depth: int, leaf: bytes, as_map: bool
) -> None:
    """Arrays or maps nested 33..400 deep: `invalid`, naming the depth limit (32)."""
    opener = b"\x81\xa1k" if as_map else b"\x91"
    error = check_answer(endpoint, [b"", with_raw_value(opener * depth + leaf)])
    assert error is not None and error.code == "invalid" and "nested deeper than 32 levels" in error.message


@settings(FUZZ, max_examples=20)
@given(
    promised=st.integers(2**16, 2**32 - 1),
    kind=st.sampled_from(["array", "map", "str", "bin"]),
)
def test_headers_promising_more_than_is_sent_are_refused_without_allocating_it(
    endpoint: str, promised: int, kind: str
) -> None:
    """An array/map/str/bin header claiming up to 4 billion elements with nothing after it: `protocol` (truncated)."""
    header = {"array": b"\xdd", "map": b"\xdf", "str": b"\xdb", "bin": b"\xc6"}[kind] + promised.to_bytes(
        4, "big"
    )
    error = check_answer(endpoint, [b"", with_raw_value(header)])
    assert error is not None and error.code == "protocol" and "truncated" in error.message


@settings(FUZZ, max_examples=10)
@given(ops=st.integers(1001, 5000))
def test_a_txn_over_the_op_limit_is_refused_naming_the_limit(endpoint: str, ops: int) -> None:
    """A txn of 1,001..5,000 ops: `invalid`, naming its size and the limit of 1000."""
    txn = Txn(v=1, ops=[Op(op="set", key=f"fuzz.o{i}", value=i) for i in range(ops)])
    error = check_answer(endpoint, [b"", encode(txn)])
    assert error is not None and error.message == f"a txn of {ops} operations exceeds the limit of 1000"


@settings(FUZZ, max_examples=5)
@given(count=st.integers(1_050_000, 1_500_000))
def test_a_huge_array_value_is_refused_naming_the_value_limit(endpoint: str, count: int) -> None:
    """An array of over a million elements (a value over 1 MiB in a request under 4 MiB): `invalid`, naming 1048576."""
    body = with_raw_value(b"\xdd" + count.to_bytes(4, "big") + b"\xc0" * count)
    error = check_answer(endpoint, [b"", body])
    assert error is not None and error.code == "invalid" and "the limit is 1048576" in error.message


@FUZZ
@given(
    frames=st.one_of(
        st.lists(st.binary(max_size=16), min_size=8, max_size=40),  # too many frames
        st.lists(st.binary(min_size=1, max_size=16), min_size=1, max_size=1),  # no delimiter
        st.lists(st.binary(max_size=16), min_size=1, max_size=7),  # any short frame list
    )
)
def test_frames_that_are_not_a_request_are_dropped(endpoint: str, frames: list[bytes]) -> None:
    """Wrong frame counts or no empty delimiter: dropped without a reply (or answered if it happens to be request-shaped)."""
    check_answer(endpoint, frames)


# --- deterministic edges ------------------------------------------------------------------


def test_a_request_over_4_mib_is_refused_naming_the_limit(endpoint: str) -> None:
    """A body one byte over 4 MiB: `invalid`, naming its size and the limit."""
    error = check_answer(endpoint, [b"", b"\x00" * (MAX_MESSAGE_BYTES + 1)])
    assert error is not None and error.message == (
        f"request of {MAX_MESSAGE_BYTES + 1} bytes exceeds the limit of {MAX_MESSAGE_BYTES} bytes"
    )


def test_a_frame_over_16_mib_costs_its_sender_the_connection_and_no_one_else_anything(endpoint: str) -> None:
    """libzmq drops a peer whose frame exceeds MAXMSGSIZE; the hub keeps serving everyone else."""
    with zmq.Context.instance().socket(zmq.DEALER) as sock:
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(endpoint)
        sock.send_multipart([b"", b"\x00" * (17 * 1024 * 1024)])
        assert not sock.poll(500)
    assert exchange(endpoint, [b"", encode(Get(v=1, key="fuzz.a"))])


_EVENT_GARBAGE = """
import sys, zmq
context = zmq.Context()
xsub = context.socket(zmq.XSUB)
xsub.setsockopt(zmq.LINGER, 5000)  # flushed before exit, or given up after 5 s
xsub.connect(sys.argv[1])
for i in range(3000):
    xsub.send(bytes([i % 3]) + b"x" * (i % 5000))  # subscribe, unsubscribe and plain garbage
xsub.send_multipart([b"\\x01fuzz", b"extra", b"frames"])
context.destroy(linger=5000)
"""


def test_garbage_on_the_event_socket_does_not_disturb_the_hub(tmp_path: Path) -> None:
    """An XSUB peer (a process of its own) sending random frames and thousands of subscriptions: the hub keeps serving and publishing to others."""
    with HubProcess(tmp_path / "data") as hub, hub.client() as client:
        info = read_hub_info(Layout(hub.data_dir))
        assert info is not None
        with zmq.Context.instance().socket(zmq.SUB) as sub:
            sub.setsockopt(zmq.LINGER, 0)
            sub.connect(info.events)
            sub.setsockopt(zmq.SUBSCRIBE, b"fuzz.")
            assert sub.poll(5000) and sub.recv_multipart()[0] == b"fuzz."  # the welcome: subscribed
            # Its own process: the hub disconnects a peer (a process) that floods it with subscriptions.
            flood = subprocess.run([sys.executable, "-c", _EVENT_GARBAGE, info.events], timeout=30, check=False)
            assert flood.returncode == 0
            client.set("fuzz.after", 1)
            assert client.status().pid == hub.pid
            topics = []
            while sub.poll(2000) and len(topics) < 10_000:
                topic, _body = sub.recv_multipart()
                topics.append(topic)
                if topic == b"fuzz.after":
                    break
            assert b"fuzz.after" in topics


# --- the flood (CI variant of scripts/hostile.py) -------------------------------------------


@pytest.mark.slow
def test_5000_malformed_messages_leave_the_hub_serving_with_bounded_memory(tmp_path: Path) -> None:
    """5,000 hostile messages of every kind: each answered as predicted or dropped; the hub serves on; RSS grows < 64 MiB."""
    out = tmp_path / "result.json"
    result = subprocess.run(
        [
            sys.executable,
            str(SCRIPTS / "hostile.py"),
            "--count",
            "5000",
            "--seed",
            "3",
            "--work-dir",
            str(tmp_path / "work"),
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=55,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    data = json.loads(out.read_text())
    assert data["problems"] == [] and data["wrong"] == 0 and data["alive"]
    assert data["count"] == 5000 and sum(data["replies"].values()) + data["dropped"] == 5000
    assert data["rss_after_kib"] - data["rss_before_kib"] < 64 * 1024


# --- inputs that kill today's hub -----------------------------------------------------------


def hub_survives(tmp_path: Path, body: bytes) -> tuple[Error | None, bool]:
    """Send ``body`` to a fresh hub; return its error reply (None: no reply) and whether it still runs."""
    with HubProcess(tmp_path / "data") as hub:
        info = read_hub_info(Layout(hub.data_dir))
        assert info is not None
        with zmq.Context.instance().socket(zmq.DEALER) as sock:
            sock.setsockopt(zmq.LINGER, 0)
            sock.connect(info.rpc)
            sock.send_multipart([b"", body])
            answer = None
            for _ in range(60):  # up to 3 s, but no longer than the hub lives
                if sock.poll(50):
                    answer = decode_reply(sock.recv_multipart()[-1])
                    break
                if hub.process is not None and hub.process.poll() is not None:
                    break
        assert hub.process is not None
        alive = hub.process.poll() is None
        return (answer if isinstance(answer, Error) else None), alive


@pytest.mark.parametrize("raw", [b"\xa2\xff\xfe", b"\xa3\xed\xa0\x80"], ids=["invalid-byte", "surrogate"])
def test_invalid_utf8_in_a_string_gets_a_protocol_error_and_the_hub_keeps_serving(
    tmp_path: Path, raw: bytes
) -> None:
    """A request whose key holds invalid UTF-8 (a 20-byte message) is answered `protocol`; the hub stays up."""
    head = encode({"type": "get", "v": 1})
    error, alive = hub_survives(tmp_path, bytes([head[0] + 1]) + head[1:] + encode("key") + raw)
    assert alive, "the hub died"
    assert error is not None and error.code == "protocol"


@pytest.mark.parametrize("depth", [1000, 100_000])
def test_nesting_thousands_of_levels_deep_gets_an_error_and_the_hub_keeps_serving(
    tmp_path: Path, depth: int
) -> None:
    """A value nested 1,000 (2 KB) or 100,000 levels deep is refused; the hub stays up."""
    error, alive = hub_survives(tmp_path, with_raw_value(b"\x91" * depth + b"\xc0"))
    assert alive, "the hub died"
    assert error is not None and error.code in ("invalid", "protocol")
