"""A secret's plaintext never crosses HTTP: every response of `statehub web` and its event stream, grepped.

The web leg of tests/test_secrets.py's leak test: known secrets are written on
the hub's side, then every endpoint (and the stream, through a resync, a change
and a reconnect) is read and searched for their plaintext.  Writes of a secret
over HTTP are refused, so the plaintext cannot travel the other way either.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("starlette", reason="statehub[web] is not installed")
pytest.importorskip("httpx", reason="httpx is not installed")

from statehub.hub.protocol import SECRET_PLACEHOLDER  # noqa: E402
from statehub.testing import HubProcess, wait_until  # noqa: E402
from tests.conftest import run_cli  # noqa: E402
from tests.web_support import SseReader, WebProcess  # noqa: E402

PASSWORD = "hunter2-Web-Pw-8c1d"
TOKEN = "tok-WEB-77-uniquely-greppable"
NEWER = "third-Web-Pw-Q9x"
PLAINTEXTS = (PASSWORD, TOKEN, NEWER)


def test_no_secret_plaintext_reaches_any_http_response_or_the_event_stream(hub: HubProcess, data_dir: Path) -> None:
    """Every endpoint, the page, its files and the SSE stream show secrets only as the placeholder."""
    stored = run_cli(data_dir, "secret", "set", "eds.password", input=PASSWORD + "\n")
    assert stored.returncode == 0, stored.stderr
    with hub.client() as client:
        client.set_secret("eds.token", TOKEN)
        client.set("eds.url", "https://eds.example/api")
    bodies: dict[str, bytes] = {}
    with WebProcess(data_dir) as web:
        web.wait_following()
        stream = SseReader(web.url + "api/events")
        try:
            assert wait_until(lambda: stream.of("status"), 10)
            with hub.client() as client:
                client.set_secret("eds.password", NEWER)  # a change of a secret, on the stream
                client.set("plant.rate", 30)
            assert wait_until(lambda: "plant.rate" in stream.state(), 10)
            with web.http() as http:
                for path in (
                    "/", "/static/app.js", "/api/keys", "/api/keys?prefix=eds.", "/api/keys/eds.password",
                    "/api/keys/eds.token", "/api/keys/eds.password/history", "/api/keys/eds.token/history?limit=10000",
                    "/api/status", "/api/whoami",
                ):
                    response = http.get(path)
                    assert response.status_code == 200, (path, response.text)
                    bodies[f"GET {path}"] = response.content + str(response.headers).encode()
                refusals = {
                    "PUT secret": http.put("/api/keys/eds.password", json={"value": "x"}),
                    "PUT stale secret": http.put("/api/keys/eds.token", json={"value": "x"}, headers={"If-Match": "1"}),
                    "DELETE secret": http.delete("/api/keys/eds.password"),
                    "txn touching a secret": http.post("/api/txn", json={"ops": [{"op": "set", "key": "eds.token", "value": 1}]}),
                }
                for name, response in refusals.items():
                    assert response.status_code == 403 and response.json()["error"]["code"] == "secret", name
                    bodies[name] = response.content
                # A conflict on a key next to a secret, in a txn: its details must not carry the value either.
                conflict = http.post("/api/txn", json={"ops": [{"op": "set", "key": "eds.url", "value": "y", "expect": 99}]})
                assert conflict.status_code == 409
                bodies["txn conflict"] = conflict.content
            resumed = SseReader(web.url + "api/events", headers={"Last-Event-ID": "stale-epoch:1"})
            try:
                assert wait_until(lambda: resumed.of("resync"), 10)
            finally:
                resumed.close()
        finally:
            stream.close()
        bodies["event stream"] = bytes(stream.raw)
        bodies["event stream (resync)"] = bytes(resumed.raw)
        bodies["web log"] = web.log.encode()
    leaks = {name: [s for s in PLAINTEXTS if s.encode() in blob] for name, blob in bodies.items()}
    assert {name: found for name, found in leaks.items() if found} == {}
    # ... and the grep looked at the right things: the secrets' keys and placeholders are there.
    assert b"eds.password" in bodies["event stream"] and SECRET_PLACEHOLDER.encode() in bodies["event stream"]
    assert b'"secret":true' in bodies["GET /api/keys/eds.token"]
    with hub.client() as client:
        assert client.get("eds.password", reveal=True).value == NEWER  # the refused writes changed nothing
        assert client.get("eds.token", reveal=True).value == TOKEN


def test_op_fields_that_would_make_a_secret_are_refused(hub: HubProcess, data_dir: Path) -> None:
    """The API has no way to send a secret: a `secret` field in a txn op is an unknown field, 400."""
    with WebProcess(data_dir) as web, web.http() as http:
        response = http.post("/api/txn", json={"ops": [{"op": "set", "key": "x.y", "value": "pw", "secret": "value"}]})
        assert response.status_code == 400 and "secret" in response.json()["error"]["message"]
    with hub.client() as client:
        assert client.list("x.").items == []
