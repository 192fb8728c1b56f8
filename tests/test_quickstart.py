"""The README's quick start, as written in README.md, on the distribution's own python3.

A stock Debian or Ubuntu has `python3` only (no `python`), refuses `python3 -m pip install`
(PEP 668) and may lack pip and venv. The commands are read from README.md (so they cannot
drift) and run with `/usr/bin/python3` as the only Python on PATH, in a copy of the template,
with a fresh HOME (so `scripts/uv.py` downloads and checks uv itself). They skip where there
is no `/usr/bin/python3`, unless REQUIRE_SYSTEM_PYTHON=1 (`.ci/run` and the template's CI).
"""

from __future__ import annotations

import ast
import os
import re
import signal
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.bake import (
    BAKE_TIMEOUT,
    DEFAULT_SLUG,
    TEMPLATE,
    Baker,
    copy_template,
    postgres_processes_using,
    template_files,
)

SYSTEM_PYTHON = Path("/usr/bin/python3")
REQUIRED = os.environ.get("REQUIRE_SYSTEM_PYTHON") == "1"
# What a stock machine does not have: another Python, pip, uv, cookiecutter.
NOT_STOCK = re.compile(r"(python|pip|uv|uvx|cookiecutter|cruft)([-.0-9].*)?")
UV_BY_NAME = frozenset({"uv", "uvx"})
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
        assert re.match(r"python3 scripts/uv\.py ", command), command
        assert not re.search(r"(^|\s)python(\s|$)|\bpip\b", command), command
    generate, _ = readme_commands()
    assert generate.endswith(" serve"), "the quick start ends by starting the app"
    in_project = generate.split(f" && cd {DEFAULT_SLUG} && ", 1)[1]
    assert in_project.startswith("python3 scripts/uv.py run "), "the project's own bootstrap"


def test_readme_says_what_to_do_when_the_project_folder_exists() -> None:
    """Running the quick start again stops at cookiecutter's "already exists": the README
    names that message and both ways on."""
    text = (TEMPLATE / "README.md").read_text("utf-8")
    section = " ".join(text.split("\n## Quick start", 1)[1].split("\n## ", 1)[0].split())
    assert f'"{DEFAULT_SLUG}" directory already exists' in section
    assert f"cd {DEFAULT_SLUG} && python3 scripts/uv.py run {DEFAULT_SLUG} serve" in section
    assert "`-f` (`--overwrite-if-exists`)" in section and "`.env`" in section


def test_ci_runs_the_readme_test_command() -> None:
    """`.ci/run` and the template's GitHub workflow run the README's test command as written,
    after its quick start in the same clone (issue 27: that order once failed, and only it)."""
    _, command = readme_commands()
    ci_lines = (TEMPLATE / ".ci" / "run").read_text("utf-8").splitlines()
    assert command in ci_lines
    workflow = (TEMPLATE / ".github" / "workflows" / "ci.yml").read_text("utf-8")
    assert f"run: {command}\n" in workflow
    assert "/usr/bin/python3 scripts/uv.py run pytest -n 0 tests/test_quickstart.py" in workflow
    # in the README's order: the quick start in the same clone first (.ci/quick_start.py)
    quick_start = "python3 .ci/quick_start.py"
    assert ci_lines.index(quick_start) < ci_lines.index(command)
    assert workflow.index(f"run: {quick_start}\n") < workflow.index(f"run: {command}\n")


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
    template = copy_template(tmp_path / "template")
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


def generated_readme_commands(project: Path) -> tuple[list[str], str]:
    """(the "Run it locally" commands, the test command) from the generated README, comments
    stripped."""
    text = (project / "README.md").read_text("utf-8")

    def first_block(title: str) -> list[str]:
        section = text.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]
        block = re.search(r"```bash\n(.*?)```", section, re.S)
        assert block, f"no bash block under {title!r}"
        return [re.sub(r"\s+#.*$", "", line) for line in block[1].strip().splitlines()]

    return first_block("Run it locally"), first_block("Tests")[0]


def make_git_clone(template: Path, env: dict[str, str]) -> None:
    """Commit the copy, so it is a clone as the README's reader has one."""
    git = dict(env, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.invalid",
               GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@example.invalid")  # fmt: skip
    for command in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "t"]):
        subprocess.run(command, cwd=template, env=git, check=True, capture_output=True)


def serve_and_check_health(command: str, cwd: Path, env: dict[str, str]) -> str:
    """Run a `... serve` command on `--port 0` (8000 may be taken on a shared machine) until
    /health answers 200, then Ctrl+C; its output."""
    shell = Shell(command + " --port 0", cwd, env)
    try:
        port = int(shell.wait_for(STARTED, QUICK_START_TIMEOUT).group(1))
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=10) as health:
                status, body = health.status, health.read()
        except urllib.error.HTTPError as exc:
            status, body = exc.code, exc.read()
    finally:
        shell.interrupt()
    assert status == 200, f"/health answered {status} {body!r}:\n{shell.output}{postgres_logs(cwd)}"
    return shell.output


def postgres_logs(under: Path) -> str:
    """The last lines of every development PostgreSQL's log under `under` (on failure)."""
    found = ""
    for log in sorted(under.glob("**/.postgres/log")):
        lines = log.read_text(errors="replace").splitlines()[-15:]
        found += f"\n--- {log}\n" + "\n".join(lines)
    return found


def run_to_the_end(command: str, cwd: Path, env: dict[str, str]) -> str:
    shell = Shell(command, cwd, env)
    code = shell.finish(QUICK_START_TIMEOUT)
    assert code == 0, shell.output
    return shell.output


