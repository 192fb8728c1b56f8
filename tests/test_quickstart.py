"""The README's quick start, as written in README.md, on the distribution's own python3.

A stock Debian or Ubuntu has `python3` only (no `python`), refuses `python3 -m pip install`
(PEP 668) and may lack pip and venv. The commands are read from README.md (so they cannot
drift) and run with `/usr/bin/python3` as the only Python on PATH, in a copy of the template,
with a fresh HOME (so `scripts/uv.py` downloads and checks uv itself). They skip where there
is no `/usr/bin/python3`, unless REQUIRE_SYSTEM_PYTHON=1 (`.ci/run` and the template's CI).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.bake import TEMPLATE, Baker, postgres_processes_using

SYSTEM_PYTHON = Path("/usr/bin/python3")
REQUIRED = os.environ.get("REQUIRE_SYSTEM_PYTHON") == "1"
# What a stock machine does not have: another Python, pip, uv, cookiecutter.
NOT_STOCK = re.compile(r"(python|pip|uv|uvx|cookiecutter|cruft)([-.0-9].*)?")
COPY_IGNORE = shutil.ignore_patterns(
    ".venv", ".git", "build", "__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache"
)
STARTED = re.compile(r"running on https?://[^\s:/]+:(\d+)")
QUICK_START_TIMEOUT = 900


def readme_commands() -> tuple[str, str]:
    """(generate-and-serve command, test command) from the README's quick start."""
    text = (TEMPLATE / "README.md").read_text("utf-8")
    section = text.split("\n## Quick start", 1)[1].split("\n## ", 1)[0]
    blocks = [block.strip() for block in re.findall(r"```bash\n(.*?)```", section, re.S)]
    generate = [block for block in blocks if "cookiecutter" in block]
    tests = [block for block in blocks if "pytest" in block]
    assert len(generate) == 1 and len(tests) == 1, blocks
    return generate[0], tests[0]


# ------------------------------------------------------------------------------ always


def test_readme_commands_need_only_python3() -> None:
    """No `python` (Debian has none), no pip (PEP 668 refuses it), one line each."""
    for command in readme_commands():
        assert "\n" not in command
        assert re.match(r"python3 (\.\./)?scripts/uv\.py ", command), command
        assert not re.search(r"(^|\s)python(\s|$)|\bpip\b", command), command
    generate, _ = readme_commands()
    assert generate.endswith(" serve"), "the quick start ends by starting the app"


def test_ci_runs_the_readme_test_command() -> None:
    """`.ci/run` and the template's GitHub workflow run the README's test command as written."""
    _, command = readme_commands()
    ci_lines = (TEMPLATE / ".ci" / "run").read_text("utf-8").splitlines()
    assert command in ci_lines
    workflow = (TEMPLATE / ".github" / "workflows" / "ci.yml").read_text("utf-8")
    assert f"run: {command}\n" in workflow
    assert "/usr/bin/python3 scripts/uv.py run pytest -n 0 tests/test_quickstart.py" in workflow


# ------------------------------------------------------------------------------ the machine


