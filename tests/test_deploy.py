"""The Raspberry Pi deployment files, tested as far as is honest without a Docker engine or systemd.

- docker/Dockerfile: its ENTRYPOINT + CMD and its HEALTHCHECK command run exactly as written
  (with the ENV data dir pointed at a temp dir) and behave as a container needs.
- docker/compose.yaml: parses, has the documented shape, and the ingester's command works
  against the hub sharing its data dir.
- docker/*.service: `systemd-analyze verify` passes without a warning.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from statehub.testing import HubProcess, wait_until

from .conftest import cli_env
from .eds_support import LONG_SAMPLE

DOCKER = Path(__file__).resolve().parent.parent / "docker"
DOCKERFILE = DOCKER / "Dockerfile"
UNITS = sorted(DOCKER.glob("*.service"))


# --- reading the Dockerfile ----------------------------------------------------------------------


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined, comments dropped."""
    joined = re.sub(
        r"\\\n", " ", "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    )
    result = []
    for line in joined.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            result.append((word.upper(), rest.strip()))
    return result


def final_stage(text: str) -> list[tuple[str, str]]:
    steps = instructions(text)
    last_from = max(i for i, (word, _rest) in enumerate(steps) if word == "FROM")
    return steps[last_from:]


def exec_form(arguments: str) -> list[str]:
    """An exec-form (JSON array) command; the shell form would not get SIGTERM as PID 1."""
    command = json.loads(arguments)
    assert isinstance(command, list) and all(isinstance(part, str) for part in command), arguments
    return command


def image_env(stage: list[tuple[str, str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for word, rest in stage:
        if word == "ENV":
            env.update(part.split("=", 1) for part in shlex.split(rest))  # type: ignore[misc]
    return env


STAGE = final_stage(DOCKERFILE.read_text())
ENTRYPOINT = exec_form(next(rest for word, rest in STAGE if word == "ENTRYPOINT"))
CMD = exec_form(next(rest for word, rest in STAGE if word == "CMD"))
HEALTHCHECK = exec_form(next(rest for word, rest in STAGE if word == "HEALTHCHECK").split(" CMD ", 1)[1])
ENV = image_env(STAGE)


def installed(program: str) -> str:
    """The program as the image would find it on PATH (this interpreter's bin dir first)."""
    found = shutil.which(
        program, path=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    )
    if found is None:
        pytest.skip(f"{program} is not installed in this environment (pip install -e .)")
    return found


def container_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """The image's ENV, with its data dir (a volume at /data) moved to a temp dir."""
    env = {**cli_env(), **ENV, **extra}
    env["STATEHUB_DATA_DIR"] = str(data_dir)
    return env


def test_the_image_runs_as_a_non_root_user_with_the_store_on_a_volume() -> None:
    words = dict(STAGE)
    assert (
        words["FROM"].startswith("python:${PYTHON_VERSION}-slim")
        and "ARG PYTHON_VERSION=3.11" in DOCKERFILE.read_text()
    )
    assert words["USER"] == "statehub"
    assert json.loads(words["VOLUME"]) == ["/data"]
    assert ENV["STATEHUB_DATA_DIR"] == "/data"
    assert "EXPOSE" not in words  # ipc on the volume; nothing on the network
    assert ENTRYPOINT + CMD == ["statehub", "serve"]
    assert HEALTHCHECK[0] == "statehub" and HEALTHCHECK[-1] == "status"


class Entrypoint(HubProcess):
    """The image's ENTRYPOINT + CMD as written, run and awaited like any test hub."""

    def command(self) -> list[str]:
        return [installed(ENTRYPOINT[0]), *ENTRYPOINT[1:], *CMD]


@pytest.fixture
def container(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Entrypoint, Path]]:
    """The entrypoint serving a temp dir in place of the /data volume, with the image's ENV."""
    data_dir = tmp_path / "data"
    for name in [n for n in os.environ if n.startswith("STATEHUB_")]:
        monkeypatch.delenv(name)
    for name, value in container_env(data_dir).items():
        monkeypatch.setenv(name, value)
    process = Entrypoint(data_dir)
    process.start()
    try:
        yield process, data_dir
    finally:
        process.kill()


def healthcheck(data_dir: Path) -> subprocess.CompletedProcess[str]:
    command = [installed(HEALTHCHECK[0]), *HEALTHCHECK[1:]]
    return subprocess.run(command, capture_output=True, text=True, timeout=30, env=container_env(data_dir))


def test_the_entrypoint_serves_ipc_in_the_volume_and_the_healthcheck_follows_it(
    container: tuple[Entrypoint, Path],
) -> None:
    process, data_dir = container
    healthy = healthcheck(data_dir)
    assert healthy.returncode == 0, healthy.stderr
    assert "revision 0" in healthy.stdout
    hub_info = json.loads((data_dir / "hub.json").read_text())
    assert hub_info["rpc"] == f"ipc://{data_dir}/rpc.sock"
    assert process.terminate() == 0  # SIGTERM, what `docker stop` sends (STOPSIGNAL SIGTERM)
    assert not (data_dir / "hub.json").exists()
    unhealthy = healthcheck(data_dir)
    assert unhealthy.returncode == 5 and unhealthy.stderr.startswith("error: ")


# --- compose.yaml ----------------------------------------------------------------------------------


def parse_block_yaml(text: str) -> Any:
    """The block-style YAML subset compose.yaml keeps to: mappings, lists, scalars, JSON flow lists.

    Used because PyYAML is not a statehub dependency; when it is installed the result is
    checked against it.
    """
    lines = []
    for raw in text.splitlines():
        stripped = raw.split(" #", 1)[0].rstrip() if not raw.lstrip().startswith("#") else ""
        if stripped.strip():
            lines.append((len(stripped) - len(stripped.lstrip()), stripped.strip()))
    value, end = _block(lines, 0, lines[0][0])
    assert end == len(lines), f"unparsed from line {lines[end]}"
    return value


def _scalar(text: str) -> Any:
    if text.startswith("["):
        return json.loads(text)
    if text in ("true", "false"):
        return text == "true"
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    return text.strip("\"'")


def _block(lines: list[tuple[int, str]], i: int, indent: int) -> tuple[Any, int]:
    if lines[i][1].startswith("- "):
        items = []
        while i < len(lines) and lines[i][0] == indent and lines[i][1].startswith("- "):
            items.append(_scalar(lines[i][1][2:]))
            i += 1
        return items, i
    mapping: dict[str, Any] = {}
    while i < len(lines) and lines[i][0] == indent:
        key, _, rest = lines[i][1].partition(":")
        assert _ == ":", f"not a mapping entry: {lines[i][1]!r}"
        i += 1
        if rest.strip():
            mapping[key] = _scalar(rest.strip())
        elif i < len(lines) and lines[i][0] > indent:
            mapping[key], i = _block(lines, i, lines[i][0])
        else:
            mapping[key] = None
    return mapping, i


COMPOSE = parse_block_yaml((DOCKER / "compose.yaml").read_text())


def test_the_compose_file_parses_the_same_with_pyyaml_when_it_is_installed() -> None:
    yaml = pytest.importorskip("yaml", reason="PyYAML is not installed; the subset parser alone is used")
    assert yaml.safe_load((DOCKER / "compose.yaml").read_text()) == COMPOSE


def test_the_compose_file_runs_a_hub_and_an_ingester_sharing_one_volume() -> None:
    hub, ingester = COMPOSE["services"]["hub"], COMPOSE["services"]["ingest-eds"]
    assert hub["command"] == CMD == ["serve"]
    assert ingester["command"][:3] == ["ingest-eds", "--watch", "/drop"]
    assert "statehub-data:/data" in hub["volumes"] and "statehub-data:/data" in ingester["volumes"]
    assert any(volume.endswith(":/drop") for volume in ingester["volumes"])
    assert ingester["depends_on"] == {"hub": {"condition": "service_healthy"}}
    assert "statehub-data" in COMPOSE["volumes"]
    assert not any(
        "ports" in service or "network_mode" in service
        for name, service in COMPOSE["services"].items()
        if name != "web"
    )


def test_the_compose_site_links_run_only_under_their_profiles_and_publish_no_port() -> None:
    """uplink (a site) and follow-sites (the centre) share the hub's volume, wait for it, and start only when asked."""
    for name, profile in (("uplink", "site"), ("follow-sites", "centre")):
        service = COMPOSE["services"][name]
        assert service["profiles"] == [profile] and service["command"][0] == name
        assert "statehub-data:/data" in service["volumes"] and "ports" not in service
        assert service["depends_on"] == {"hub": {"condition": "service_healthy"}}


def test_the_compose_web_service_publishes_only_on_the_hosts_loopback() -> None:
    """The dashboard shares the volume, waits for the hub, and is reachable only from the host itself."""
    web = COMPOSE["services"]["web"]
    assert web["command"][0] == "web" and "--read-only" in web["command"]
    assert "statehub-data:/data" in web["volumes"]
    assert web["depends_on"] == {"hub": {"condition": "service_healthy"}}
    assert all(port.startswith("127.0.0.1:") for port in web["ports"])
    assert "network_mode" not in web


def test_the_compose_ingester_command_ingests_through_the_shared_data_dir(
    container: tuple[Entrypoint, Path], tmp_path: Path
) -> None:
    """The ingester service's command, against the hub the entrypoint started, on the same data dir."""
    _process, data_dir = container
    ingester = COMPOSE["services"]["ingest-eds"]
    drop = tmp_path / "drop"
    drop.mkdir()
    arguments = [drop.as_posix() if part == "/drop" else part for part in ingester["command"]]
    program = [installed("statehub")]
    env = container_env(data_dir, **{k: str(v) for k, v in ingester["environment"].items()})
    process = subprocess.Popen(
        [*program, *arguments, "--interval", "0.05"],
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        shutil.copy(LONG_SAMPLE, drop / "live_data.csv")
        assert wait_until(lambda: (drop / "done" / "live_data.csv").exists(), timeout=20)
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=20)
    assert process.returncode == 0, err
    assert out.startswith("done live_data.csv -> done/live_data.csv: ingested 1 file (latest)")
    listing = subprocess.run(
        [installed("statehub"), "list", "eds.maxson."],
        capture_output=True,
        text=True,
        timeout=30,
        env=container_env(data_dir),
    )
    assert listing.stdout.startswith(
        "eds.maxson.2308 = "
    )  # plant from STATEHUB_EDS__PLANT, no point map given


# --- systemd ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("unit", UNITS, ids=[u.name for u in UNITS])
def test_the_systemd_unit_passes_systemd_analyze_verify(unit: Path, tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed here (Debian: apt-get install systemd)")
    text = unit.read_text()
    # verify checks that ExecStart exists; the unit names the Pi's venv, so point it at this one.
    copy = tmp_path / unit.name
    copy.write_text(text.replace("/opt/statehub/venv/bin/statehub", installed("statehub")))
    result = subprocess.run(
        [analyze, "verify", "--man=no", str(copy)], capture_output=True, text=True, timeout=60
    )
    assert (result.returncode, result.stderr) == (0, ""), (
        result.stderr
    )  # unknown keys only warn, so none allowed
    assert "Restart=on-failure" in text and "User=statehub" in text and "StateDirectory=" in text
    assert "NoNewPrivileges=yes" in text and "ProtectSystem=strict" in text
