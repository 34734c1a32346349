"""The built wheel, installed in a fresh venv away from the checkout, runs on its own.

The wheel is built from a copy of the tree (the checkout gets no build/) with the project venv's
setuptools, offline (``--no-build-isolation --no-index``), and installed with ``--no-deps`` into a
new venv in tmp_path. Its dependencies come from the project's venv through a .pth file naming that
venv's site-packages, written after the install (so that pip never sees the checkout's editable cti):
a directory named by a .pth is only put on sys.path, its own .pth files (the editable install's
finder) are not run, so ``import cti`` can only find the wheel's copy. Then, with the working
directory an empty folder, ``cti check`` passes on the shipped sample and ``cti demo`` serves the
desk page, its static files and the API document over HTTP.
"""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import threading
import time
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.test_deploy import health_probe

pytestmark = pytest.mark.wheel

# what setup.py copies into the wheel as cti/sample/ (the same layout as the repository's root)
SAMPLE = ("trunk_map.yaml", "cases.yaml", "agents", "ivr_flows", "recordings/prompts/zh", "asterisk-conf", "knowledge")
STATIC = ("desk.html", "desk.css", "desk.js", "stats.html", "stats.css", "stats.js", "ledger.html",
          "ledger.css", "ledger.js", "vendor/echarts.min.js",
          "vendor/ECHARTS-LICENSE.txt", "vendor/ECHARTS-NOTICE.txt", "vendor/README.md")
# not part of what a wheel is built from
LEFT_OUT = shutil.ignore_patterns(".*", "build", "dist", "*.egg-info", "__pycache__", "*.pyc", "tests", "bench",
                                  "drills", "*.db", "*.db-*", "cti.yaml")  # .* : .git, .venv, the caches


@dataclass(frozen=True)
class Installed:
    tree: Path  # the copy of the checkout the wheel was built from
    wheel: Path
    venv: Path
    elsewhere: Path  # an empty working directory
    environ: dict[str, str]

    def bin(self, name: str) -> Path:
        return self.venv / "bin" / name


def run(*command: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None,
        timeout: float = 60) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([str(part) for part in command], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert done.returncode == 0, f"{' '.join(map(str, command))} exited {done.returncode}:\n{done.stdout}{done.stderr}"
    return done


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    backend = metadata.version("setuptools")
    if int(backend.split(".")[0]) < 77:
        pytest.fail(f"setuptools {backend} in {sys.prefix} cannot build cti (>=77 needed): run scripts/setup")
    base = tmp_path_factory.mktemp("wheel")
    tree = base / "tree"
    shutil.copytree(REPO, tree, ignore=LEFT_OUT, symlinks=True)
    dist = base / "dist"
    run(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "--no-index",
        "--wheel-dir", dist, tree, timeout=120)
    wheel, = dist.glob("cti12345-*.whl")
    venv = base / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", venv)
    python = venv / "bin" / "python"
    run(sys.executable, "-m", "pip", "--python", python, "install", "--quiet", "--no-deps", "--no-index", wheel,
        timeout=120)
    site, = {Path(p) for p in run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])")
             .stdout.split()}
    project = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (site / "zz-project-venv.pth").write_text("".join(f"{path}\n" for path in sorted(project)), encoding="utf-8")
    elsewhere = base / "elsewhere"
    elsewhere.mkdir()
    environ = {key: value for key, value in os.environ.items()
               if not key.startswith(("CTI_", "PYTHON", "VIRTUAL_ENV"))}
    environ["PATH"] = f"{venv / 'bin'}{os.pathsep}{environ.get('PATH', '')}"
    yield Installed(tree, wheel, venv, elsewhere, environ)


def test_the_wheel_holds_the_desk_and_the_sample_configuration(installed: Installed) -> None:
    with zipfile.ZipFile(installed.wheel) as wheel:
        names = set(wheel.namelist())
        for name in STATIC:
            shipped = installed.tree / "cti" / "web" / "static" / name
            assert wheel.read(f"cti/web/static/{name}") == shipped.read_bytes()
    for part in SAMPLE:
        source = installed.tree / part
        files = [source] if source.is_file() else sorted(p for p in source.rglob("*") if p.is_file())
        assert files, part
        for path in files:
            assert f"cti/sample/{path.relative_to(installed.tree).as_posix()}" in names
    assert not any(name.startswith(("tests/", "bench/", "drills/")) for name in names)


def test_the_installed_cti_is_the_wheels_and_checks_its_sample_from_anywhere(installed: Installed) -> None:
    imported = run(installed.bin("python"), "-c", "import cti; print(cti.__file__)", cwd=installed.elsewhere,
                   env=installed.environ).stdout.strip()
    assert Path(imported).is_relative_to(installed.venv), imported  # not the checkout's editable install
    checked = run(installed.bin("cti"), "check", cwd=installed.elsewhere, env=installed.environ)
    sample = Path(imported).parent / "sample"
    assert checked.stdout.startswith("ok: ") and f"files: the sample shipped with cti, {sample}" in checked.stdout


def test_cti_demo_from_the_wheel_serves_the_desk(installed: Installed) -> None:
    log = installed.elsewhere.parent / "demo.log"
    with log.open("w") as stderr:
        demo = subprocess.Popen([str(installed.bin("cti")), "demo", "--rate", "0", "--port", "0", "--duration", "30"],
                                cwd=installed.elsewhere, env=installed.environ, stdout=subprocess.PIPE,
                                stderr=stderr, text=True)
    lines: queue.Queue[str | None] = queue.Queue()
    reader = threading.Thread(target=_read, args=(demo, lines), daemon=True)
    reader.start()
    try:
        desk = _desk_url(lines, log)
        page = _get(desk)
        assert page == (installed.tree / "cti" / "web" / "static" / "desk.html").read_bytes()
        for name in ("desk.js", "desk.css"):
            assert _get(f"{desk}static/{name}") == (installed.tree / "cti" / "web" / "static" / name).read_bytes()
        document = json.loads(_get(f"{desk}api/openapi.json"))
        assert document["openapi"].startswith("3.") and "/api/session" in document["paths"]
        port = desk.rstrip("/").rsplit(":", 1)[1]  # the container's health check, with the wheel's python
        run(installed.bin("python"), "-c", health_probe(), cwd=installed.elsewhere,
            env={**installed.environ, "CTI_WEB_PORT": port})
    finally:
        demo.send_signal(signal.SIGINT)  # Ctrl-C
        try:
            status = demo.wait(timeout=20)
        except subprocess.TimeoutExpired:
            demo.kill()
            status = demo.wait()
        reader.join(timeout=5)
        assert demo.stdout is not None
        demo.stdout.close()
    assert status == 0, log.read_text()
    assert list(installed.elsewhere.iterdir()) == []  # the demo wrote nothing where it was started


def _read(demo: subprocess.Popen[str], lines: queue.Queue[str | None]) -> None:
    assert demo.stdout is not None
    for line in demo.stdout:
        lines.put(line)
    lines.put(None)


def _desk_url(lines: queue.Queue[str | None], log: Path, timeout: float = 45) -> str:
    """The desk's address, from what ``cti demo`` prints once it is up."""
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            break
        if line is None:
            break
        seen.append(line)
        found = re.match(r"\s*desk\s+(http://127\.0\.0\.1:\d+/)\s*$", line)
        if found:
            return found.group(1)
    raise AssertionError(f"cti demo printed no desk address:\n{''.join(seen)}\n{log.read_text()}")


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.status == 200, url
        body: bytes = response.read()
        return body
