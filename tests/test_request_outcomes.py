"""Honest timeouts and honest answers: how long a client waits, and what it says a request came to.

A hub that is alive but silent is a SIGSTOPped hub process (a real one); a
"hub" that takes writes and never answers is a ROUTER socket the test owns
(tests/outcome_support.py): the client under test is real either way.
"""

from __future__ import annotations

import ast
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
import zmq

from statehub import Client, Committed, HubUnavailable, NotFound, OutcomeUnknown
from statehub.hub.paths import Layout, read_hub_info
from statehub.hub.protocol import Committed as CommittedReply
from statehub.reachability import SILENT_HINT
from statehub.testing import HubProcess, wait_until
from tests.conftest import cli_env, run_cli
from tests.outcome_support import linux_only, receive, rpc_port, silent_hub, stopped, tcp_queues

PACKAGE = Path(__file__).resolve().parent.parent / "clients" / "statehub"


class Outcome:
    """What a call made in another thread came to."""

    def __init__(self) -> None:
        self.value: Any = None
        self.error: BaseException | None = None
        self.done = threading.Event()

    def run(self, call: Any) -> threading.Thread:
        def target() -> None:
            try:
                self.value = call()
            except BaseException as exc:  # noqa: BLE001 - handed to the test thread
                self.error = exc
            finally:
                self.done.set()

        thread = threading.Thread(target=target, daemon=True)
        thread.start()
        return thread


@pytest.fixture
def tcp_hub(data_dir: Path) -> Iterator[HubProcess]:
    with HubProcess(data_dir, args=["--tcp"]) as process:
        yield process


# --- a new connection waits its whole timeout ------------------------------------------------------


@linux_only
def test_a_fresh_client_waits_for_a_stopped_hub_and_gets_its_answer_when_it_resumes(tcp_hub: HubProcess) -> None:
    """A new Client with timeout 30 is answered by a hub frozen past its handshake once the hub resumes."""
    port = rpc_port(tcp_hub.data_dir)
    outcome = Outcome()
    client = Client(tcp_hub.data_dir, timeout=30)
    try:
        with stopped(tcp_hub):
            outcome.run(lambda: client.set("plant.rate", 30))
            assert wait_until(lambda: tcp_queues(port)[0] >= 1, 30), "the client's connection never reached the hub"
            assert not outcome.done.is_set(), f"gave up on a hub that runs: {outcome.error!r}"
        assert outcome.done.wait(30)
    finally:
        client.close()
    assert outcome.error is None and isinstance(outcome.value, Committed) and outcome.value.rev == 1