def test_quick_start_then_the_test_command_in_one_clone_without_uv(
    stock_machine: tuple[Path, dict[str, str]],
) -> None:
    """The README's two commands, as written, in order, in one clone (a git clone), on the
    system's python3 with no uv on PATH; between them the generated README's commands in
    the new project, as written there.

    1. Generate and serve: uv is fetched, the project generated with its tables, and the
       app answers /health until Ctrl+C, which leaves no PostgreSQL running.
    2. The generated README: `sync`, `db upgrade`, `serve` and its test command (a few
       tests) through the project's own `scripts/uv.py`, which fetches nothing again.
    3. The template's test command with `my_chatkit_app/` now in the clone, limited to the
       tests that fail when it is there (copying the clone, generating in the copy) or
       when there is no uv on PATH (a test running `uv` by name).
    """
    template, env = stock_machine
    make_git_clone(template, env)
    generate, test_command = readme_commands()
    output = serve_and_check_health(generate, template, env)
    assert "scripts/uv.py: fetching uv" in output, output
    assert "tables created" in output, output
    assert not re.search(r"^(warning|error)\b", output, re.M | re.I), output
    project = template / DEFAULT_SLUG
    assert (project / ".env").is_file() and (project / "uv.lock").is_file(), output
    assert postgres_processes_using(project) == [], "Ctrl+C stopped the development database"
    bootstrap = (project / "scripts" / "uv.py").read_bytes()
    assert bootstrap == (template / "scripts" / "uv.py").read_bytes()

    run_locally, project_tests = generated_readme_commands(project)
    *setup, serve = run_locally
    words = [line.split()[:3] for line in run_locally]
    assert words == [["python3", "scripts/uv.py", w] for w in ("sync", "run", "run")], words
    outputs = [run_to_the_end(command, project, env) for command in setup]
    assert "schema up to date" in outputs[-1], outputs[-1]
    outputs.append(serve_and_check_health(serve, project, env))
    assert project_tests == "python3 scripts/uv.py run pytest -n auto", project_tests
    selection = " -p no:cacheprovider tests/test_settings_cli.py -k secret"
    outputs.append(run_to_the_end(project_tests + selection, project, env))
    assert re.search(r"\d+ passed", outputs[-1]), outputs[-1]
    assert not any("fetching uv" in text for text in outputs), "the project used the cached uv"
    assert postgres_processes_using(project) == []

    inner = " -p no:cacheprovider tests/test_quickstart.py -k 'uv_by_name or copy_of_this'"
    output = run_to_the_end(test_command + inner, template, env)
    assert re.search(r"\b3 passed", output), output
    system = subprocess.run(
        [str(SYSTEM_PYTHON), "-c", "import platform; print(platform.python_version())"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    venv = (template / ".venv" / "pyvenv.cfg").read_text()
    assert f"version_info = {system}\n" in venv, f"not the system's Python {system}: {venv}"


# ------------------------------------------------------------------------------ what a clone holds


def test_no_test_runs_uv_by_name() -> None:
    """With no uv on PATH (scripts/uv.py fetched one), `uv` from PATH is not there: tests run
    `uv_binary()` (the uv running them), a bootstrap, or `run_in(project, "uv", ...)`, which
    maps to it; never a command list starting with "uv" or "uvx"."""
    offenders = []
    for path in sorted((TEMPLATE / "tests").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if isinstance(node, ast.List | ast.Tuple) and node.elts:
                first = node.elts[0]
                if isinstance(first, ast.Constant) and first.value in UV_BY_NAME:
                    offenders.append(f"tests/{path.name}:{node.lineno}")
    assert offenders == []


def test_a_copy_of_this_clone_without_git_holds_the_same_files(tmp_path: Path) -> None:
    """`copy_template` takes what git tracks (and new files it does not ignore); a copy has no
    .git, and its own copy, by the folder rules, holds the same files."""
    copy = copy_template(tmp_path / "copy")
    assert not (copy / ".git").exists() and not (copy / DEFAULT_SLUG).exists()
    assert template_files(copy) == template_files()
    assert "scripts/uv.py" in template_files(copy)


def test_generate_in_a_copy_of_this_clone(baker: Baker, tmp_path: Path) -> None:
    """The README's quick start generates `my_chatkit_app/` inside the clone; tests that copy
    the clone leave it out, so cookiecutter generates there again, as the README does
    (`cookiecutter . --no-input` in the clone), instead of stopping at "directory already
    exists". The project carries the template's `scripts/uv.py`, byte for byte."""
    clone = copy_template(tmp_path / "clone")
    (tmp_path / "home").mkdir()
    env = baker.environment(tmp_path, Path(tempfile.mkdtemp(dir=baker.short_tmp)), None, None)
    done = subprocess.run(
        [str(baker.bin_dir / "cookiecutter"), ".", "--no-input", "create_tables=no"],
        cwd=clone, env=env, capture_output=True, text=True, timeout=BAKE_TIMEOUT, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    bootstrap = (clone / DEFAULT_SLUG / "scripts" / "uv.py").read_bytes()
    assert bootstrap == (TEMPLATE / "scripts" / "uv.py").read_bytes()


def test_the_project_bootstrap_is_the_template_bootstrap() -> None:
    """One stdlib uv bootstrap: the generated project's copy is this one (no Jinja in it)."""
    project_copy = TEMPLATE / "{{cookiecutter.project_slug}}" / "scripts" / "uv.py"
    assert project_copy.read_bytes() == (TEMPLATE / "scripts" / "uv.py").read_bytes()
