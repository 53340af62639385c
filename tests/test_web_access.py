"""Who may use `statehub web`: tokens and roles, read-only servers, CSRF and DNS-rebinding refusals."""

from __future__ import annotations

import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("starlette", reason="statehub[web] is not installed")
pytest.importorskip("httpx", reason="httpx is not installed")

from statehub.testing import HubProcess  # noqa: E402
from tests.conftest import cli_env, run_cli  # noqa: E402
from tests.web_support import SseReader, WebProcess  # noqa: E402


def make_token(data_dir: Path, name: str, role: str) -> str:
    made = run_cli(data_dir, "web", "token", "create", name, "--role", role)
    assert made.returncode == 0, made.stderr
    return made.stdout.strip()


@pytest.fixture
def tokens(hub: HubProcess, data_dir: Path) -> dict[str, str]:
    return {"reader": make_token(data_dir, "wall-display", "read"), "writer": make_token(data_dir, "ana-tablet", "write")}


@pytest.fixture
def locked(hub: HubProcess, data_dir: Path, tokens: dict[str, str]) -> Iterator[WebProcess]:
    with WebProcess(data_dir, "--require-token") as process:
        yield process


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_a_token_is_shown_once_and_only_its_digest_is_kept_owner_only(hub: HubProcess, data_dir: Path) -> None:
    """`web token create` prints the token; web-tokens.json (0600) holds its SHA-256, not the token."""
    token = make_token(data_dir, "control-room", "write")
    assert token.startswith("shw_") and len(token) > 40
    path = data_dir / "web-tokens.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert token not in path.read_text() and "control-room" in path.read_text()
    listed = run_cli(data_dir, "web", "token", "list")
    assert "control-room" in listed.stdout and token not in listed.stdout
    again = run_cli(data_dir, "web", "token", "create", "control-room")
    assert again.returncode == 2 and "exists already" in again.stderr
    bad_role = run_cli(data_dir, "web", "token", "create", "x", "--role", "admin")
    assert bad_role.returncode == 2 and "read or write" in bad_role.stderr


def test_without_a_token_a_locked_server_gives_nothing(locked: WebProcess) -> None:
    """--require-token: reads, writes and the event stream all answer 401 naming the fix."""
    with locked.http() as http:
        for method, path in (("GET", "/api/keys"), ("GET", "/api/events"), ("PUT", "/api/keys/a.b")):
            response = http.request(method, path, json={"value": 1})
            assert response.status_code == 401, (method, path)
            assert "token" in response.json()["error"]["message"]
            assert response.headers["www-authenticate"].startswith("Bearer")
        bogus = http.get("/api/keys", headers=bearer("shw_not-a-real-token"))
        assert bogus.status_code == 401 and "not valid" in bogus.json()["error"]["message"]
        assert http.get("/").status_code == 200  # the page itself, which asks for a token


def test_a_read_token_reads_and_follows_but_cannot_write(hub: HubProcess, locked: WebProcess, tokens: dict[str, str]) -> None:
    """The read role may GET and stream; every write is 403 and nothing changes."""
    with hub.client() as client:
        client.set("a.b", 1)
    with locked.http(headers=bearer(tokens["reader"])) as http:
        assert http.get("/api/keys/a.b").json()["value"] == 1
        refused = http.put("/api/keys/a.b", json={"value": 2})
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"
        assert http.delete("/api/keys/a.b").status_code == 403
        assert http.post("/api/txn", json={"ops": [{"op": "unset", "key": "a.b"}]}).status_code == 403
    reader = SseReader(locked.url + "api/events", headers=bearer(tokens["reader"]))
    try:
        from statehub.testing import wait_until

        assert wait_until(lambda: reader.of("resync"), 10) and reader.status_code == 200
    finally:
        reader.close()
    with hub.client() as client:
        assert client.get("a.b").value == 1