@linux_only
def test_the_cli_waits_its_timeout_for_a_stopped_hub_and_sets_when_it_resumes(tcp_hub: HubProcess) -> None:
    """`statehub --timeout 30 set` against a frozen hub exits 0 with the revision once the hub resumes."""
    port = rpc_port(tcp_hub.data_dir)
    command = [sys.executable, "-m", "statehub.cli", "--data-dir", str(tcp_hub.data_dir), "--timeout", "30"]
    with stopped(tcp_hub):
        cli = subprocess.Popen([*command, "set", "plant.rate", "30"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env())
        assert wait_until(lambda: tcp_queues(port)[0] >= 1 or cli.poll() is not None, timeout=30)
        assert cli.poll() is None, f"gave up on a hub that runs: {cli.communicate()}"
    out, err = cli.communicate(timeout=40)
    assert (cli.returncode, out, err) == (0, "plant.rate = 30  (revision 1)\n", "")


def test_a_stopped_hub_is_waited_for_the_whole_timeout_and_nothing_is_written(hub: HubProcess) -> None:
    """A frozen hub is "running but did not take the request" after the whole --timeout; nothing was written."""
    with stopped(hub):
        started = time.monotonic()
        result = run_cli(hub.data_dir, "--timeout", "1.5", "set", "plant.rate", "30")
        waited = time.monotonic() - started
    info = read_hub_info(Layout(hub.data_dir))
    assert info is not None
    assert result.returncode == 5
    assert result.stderr.splitlines() == [
        f"error: the hub (pid {hub.pid}) at {info.rpc} is running but did not take the request within 1.5 s; "
        "nothing was written",
        f"hint: {SILENT_HINT}",
    ]
    assert waited >= 1.5  # a lower bound: the whole timeout, however busy the machine
    with hub.client() as client:
        client.set("marker", 1)  # anything the frozen hub had queued would be applied before this
        with pytest.raises(NotFound):
            client.get("plant.rate", reveal=False)


def test_a_read_from_a_stopped_hub_falls_back_to_the_mirror_and_says_why(hub: HubProcess) -> None:
    """`get` against a frozen hub shows the mirror with the hub's real state (running, silent) and its hint."""
    with hub.client() as client:
        client.set("plant.rate", 30)
    assert wait_until(lambda: Layout(hub.data_dir).mirror.exists() and "plant.rate" in Layout(hub.data_dir).mirror.read_text())
    with stopped(hub):
        result = run_cli(hub.data_dir, "--timeout", "0.5", "get", "plant.rate")
    assert result.returncode == 0 and result.stdout == "30\n"
    warning = result.stderr.strip()
    assert warning.startswith(f"warning: the hub (pid {hub.pid}) at ")
    assert "is running but did not take the request within 0.5 s; showing the mirror at revision 1, " in warning
    assert warning.endswith(f"(values may be stale; {SILENT_HINT})")
    assert "statehub serve" not in warning


# --- delivered but unanswered: outcome unknown, never "nothing was written" ---------------------------


def test_a_write_that_reached_a_stopped_hub_is_unknown_and_the_hub_then_applies_it(hub: HubProcess) -> None:
    """Delivered, then unanswered: OutcomeUnknown (not HubUnavailable), and indeed the hub applies it later."""
    with Client(hub.data_dir, timeout=1) as client:
        client.status()  # a connection whose handshake is done
        with stopped(hub), pytest.raises(OutcomeUnknown) as unknown:
            client.set("plant.rate", 31)
        info = read_hub_info(Layout(hub.data_dir))
        assert info is not None
        assert unknown.value.message == (
            f"the hub (pid {hub.pid}) at {info.rpc} received the write but did not answer within 1 s"
        )
        assert unknown.value.hint.startswith("the write may or may not have been applied; repeating the same command is safe")
        assert wait_until(lambda: _value(client, "plant.rate") == 31), "the write the client called unknown was applied"


@linux_only
def test_a_write_lost_with_its_hub_is_sent_again_with_the_same_request_id_to_the_restarted_hub(
    tcp_hub: HubProcess,
) -> None:
    """The hub dies with the write unread; the client resends it to the restarted hub (new port) and is answered."""
    port = rpc_port(tcp_hub.data_dir)
    outcome = Outcome()
    client = Client(tcp_hub.data_dir, timeout=30)
    try:
        client.status()
        with stopped(tcp_hub):
            outcome.run(lambda: client.set("plant.rate", 32))
            assert wait_until(lambda: tcp_queues(port)[1] > 0, 30), "the write never reached the hub's socket"
            tcp_hub.kill()  # SIGKILL works on a stopped process: the write dies unread
        tcp_hub.start()
        assert outcome.done.wait(30)
        assert outcome.error is None, repr(outcome.error)
        assert isinstance(outcome.value, Committed) and (outcome.value.rev, outcome.value.duplicate) == (1, False)
        assert client.get("plant.rate").value == 32
    finally:
        client.close()


def test_a_write_after_a_hub_restart_is_sent_once(hub: HubProcess) -> None:
    """A client whose hub restarted between writes sends each later write once: none comes back a duplicate."""
    with hub.client() as client:
        client.set("plant.rate", 1)
        hub.kill()
        hub.start()  # the same ipc path: the old socket reconnects by itself, sooner or later
        answers = [client.set("plant.rate", value) for value in range(2, 12)]
    assert [a.duplicate for a in answers] == [False] * 10
    assert [a.rev for a in answers] == list(range(2, 12))


def test_the_resend_after_a_dropped_connection_is_the_same_request(tmp_path: Path) -> None:
    """A write whose connection drops is sent again byte for byte (same request id) and takes the answer it gets."""
    with silent_hub(tmp_path) as (router, endpoint):
        outcome = Outcome()
        client = Client(tmp_path, timeout=30)
        outcome.run(lambda: client.set("plant.rate", 33))
        first = receive(router)
        port = endpoint.rsplit(":", 1)[1]
        router.close(linger=0)  # the connection drops with the write unanswered
        again = zmq.Context.instance().socket(zmq.ROUTER)
        try:
            # The old listener closes in libzmq's own thread: bind once the port is free again.
            assert wait_until(lambda: _bound(again, f"tcp://127.0.0.1:{port}"), timeout=30)
            second = receive(again)
            assert second[-1] == first[-1]
            assert msgspec.msgpack.decode(second[-1])["request_id"] == msgspec.msgpack.decode(first[-1])["request_id"]
            again.send_multipart([*second[:-1], msgspec.msgpack.encode(CommittedReply(epoch="e", rev=7))])
            assert outcome.done.wait(30)
        finally:
            again.close(linger=0)
            client.close()
    assert outcome.error is None and outcome.value.rev == 7


def test_the_cli_says_a_delivered_unanswered_write_is_unknown_and_exits_7(tmp_path: Path) -> None:
    """A write the hub took and never answered: exit 7, its own error and hint, never "nothing was written"."""
    with silent_hub(tmp_path) as (router, endpoint):
        result = run_cli(tmp_path, "--timeout", "1", "set", "plant.rate", "34")
        request = msgspec.msgpack.decode(receive(router)[-1])
    assert (request["type"], request["key"], request["value"]) == ("set", "plant.rate", 34)
    assert result.returncode == 7
    assert result.stderr.splitlines() == [
        f"error: the hub (pid {os.getpid()}) at {endpoint} received the write but did not answer within 1 s",
        "hint: the write may or may not have been applied; repeating the same command is safe "
        "(check with `statehub get` or `statehub history`)",
    ]


# --- evidence, not timeouts, says "not running" --------------------------------------------------------


def test_not_running_comes_from_evidence_and_the_write_hint_offers_the_queue(tmp_path: Path) -> None:
    """No hub.json, or a dead pid in it: "not running" at once, "nothing was written", start it or --queue."""
    data = tmp_path / "data"
    result = run_cli(data, "--timeout", "30", "set", "plant.rate", "1")
    assert result.returncode == 5
    assert result.stderr.splitlines() == [
        f"error: the hub is not running (no {data / 'hub.json'}); nothing was written",
        "hint: start it with `statehub serve`, or add --queue to have the hub apply it when it starts",
    ]
    with HubProcess(data) as hub:
        pid = hub.pid
    hub_json = {"pid": pid, "version": "0.1.0", "protocol": 1, "rpc": f"ipc://{data}/rpc.sock",
                "events": f"ipc://{data}/events.sock", "started": 1.0}  # fmt: skip
    Layout(data).hub_file.write_text(json.dumps(hub_json))  # as a SIGKILLed hub leaves it
    status = run_cli(data, "--timeout", "30", "status")
    assert status.returncode == 5
    assert status.stderr.splitlines() == [
        f"error: the hub is not running ({data / 'hub.json'} names pid {pid}, which has exited)",
        "hint: start it with `statehub serve`",
    ]


def test_a_refused_connection_to_a_remote_hub_is_said_at_once(tmp_path: Path) -> None:
    """A --hub endpoint where nothing listens is refused evidence, not a wait of the whole timeout."""
    with _closed_port() as port:
        endpoint = f"tcp://127.0.0.1:{port}"
        result = run_cli(tmp_path, "--timeout", "30", "--hub", endpoint, "status", env=cli_env(STATEHUB_CONFIG_DIR=str(tmp_path)))
    assert result.returncode == 5
    assert result.stderr.splitlines() == [
        f"error: nothing accepts connections at {endpoint} (refused, or the host is unreachable)",
        "hint: check the endpoint (--hub, $STATEHUB_HUB or client.toml) and that a hub serves it there",
    ]


# --- a connection that survives anything -----------------------------------------------------------------


CTRL_C_CLIENT = """
import signal, sys
from statehub import Client
signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal: a background job inherits SIGINT ignored
with Client(sys.argv[1], timeout=30) as client:
    client.status()
    print("ready", flush=True)
    sys.stdin.readline()  # the hub is frozen now
    try:
        client.get("plant.rate")
        print("not interrupted", flush=True)
    except KeyboardInterrupt:
        print("interrupted", flush=True)
    sys.stdin.readline()  # the hub runs again
    print(client.set("plant.rate", 35).rev, client.get("plant.rate").value, flush=True)
"""


@linux_only
def test_ctrl_c_while_waiting_leaves_the_client_usable(tcp_hub: HubProcess) -> None:
    """A Ctrl-C (SIGINT) during a wait closes the socket; the next request works (no raw ZMQError).

    The client is a process of its own, as a user's script or CLI is, with Python's own SIGINT
    handling as in a terminal: started as a background job (``cmd &`` in a script), the suite
    and its children inherit SIGINT ignored, and Python then raises no KeyboardInterrupt.
    """
    port = rpc_port(tcp_hub.data_dir)
    with subprocess.Popen(
        [sys.executable, "-c", CTRL_C_CLIENT, str(tcp_hub.data_dir)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=cli_env(),
    ) as child:
        assert child.stdin is not None and child.stdout is not None
        try:
            assert child.stdout.readline() == "ready\n"
            with stopped(tcp_hub):
                child.stdin.write("go\n")
                child.stdin.flush()
                assert wait_until(lambda: tcp_queues(port)[1] > 0, 30), "the request never reached the frozen hub"
                child.send_signal(signal.SIGINT)
                assert child.stdout.readline() == "interrupted\n"
            child.stdin.write("go\n")
            child.stdin.flush()
            assert child.stdout.readline() == "1 35\n"
            assert child.wait(30) == 0
        finally:
            if child.poll() is None:
                child.kill()


def test_no_assert_narrows_a_type_in_the_client_package() -> None:
    """`assert isinstance(...)` vanishes under python -O: the client package checks replies for real."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            test = node.test if isinstance(node, ast.Assert) else None
            if isinstance(test, ast.UnaryOp):
                test = test.operand
            if isinstance(test, ast.Call) and isinstance(test.func, ast.Name) and test.func.id == "isinstance":
                found.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    assert found == []


def test_a_reply_of_the_wrong_kind_is_a_protocol_error(tmp_path: Path) -> None:
    """A hub answering `get` with `committed` is refused as a ProtocolError naming both, even under -O."""
    code = (
        "import sys; from statehub import Client, ProtocolError\n"
        "try:\n    Client(sys.argv[1], timeout=30).get('a', reveal=True)\n"
        "except ProtocolError as exc:\n    print(exc.message)\n"
    )
    with silent_hub(tmp_path) as (router, _endpoint):
        child = subprocess.Popen([sys.executable, "-O", "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True)
        request = receive(router)
        router.send_multipart([*request[:-1], msgspec.msgpack.encode(CommittedReply(epoch="e", rev=1))])
        out, _ = child.communicate(timeout=30)
    assert out.strip() == "the hub answered a get request with committed, not item"


# --- helpers ------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _closed_port() -> Iterator[int]:
    """A loopback port bound by this process but not listening: connecting to it is refused."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def _bound(sock: zmq.Socket[bytes], endpoint: str) -> bool:
    try:
        sock.bind(endpoint)
    except zmq.ZMQError:
        return False
    return True


def _value(client: Client, key: str) -> Any:
    try:
        return client.get(key).value
    except (NotFound, HubUnavailable):
        return None
