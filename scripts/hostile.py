"""Hostile input: a flood of malformed messages at a live hub, with its memory measured.

    python scripts/hostile.py                          # 100,000 messages
    python scripts/hostile.py --count 5000             # the CI variant (tests/test_hostile.py)
    python scripts/hostile.py --skip-known-crashers    # leave out inputs that kill today's hub

Each message is drawn from one of these kinds: random bytes, truncated and byte-mutated valid
requests, wrong field types, unknown request types, wrong protocol versions, invalid keys, binary
and extension values, values nested deeper than the limit, arrays and txns over the limits, array
headers promising more than is sent, oversized requests (over 4 MiB), frames that are not a request
at all, invalid UTF-8 inside strings, and nesting thousands of levels deep.  For every message the
script predicts what the hub must do (drop it, or answer ``protocol`` or ``invalid``, or accept
it) from the same rules the hub applies, sends it over a DEALER socket, and checks the answer.  A
``status`` request must still be answered after every batch.

The hub's RSS is read from /proc before (after a warm-up) and after the flood, with its peak
(VmHWM).  The last line printed is the summary; exit status 0 means every message was answered as
predicted and the hub is still serving.

``--skip-known-crashers`` leaves out messages that the hub's decoder answers with an exception
it does not catch (invalid UTF-8, nesting beyond Python's recursion limit): today each of those
kills the hub (tests/test_hostile.py has them as xfail tests).
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import msgspec  # noqa: E402
import zmq  # noqa: E402

from statehub.hub.errors import InvalidRequest
from statehub.hub.paths import Layout, read_hub_info  # noqa: E402
from statehub.hub.protocol import (  # noqa: E402
    MAX_HISTORY_LIMIT,
    MAX_MESSAGE_BYTES,
    PROTOCOL_VERSION,
    Error,
    Get,
    History,
    HubStatus,
    List,
    Op,
    Set,
    Snapshot,
    Status,
    Txn,
    Unset,
    reply_decoder,
    request_decoder,
)
from statehub.hub.rules import check_key, check_prefix, check_write  # noqa: E402
from statehub.testing import HubProcess  # noqa: E402

MAX_HUB_FRAMES = 8  # the hub drops a message of more frames (identity included) unanswered

_encode = msgspec.msgpack.encode
_decode_request = request_decoder().decode
_decode_reply = reply_decoder().decode


class _Versioned(msgspec.Struct):
    v: int


# --- what the hub must do with a message --------------------------------------------------


def expected_outcome(frames: list[bytes]) -> str:
    """ "dropped", "protocol", "invalid", "accepted" (any non-error reply, not_found or conflict) or "crash".

    ``frames`` as a DEALER sends them; the hub sees them behind the peer's identity frame.
    """
    if not (3 <= len(frames) + 1 <= MAX_HUB_FRAMES and frames[-2] == b""):
        return "dropped"
    body = frames[-1]
    if len(body) > MAX_MESSAGE_BYTES:
        return "invalid"
    try:
        request = _decode_request(body)
    except (msgspec.ValidationError, msgspec.DecodeError):
        try:
            msgspec.msgpack.decode(body, type=_Versioned)  # the hub looks for a version to name
        except (msgspec.ValidationError, msgspec.DecodeError):
            pass
        except Exception:
            return "crash"
        return "protocol"
    except Exception:  # UnicodeDecodeError, RecursionError: uncaught by today's hub
        return "crash"
    if request.v != PROTOCOL_VERSION:
        return "protocol"
    try:
        if isinstance(request, (Set, Unset, Txn)):
            check_write(request, len(body))
        elif isinstance(request, (Get, History)):
            check_key(request.key)
            if isinstance(request, History) and not 1 <= request.limit <= MAX_HISTORY_LIMIT:
                return "invalid"
        elif isinstance(request, (List, Snapshot)):
            check_prefix(request.prefix)
    except InvalidRequest:
        return "invalid"
    return "accepted"


def matches(expected: str, reply: bytes) -> bool:
    try:
        message = _decode_reply(reply)
    except msgspec.MsgspecError:
        return False
    if isinstance(message, Error):
        if not message.message:
            return False
        if expected == "crash":  # a hub that survives it must call it a bad request
            return message.code in ("protocol", "invalid")
        if expected == "accepted":
            return message.code in ("not_found", "conflict")
        return message.code == expected
    return expected == "accepted"


# --- the generator ------------------------------------------------------------------------


def _text(rng: random.Random, size: int) -> str:
    alphabet = "abcXYZ019_-. é✓\u2028\x00/@#"
    return "".join(rng.choice(alphabet) for _ in range(size))


def _value(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(7 if depth < 3 else 4)
    if kind == 0:
        return rng.randrange(-(2**63), 2**64)
    if kind == 1:
        return rng.random() * 10 ** rng.randrange(-5, 300)
    if kind == 2:
        return _text(rng, rng.randrange(8))
    if kind == 3:
        return rng.choice([None, True, False])
    if kind == 4:
        return [_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    if kind == 5:
        return {_text(rng, 3): _value(rng, depth + 1) for _ in range(rng.randrange(4))}
    return rng.randbytes(rng.randrange(6))


def valid_request(rng: random.Random) -> Any:
    key = rng.choice(["plant.rate", "a", "hostile.k", "x-y_z.0"])
    return rng.choice(
        [
            Get(v=1, key=key),
            List(v=1, prefix=rng.choice(["", "plant."])),
            Snapshot(v=1),
            History(v=1, key=key, limit=rng.randrange(1, 50)),
            Status(v=1),
            Set(
                v=1,
                key=f"hostile.{rng.randrange(50)}",
                value=rng.choice([1, "two", [3], {"four": 4.0}]),
                request_id=rng.randbytes(8).hex(),
            ),
            Unset(v=1, key=key, expect=rng.randrange(5)),
            Txn(v=1, ops=[Op(op="set", key=f"hostile.t{i}", value=i) for i in range(rng.randrange(1, 4))]),
        ]
    )


def _nested(depth: int, leaf: bytes = b"\xc0") -> bytes:
    return b"\x91" * depth + leaf


def _with_value(raw_value: bytes) -> bytes:
    head = _encode({"type": "set", "v": 1, "key": "hostile.deep"})
    return bytes([head[0] + 1]) + head[1:] + _encode("value") + raw_value


def _mutate(rng: random.Random, body: bytes) -> bytes:
    data = bytearray(body)
    for _ in range(rng.randrange(1, 9)):
        if not data:
            data.append(rng.randrange(256))
            continue
        at = rng.randrange(len(data))
        action = rng.randrange(4)
        if action == 0:
            data[at] ^= 1 << rng.randrange(8)
        elif action == 1:
            data[at] = rng.randrange(256)
        elif action == 2:
            data.insert(at, rng.randrange(256))
        else:
            del data[at]
    return bytes(data)


def message(rng: random.Random, kind: str) -> list[bytes]:
    """One hostile message of ``kind`` as DEALER frames."""
    if kind == "random_bytes":
        return [b"", rng.randbytes(rng.randrange(600))]
    if kind == "truncated":
        body = _encode(valid_request(rng))
        return [b"", body[: rng.randrange(len(body))]]
    if kind == "mutated":
        return [b"", _mutate(rng, _encode(valid_request(rng)))]
    if kind == "wrong_types":
        fields = {"type": rng.choice(["get", "set", "unset", "txn", "history", "list", "status"]), "v": 1}
        for name in rng.sample(
            ["key", "value", "expect", "ops", "limit", "prefix", "request_id", "source", "user", "v"], 3
        ):
            fields[name] = _value(rng)
        return [b"", _encode(fields)]
    if kind == "unknown_type":
        return [
            b"",
            _encode({"type": rng.choice(["launch", "SET", "", "drop_table", _text(rng, 5)]), "v": 1}),
        ]
    if kind == "wrong_version":
        version = rng.choice([0, 2, -1, 2**31, 2**64 - 1, -(2**63), rng.randrange(2, 1000)])
        return [b"", _encode({**msgspec.to_builtins(valid_request(rng)), "v": version})]
    if kind == "invalid_key":
        key = rng.choice(
            [
                "",
                ".",
                "a..b",
                "a.",
                ".a",
                "a b",
                "ключ",
                "a/b",
                "@hb",
                "x" * rng.randrange(257, 5000),
                _text(rng, 10),
            ]
        )
        return [
            b"",
            _encode(rng.choice([Get(v=1, key=key), Set(v=1, key=key, value=1), History(v=1, key=key)])),
        ]
    if kind == "binary_value":
        return [
            b"",
            _with_value(
                rng.choice([b"\xc4\x03abc", b"\xd4\x05\x01", b"\xd6\xff\x00\x00\x00\x01", b"\x81\x01\x02"])
            ),
        ]
    if kind == "too_deep":
        return [b"", _with_value(_nested(rng.randrange(33, 400)))]
    if kind == "huge_array":
        choice = rng.randrange(3)
        if choice == 0:  # a header promising billions of elements, and nothing after it
            return [b"", _with_value(b"\xdd" + rng.randrange(2**20, 2**32).to_bytes(4, "big"))]
        if choice == 1:  # a txn over the op limit
            ops = [Op(op="set", key=f"hostile.o{i}", value=i) for i in range(rng.randrange(1001, 3000))]
            return [b"", _encode(Txn(v=1, ops=ops))]
        count = rng.randrange(1_100_000, 1_500_000)  # a value over 1 MiB in a request under 4 MiB
        return [b"", _with_value(b"\xdd" + count.to_bytes(4, "big") + b"\xc0" * count)]
    if kind == "oversized":
        return [b"", b"\x00" * (MAX_MESSAGE_BYTES + rng.randrange(1, 1 << 20))]
    if kind == "not_a_request":
        frames = rng.choice(
            [
                [rng.randbytes(rng.randrange(1, 50))],  # no empty delimiter
                [b""] * rng.randrange(MAX_HUB_FRAMES, 40),  # too many frames
                [b"", _encode(Status(v=1)), b"extra"],  # the delimiter is not second to last
                [rng.randbytes(5) for _ in range(rng.randrange(2, 12))],
            ]
        )
        return frames
    if kind == "invalid_utf8":
        bad = rng.choice(
            [b"\xa2\xff\xfe", b"\xa3\xed\xa0\x80", b"\xa1\x80"]
        )  # invalid, a surrogate, a lone continuation
        head = _encode({"type": "get", "v": 1})
        in_key = bytes([head[0] + 1]) + head[1:] + _encode("key") + bad
        return [b"", rng.choice([_with_value(bad), in_key])]
    if kind == "very_deep":
        return [b"", _with_value(_nested(rng.choice([1000, 5000, 100_000])))]
    raise ValueError(kind)


# Relative frequencies: cheap kinds often, megabyte-sized ones rarely.
KINDS = {
    "random_bytes": 20,
    "truncated": 15,
    "mutated": 25,
    "wrong_types": 10,
    "unknown_type": 4,
    "wrong_version": 4,
    "invalid_key": 6,
    "binary_value": 3,
    "too_deep": 3,
    "huge_array": 0.3,
    "oversized": 0.1,
    "not_a_request": 6,
    "invalid_utf8": 1,
    "very_deep": 0.5,
}
KNOWN_CRASHERS = ("invalid_utf8", "very_deep")


def generate(rng: random.Random, skip_known_crashers: bool) -> tuple[str, list[bytes], str]:
    kinds = [k for k in KINDS if not (skip_known_crashers and k in KNOWN_CRASHERS)]
    for _ in range(1000):  # bounded: a crash-predicted message is redrawn when they are skipped
        kind = rng.choices(kinds, weights=[KINDS[k] for k in kinds])[0]
        frames = message(rng, kind)
        expected = expected_outcome(frames)
        if not (skip_known_crashers and expected == "crash"):
            return kind, frames, expected
    raise RuntimeError("could not draw a message that today's hub survives")


# --- the run ------------------------------------------------------------------------------


def rss_kib(pid: int) -> dict[str, int]:
    found = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as handle:
        for line in handle:
            name, _, rest = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                found[name] = int(rest.split()[0])
    return found


@dataclass
class Result:
    count: int = 0
    replies: dict[str, int] = field(default_factory=dict)
    dropped: int = 0
    wrong: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)
    rss_before_kib: int = 0
    rss_after_kib: int = 0
    peak_rss_kib: int = 0
    rss_samples: list[tuple[int, int]] = field(default_factory=list)  # (messages sent, VmRSS KiB)
    elapsed: float = 0.0
    alive: bool = True
    problems: list[str] = field(default_factory=list)

    def line(self) -> str:
        return (
            f"hostile: messages={self.count} answered={sum(self.replies.values())} dropped={self.dropped} "
            f"wrong={self.wrong} hub_alive={self.alive} rss_before={self.rss_before_kib / 1024:.1f} MiB "
            f"rss_after={self.rss_after_kib / 1024:.1f} MiB peak={self.peak_rss_kib / 1024:.1f} MiB "
            f"elapsed={self.elapsed:.1f}s {'PASS' if not self.problems else 'FAIL'}"
        )


class Peer:
    """A DEALER at the hub's rpc endpoint; a fresh one replaces it when libzmq drops the connection."""

    def __init__(self, context: zmq.Context[zmq.Socket[bytes]], endpoint: str) -> None:
        self.socket = context.socket(zmq.DEALER)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.connect(endpoint)

    def receive(self, timeout: float) -> bytes | None:
        if not self.socket.poll(int(timeout * 1000)):
            return None
        return self.socket.recv_multipart()[-1]

    def close(self) -> None:
        self.socket.close(linger=0)