def test_a_write_token_writes_under_its_name_and_a_revoked_one_stops_at_once(
    hub: HubProcess, locked: WebProcess, tokens: dict[str, str], data_dir: Path
) -> None:
    """Writes carry the token's name as user and source web; after `token revoke` the token is refused."""
    with locked.http(headers=bearer(tokens["writer"])) as http:
        assert http.put("/api/keys/a.c", json={"value": 5}).status_code == 200
        with hub.client() as client:
            version = client.history("a.c")[0]
        assert (version.user, version.source) == ("ana-tablet", "web")
        assert run_cli(data_dir, "web", "token", "revoke", "ana-tablet").returncode == 0
        assert http.put("/api/keys/a.c", json={"value": 6}).status_code == 401


def test_a_cookie_session_authorizes_reads_but_never_a_write(locked: WebProcess, tokens: dict[str, str]) -> None:
    """POST /api/session sets an HttpOnly SameSite=Strict cookie; it opens GETs, but a write needs the header (CSRF)."""
    with locked.http() as http:
        opened = http.post("/api/session", headers=bearer(tokens["writer"]))
        assert opened.status_code == 200 and opened.json()["role"] == "write"
        cookie = opened.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie
        assert http.get("/api/keys").status_code == 200  # the cookie, no header
        assert http.put("/api/keys/a.d", json={"value": 1}).status_code == 401


def test_a_read_only_server_lets_anyone_read_and_nobody_write_anonymously(hub: HubProcess, data_dir: Path) -> None:
    """--read-only: anonymous GETs work, anonymous writes are 403."""
    with WebProcess(data_dir, "--read-only") as web, web.http() as http:
        assert http.get("/api/keys").status_code == 200
        assert http.get("/api/whoami").json() == {"name": None, "role": "read", "read_only": True}
        assert http.put("/api/keys/a.e", json={"value": 1}).status_code == 403


def test_writes_from_another_site_are_refused(hub: HubProcess, data_dir: Path) -> None:
    """A browser write carrying another Origin or Sec-Fetch-Site: cross-site is 403; a rebinding Host is 400."""
    with WebProcess(data_dir) as web, web.http() as http:
        evil = http.put("/api/keys/a.f", json={"value": 1}, headers={"Origin": "http://evil.example"})
        assert evil.status_code == 403 and evil.json()["error"]["code"] == "cross_origin"
        cross = http.put("/api/keys/a.f", json={"value": 1}, headers={"Sec-Fetch-Site": "cross-site"})
        assert cross.status_code == 403
        rebound = http.get("/api/keys", headers={"Host": "evil.example:8080"})
        assert rebound.status_code == 400
        same = http.put("/api/keys/a.f", json={"value": 1}, headers={"Origin": web.url.rstrip("/"), "Sec-Fetch-Site": "same-origin"})
        assert same.status_code == 200


def test_listening_beyond_loopback_without_a_token_refuses_to_start(hub: HubProcess, data_dir: Path) -> None:
    """`statehub web --host ADDR` with no token and no --read-only exits 2 before binding, saying what to do."""
    # 192.0.2.1 is TEST-NET-1: never this machine's, so even a broken check could not bind it.
    result = subprocess.run(
        [sys.executable, "-m", "statehub.cli", "--data-dir", str(data_dir), "web", "--host", "192.0.2.1", "--port", "0"],
        capture_output=True, text=True, timeout=30, env=cli_env(),
    )
    assert result.returncode == 2
    assert "needs a token" in result.stderr and "statehub web token create" in result.stderr


def test_a_busy_port_is_a_clear_error(hub: HubProcess, data_dir: Path) -> None:
    """A second server on the same port exits 1 naming the address."""
    with WebProcess(data_dir) as web:
        port = web.url.rstrip("/").rsplit(":", 1)[1]
        result = subprocess.run(
            [sys.executable, "-m", "statehub.cli", "--data-dir", str(data_dir), "web", "--port", port],
            capture_output=True, text=True, timeout=30, env=cli_env(),
        )
        assert result.returncode == 1 and f"cannot listen on 127.0.0.1:{port}" in result.stderr
