"""deploy/: the systemd unit, the container recipe and the settings they share, checked as far as this
machine can: ``systemd-analyze verify`` on the unit (when systemd-analyze is here), and for the
Containerfile (no container engine needed) that what it copies exists, what it runs is cti's, the
ports it exposes are cti's and its health check asks a public route that exists."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cti.cli import _parser
from cti.configuration import load_configuration
from cti.settings import _ENVIRONMENT, Settings, load_settings, sample_folder
from cti.web import app as web_app
from cti.web.routes import PUBLIC
from tests.conftest import REPO

DEPLOY = REPO / "deploy"
UNIT = DEPLOY / "cti.service"
CONTAINERFILE = DEPLOY / "Containerfile"
SETTINGS = DEPLOY / "cti.yaml"
KNOWN_VARIABLES = {*_ENVIRONMENT, "CTI_SETTINGS"}


def unit_entries() -> list[tuple[str, str, str]]:
    """(section, key, value) for every setting of the unit, in order."""
    entries, section = [], ""
    for raw in UNIT.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        entries.append((section, key, value))
    return entries


def unit(key: str) -> list[str]:
    return [value for _, name, value in unit_entries() if name == key]


def cti_command(argv: list[str]) -> None:
    """argv (after ``cti``) is a command cti's own parser accepts."""
    try:
        _parser().parse_args(argv)
    except SystemExit as exc:
        raise AssertionError(f"cti {' '.join(argv)}: not a cti command line (argparse exited {exc.code})") from None


def test_the_deployed_settings_load_and_check_beside_the_shipped_sample(tmp_path: Path) -> None:
    sample = sample_folder()
    assert sample is not None
    etc = tmp_path / "etc-cti"  # what the unit's comments and the Containerfile make /etc/cti
    for part in ("trunk_map.yaml", "cases.yaml", "agents", "ivr_flows", "recordings/prompts/zh"):
        if (sample / part).is_dir():
            shutil.copytree(sample / part, etc / part)
        else:
            (etc / part).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(sample / part, etc / part)
    shutil.copy(SETTINGS, etc / "cti.yaml")
    settings = load_settings(etc / "cti.yaml", environ={})
    assert settings.database.url == "sqlite:////var/lib/cti/cti.db"
    assert settings.ami.secret == ""  # it comes from the environment
    load_configuration(settings)  # raises ConfigError with every problem


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed here")
def test_the_systemd_unit_verifies(tmp_path: Path) -> None:
    # verify wants ExecStart's program to exist: the project venv's cti stands in for /opt/cti/bin/cti
    cti = Path(sys.executable).parent / "cti"
    assert cti.exists()
    copy = tmp_path / "cti.service"
    copy.write_text(UNIT.read_text(encoding="utf-8").replace("/opt/cti/bin/cti", str(cti)), encoding="utf-8")
    done = subprocess.run(["systemd-analyze", "verify", str(copy)], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout + done.stderr) == (0, "")  # warnings (an unknown key…) exit 0 too


def test_the_unit_runs_cti_serve_unprivileged_hardened_with_the_secret_elsewhere() -> None:
    service = dict((key, value) for section, key, value in unit_entries() if section == "Service")
    assert service["User"] not in ("", "root", "0") and service["Type"] == "exec"
    assert unit("ExecStart") == ["/opt/cti/bin/cti serve"]
    for command in unit("ExecStart") + unit("ExecReload"):
        program, *argv = shlex.split(command)
        if program.endswith("/cti"):
            cti_command(argv)
    assert unit("ExecReload")[-1] == "/bin/kill -HUP $MAINPID"  # cti reloads on SIGHUP (cti/service.py)
    assert service["Restart"] == "on-failure" and service["RestartPreventExitStatus"] == "2"  # cli.EXIT_USAGE
    environment = dict(item.split("=", 1) for value in unit("Environment") for item in shlex.split(value))
    assert set(environment) <= KNOWN_VARIABLES and environment["CTI_SETTINGS"] == "/etc/cti/cti.yaml"
    assert service["EnvironmentFile"].lstrip("-") == "/etc/cti/cti.env"
    assert "SECRET" not in "".join(unit("Environment"))  # the secret is in the EnvironmentFile, not here
    database = Path(load_settings(SETTINGS, environ={}).database.url.removeprefix("sqlite:///")).parent
    assert str(database) in service["ReadWritePaths"].split() and service["StateDirectory"] == database.name
    assert service["WorkingDirectory"] == str(database)
    for key, value in {"NoNewPrivileges": "yes", "ProtectSystem": "strict", "PrivateTmp": "yes",
                       "ProtectHome": "yes", "PrivateDevices": "yes", "CapabilityBoundingSet": ""}.items():
        assert service[key] == value, key


def containerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments left out."""
    instructions, pending = [], ""
    for raw in CONTAINERFILE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if line.startswith("#") or not line:
            continue
        pending += line
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        name, _, arguments = pending.partition(" ")
        instructions.append((name.upper(), arguments.strip()))
        pending = ""
    return instructions


def test_the_containerfile_copies_what_exists_and_runs_cti() -> None:
    instructions = containerfile()
    stages = [arguments for name, arguments in instructions if name == "FROM"]
    assert len(stages) == 2 and stages[0].endswith(" AS build") and "-slim" in stages[1]  # multi-stage, slim
    ignore = [line for line in (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines()
              if line and not line.startswith("#")]
    assert ignore[0] == "*"
    allowed = [pattern[1:].rstrip("/") for pattern in ignore if pattern.startswith("!")]
    runtime = instructions[[name for name, _ in instructions].index("FROM", 1):]
    for name, arguments in instructions:
        if name != "COPY":
            continue
        *sources, _ = shlex.split(arguments)
        if sources[0].startswith("--from="):
            assert sources[0] == "--from=build"
            continue
        for source in sources:
            assert list(REPO.glob(source)), f"COPY {source}: not in the repository"
            clean = source.rstrip("/")
            assert any(clean == item or clean.startswith(item + "/") for item in allowed), \
                f"COPY {source}: left out of the build context by .dockerignore"
    users = [arguments for name, arguments in runtime if name == "USER"]
    assert users and users[-1] not in ("root", "0")
    commands = [arguments for name, arguments in instructions if name in ("CMD", "ENTRYPOINT")]
    assert len(commands) == 1
    program, *argv = json.loads(commands[0])
    assert (program, argv) == ("cti", ["serve"])
    cti_command(argv)
    env = " ".join(arguments for name, arguments in runtime if name == "ENV")
    variables = dict(item.split("=", 1) for item in shlex.split(env))
    assert {name for name in variables if name.startswith("CTI_")} <= KNOWN_VARIABLES
    assert variables["CTI_SETTINGS"] == "/etc/cti/cti.yaml"
    volumes = " ".join(arguments for name, arguments in runtime if name == "VOLUME")
    database = Path(load_settings(SETTINGS, environ={}).database.url.removeprefix("sqlite:///")).parent
    assert f'"{Path(variables["CTI_SETTINGS"]).parent}"' in volumes and f'"{database}"' in volumes
    exposed = {int(port) for name, arguments in runtime if name == "EXPOSE" for port in arguments.split()}
    deployed = load_settings(SETTINGS, environ={})
    assert exposed == {Settings().web.port, Settings().agi.port} == {deployed.web.port, deployed.agi.port}


def test_the_containerfile_python_snippets_are_real_and_the_health_check_asks_a_public_route(
        tmp_path: Path) -> None:
    instructions = containerfile()
    snippets = [match for name, arguments in instructions if name in ("RUN", "HEALTHCHECK")
                for match in re.findall(r"python -c '([^']+)'", arguments)]
    assert len(snippets) == 1
    probe = health_probe()
    # the sample folder the image copies into /etc/cti
    printed = subprocess.run([sys.executable, "-c", snippets[0]], capture_output=True, text=True, timeout=60,
                             check=True).stdout.strip()
    assert Path(printed) == sample_folder()
    # the health check, with nothing listening on its port: it reaches for the network, and fails
    free = _free_port()
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60,
                          cwd=tmp_path, env={"CTI_WEB_PORT": str(free), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 1 and "Connection refused" in done.stderr, done.stderr
    path = re.search(r"/api/[\w./]+", probe)
    assert path is not None
    route, = (route for route in web_app.routes.table if route.path == path.group(0) and route.method == "GET")
    assert route.roles == PUBLIC  # no token needed


def health_probe() -> str:
    """The Python the Containerfile's HEALTHCHECK runs (tests/test_wheel.py runs it against the demo)."""
    health, = (arguments for name, arguments in containerfile() if name == "HEALTHCHECK")
    probe = re.search(r'CMD \["python", "-c", "(.+)"\]$', health)
    assert probe is not None, health
    return probe.group(1)


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_no_secret_is_in_deploy() -> None:
    for path in DEPLOY.iterdir():
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"CTI_AMI_SECRET=(?!…)\S", text), path  # only the placeholder
        assert not re.search(r"^\s*secret\s*:", text, re.MULTILINE), path