def status_answered(peer: Peer, timeout: float = 5.0) -> bool:
    peer.socket.send_multipart([b"", _encode(Status(v=1))])
    reply = peer.receive(timeout)
    return reply is not None and isinstance(_decode_reply(reply), HubStatus)


def flood(
    endpoint: str, pid: int, count: int, seed: int, skip_known_crashers: bool, batch: int = 50
) -> Result:
    result = Result()
    rng = random.Random(seed)
    replies: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    peer = Peer(context, endpoint)
    probe = Peer(context, endpoint)
    started = time.monotonic()
    try:
        for _ in range(200):  # warm-up: the hub's caches and arenas settle before "before"
            assert status_answered(probe)
        result.rss_before_kib = rss_kib(pid)["VmRSS"]
        sent = 0
        while sent < count:
            pending: list[tuple[str, str]] = []
            for _ in range(min(batch, count - sent)):
                kind, frames, expected = generate(rng, skip_known_crashers)
                kinds[kind] += 1
                peer.socket.send_multipart(frames)
                sent += 1
                if expected == "dropped":
                    result.dropped += 1
                else:
                    pending.append((kind, expected))
            # Replies come back in order, except that writes are answered when their batch commits
            # and large messages once checked off the loop; so match each reply to any pending
            # message it fits, one with a definite prediction before one predicted to "crash"
            # (which fits either error).
            for _ in range(len(pending)):
                reply = peer.receive(10.0)
                if reply is None:
                    result.problems.append(
                        f"no reply to {len(pending)} of a batch (kinds {sorted({k for k, _ in pending})})"
                    )
                    break
                decoded = _decode_reply(reply)
                code = decoded.code if isinstance(decoded, Error) else "ok"
                replies[code] += 1
                order = sorted(range(len(pending)), key=lambda i: pending[i][1] == "crash")
                fit = next((i for i in order if matches(pending[i][1], reply)), None)
                if fit is None:
                    result.wrong += 1
                    result.problems.append(f"reply {code!r} fits none of {sorted({e for _k, e in pending})}")
                else:
                    pending.pop(fit)
            if result.problems and not status_answered(probe):
                result.alive = False
                result.problems.append(f"the hub stopped answering after {sent} messages")
                break
            if sent % 10_000 == 0:
                result.rss_samples.append((sent, rss_kib(pid)["VmRSS"]))
            if sent % (batch * 20) == 0 and not status_answered(probe):
                result.alive = False
                result.problems.append(f"the hub stopped answering after {sent} messages")
                break
            if len(result.problems) > 20:
                break
        result.count = sent
        if result.alive and not status_answered(probe):
            result.alive = False
            result.problems.append("the hub does not answer status after the flood")
        if result.alive:
            usage = rss_kib(pid)
            result.rss_after_kib, result.peak_rss_kib = usage["VmRSS"], usage["VmHWM"]
    finally:
        peer.close()
        probe.close()
        context.destroy(linger=0)
    result.replies = dict(replies)
    result.by_kind = dict(kinds)
    result.elapsed = time.monotonic() - started
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--count", type=int, default=100_000)
    p.add_argument("--seed", type=int, default=int(time.time()) % 100_000)
    p.add_argument(
        "--skip-known-crashers", action="store_true", help="leave out the inputs that kill today's hub"
    )
    p.add_argument("--work-dir", help="where the hub's data dir goes (default: a temp dir)")
    p.add_argument("--json", dest="json_path", help="also write the result as JSON here")
    args = p.parse_args(argv)
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="statehub-hostile-"))
    with HubProcess(work / "data") as hub:
        info = read_hub_info(Layout(hub.data_dir))
        assert info is not None
        result = flood(info.rpc, hub.pid, args.count, args.seed, args.skip_known_crashers)
        if hub.process is not None and hub.process.poll() is not None:
            result.alive = False
            result.problems.append(
                f"the hub exited with {hub.process.returncode}; its log ends:\n{hub.log[-2000:]}"
            )
    if not args.work_dir:
        shutil.rmtree(work, ignore_errors=True)
    for problem in result.problems[:20]:
        print(f"problem: {problem}", file=sys.stderr)
    if args.json_path:
        data = asdict(result)
        data["seed"] = args.seed
        Path(args.json_path).write_text(json.dumps(data, indent=2), encoding="utf-8")
    print(f"{result.line()} seed={args.seed}", flush=True)
    return 0 if not result.problems else 1


if __name__ == "__main__":
    sys.exit(main())