def system_python_or_skip() -> None:
    """Skip (or fail, when required) without a usable /usr/bin/python3."""
    problem = None
    if not SYSTEM_PYTHON.exists():
        problem = f"{SYSTEM_PYTHON} does not exist"
    else:
        done = subprocess.run(
            [str(SYSTEM_PYTHON), "-c", "import sys; print(sys.version_info >= (3, 11))"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if done.stdout.strip() != "True":
            problem = f"{SYSTEM_PYTHON} is older than 3.11"
    if problem:
        if REQUIRED:
            pytest.fail(f"REQUIRE_SYSTEM_PYTHON=1 but {problem}")
        pytest.skip(problem)


def stock_bin(where: Path) -> Path:
    """A PATH folder like a stock Debian's: the system's tools, python3 the only Python."""
    where.mkdir(parents=True)
    for folder in (Path("/usr/bin"), Path("/bin")):
        for tool in folder.iterdir() if folder.is_dir() else ():
            link = where / tool.name
            if NOT_STOCK.fullmatch(tool.name) or link.exists() or link.is_symlink():
                continue
            if tool.is_file() and os.access(tool, os.X_OK):
                link.symlink_to(tool)
    (where / "python3").symlink_to(SYSTEM_PYTHON)
    return where


def stock_env(root: Path, cache_dir: str) -> dict[str, str]:
    """The environment of a user on that machine: fresh HOME, only `stock_bin` on PATH."""
    keep_uv = {"UV_CACHE_DIR", "UV_INDEX_URL", "UV_DEFAULT_INDEX", "UV_NATIVE_TLS"}
    env = {
        key: value
        for key, value in os.environ.items()
        if not (key.startswith("UV") and key not in keep_uv)
        and key not in {"VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "COOKIECUTTER_CONFIG",
                        "OPENAI_API_KEY", "REQUIRE_SYSTEM_PYTHON"}
    }  # fmt: skip
    home = root / "home"
    home.mkdir()
    env.update(
        PATH=str(stock_bin(root / "bin")),
        HOME=str(home),
        XDG_CACHE_HOME=str(home / ".cache"),
        # the uv packages cache is shared with the other tests (it only saves downloads);
        # uv's own binary is not: scripts/uv.py fetches it into the fresh HOME
        UV_CACHE_DIR=cache_dir,
        # the system's python3 must be the one used: uv may not fetch another
        UV_PYTHON_DOWNLOADS="never",
    )
    env.pop("XDG_RUNTIME_DIR", None)
    return env


@pytest.fixture
def stock_machine(baker: Baker, tmp_path: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    """(a copy of the template, the stock user's environment); short TMPDIR for PostgreSQL."""
    system_python_or_skip()
    template = tmp_path / "template"
    shutil.copytree(TEMPLATE, template, ignore=COPY_IGNORE)
    env = stock_env(tmp_path, baker.cache_dir)
    short_tmp = Path(tempfile.mkdtemp(dir=baker.short_tmp))
    env["TMPDIR"] = str(short_tmp)
    yield template, env


class Shell:
    """A shell command in its own process group; its output collected as it comes."""

    def __init__(self, command: str, cwd: Path, env: dict[str, str]) -> None:
        self.command = command
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            ["/bin/sh", "-c", command], cwd=cwd, env=env, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        )  # fmt: skip
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return f"$ {self.command}\n" + "".join(self.lines)

    def wait_for(self, pattern: re.Pattern[str], seconds: float) -> re.Match[str]:
        """The first output line matching `pattern`; fails with the output if none comes."""
        deadline = time.monotonic() + seconds
        seen = 0
        while time.monotonic() < deadline:
            for line in self.lines[seen:]:
                match = pattern.search(line)
                if match:
                    return match
            seen = len(self.lines)
            if self.proc.poll() is not None:
                self._reader.join(5)
                if not any(pattern.search(line) for line in self.lines[seen:]):
                    pytest.fail(f"exited {self.proc.returncode} first:\n{self.output}")
            time.sleep(0.2)
        pytest.fail(f"no line matching {pattern.pattern!r} in {seconds:.0f} s:\n{self.output}")

    def interrupt(self, seconds: float = 60) -> int:
        """Ctrl+C (SIGINT to the whole group), then wait; the exit code."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
        try:
            code = self.proc.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            code = self.proc.wait()
            pytest.fail(f"still running {seconds:.0f} s after Ctrl+C:\n{self.output}")
        self._reader.join(5)
        return code

    def finish(self, seconds: float) -> int:
        try:
            code = self.proc.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            pytest.fail(f"did not finish in {seconds:.0f} s:\n{self.output}")
        self._reader.join(5)
        return code


# ------------------------------------------------------------------------------ the commands


def test_quick_start_generates_and_serves_on_the_system_python(
    stock_machine: tuple[Path, dict[str, str]],
) -> None:
    """The README's first command, verbatim (plus `--port 0`: the default port 8000 may be
    taken on a shared machine): uv is fetched, the project generated with its tables, and
    the app answers /health until Ctrl+C, which leaves no PostgreSQL running."""
    template, env = stock_machine
    generate, _ = readme_commands()
    shell = Shell(generate + " --port 0", template, env)
    try:
        port = int(shell.wait_for(STARTED, QUICK_START_TIMEOUT).group(1))
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=10) as health:
            assert health.status == 200, shell.output
    finally:
        shell.interrupt()
    output = shell.output
    assert "scripts/uv.py: fetching uv" in output, output
    assert "tables created" in output, output
    assert not re.search(r"^(warning|error)\b", output, re.M | re.I), output
    project = template / "my_chatkit_app"
    assert (project / ".env").is_file() and (project / "uv.lock").is_file(), output
    assert postgres_processes_using(project) == [], "Ctrl+C stopped the development database"


def test_quick_start_test_command_runs_on_the_system_python(
    stock_machine: tuple[Path, dict[str, str]],
) -> None:
    """The README's test command, verbatim, with a selection appended (the whole suite is
    what `.ci/run` runs): uv builds the template's environment on the system python3."""
    template, env = stock_machine
    _, command = readme_commands()
    shell = Shell(command + " -n 0 -p no:cacheprovider tests/test_hooks.py -k to_bool", template,
                  env)  # fmt: skip
    code = shell.finish(QUICK_START_TIMEOUT)
    assert code == 0, shell.output
    assert re.search(r"\d+ passed", shell.output), shell.output
    system = subprocess.run(
        [str(SYSTEM_PYTHON), "-c", "import platform; print(platform.python_version())"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    venv = (template / ".venv" / "pyvenv.cfg").read_text()
    assert f"version_info = {system}\n" in venv, f"not the system's Python {system}: {venv}"
