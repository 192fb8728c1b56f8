"""Baking the template with the real cookiecutter CLI, from a venv that has only cookiecutter."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path

TEMPLATE = Path(__file__).resolve().parents[1]
DEFAULT_SLUG = "my_chatkit_app"
BAKE_TIMEOUT = 600
UNRENDERED = re.compile(
    r"\{\{-?\s*cookiecutter|\{%-?\s*(?:raw|endraw|if|elif|else|endif|for|endfor|set)\b"
)


def uv_binary() -> str:
    """The uv executable (`uv run` exports its own path as UV)."""
    found = os.environ.get("UV") or shutil.which("uv")
    if not found:
        raise RuntimeError("uv is needed for the template tests: python -m pip install uv")
    return found


def uv_cache_dir() -> str:
    """The uv cache to share with every bake (tests give cookiecutter a temporary HOME)."""
    if os.environ.get("UV_CACHE_DIR"):
        return os.environ["UV_CACHE_DIR"]
    done = subprocess.run([uv_binary(), "cache", "dir"], capture_output=True, text=True, check=True)
    return done.stdout.strip()


def make_cookiecutter_venv(where: Path) -> Path:
    """A venv with only cookiecutter (the version the template's lock pins); its bin dir."""
    uv = uv_binary()
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never"}
    env.pop("VIRTUAL_ENV", None)
    subprocess.run(
        [uv, "venv", "--quiet", "--python", sys.executable, str(where)], check=True, env=env
    )
    python = where / "bin" / "python"
    subprocess.run(
        [uv, "pip", "install", "--quiet", "--python", str(python),
         f"cookiecutter=={version('cookiecutter')}"],
        check=True,
        env=env,
    )  # fmt: skip
    return where / "bin"


@dataclass
class Baked:
    """One run of cookiecutter and where everything went."""

    result: subprocess.CompletedProcess[str]
    root: Path
    tmpdir: Path
    slug: str = DEFAULT_SLUG
    answers: dict[str, str] = field(default_factory=dict)

    @property
    def out(self) -> Path:
        return self.root / "out"

    @property
    def project(self) -> Path:
        return self.out / self.slug

    @property
    def home(self) -> Path:
        return self.root / "home"

    @property
    def replay_dir(self) -> Path:
        return self.root / "replay"

    @property
    def output(self) -> str:
        return self.result.stdout + self.result.stderr

    def env_file(self) -> dict[str, str]:
        """The generated `.env` as a dict (simple KEY=value lines)."""
        lines = (self.project / ".env").read_text("utf-8").splitlines()
        pairs = (line.split("=", 1) for line in lines if line and not line.startswith("#"))
        return {key: value for key, value in pairs}

    def cruft(self) -> dict:
        return json.loads((self.project / ".cruft.json").read_text("utf-8"))


@dataclass
class Baker:
    """Runs `cookiecutter TEMPLATE --no-input key=value ...` in an isolated home."""

    bin_dir: Path
    cache_dir: str
    short_tmp: Path
    """A short temp root: embedded PostgreSQL's socket path must stay under ~100 bytes."""

    def environment(self, root: Path, tmpdir: Path, extra: dict[str, str] | None,
                    path: str | None) -> dict:  # fmt: skip
        env = {
            key: value
            for key, value in os.environ.items()
            if key not in {"VIRTUAL_ENV", "OPENAI_API_KEY", "COOKIECUTTER_CONFIG", "PYTHONPATH"}
        }
        env.update(
            HOME=str(root / "home"),
            TMPDIR=str(tmpdir),
            UV_CACHE_DIR=self.cache_dir,
            UV_PYTHON_DOWNLOADS="never",
            PATH=path
            if path is not None
            else os.pathsep.join([str(self.bin_dir), str(Path(uv_binary()).parent), env["PATH"]]),
        )
        if path is not None:
            env.pop("UV", None)
        env.update(extra or {})
        return env

    def config_file(self, root: Path, extra: str = "") -> Path:
        config = root / "cookiecutter-config.yaml"
        config.write_text(
            f"replay_dir: {json.dumps(str(root / 'replay'))}\n"
            f"cookiecutters_dir: {json.dumps(str(root / 'cookiecutters'))}\n" + extra
        )
        return config

    def __call__(
        self,
        root: Path,
        *answers: str,
        slug: str = DEFAULT_SLUG,
        options: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
        path: str | None = None,
        use_config_file: bool = True,
        config: str = "",
        template: Path | str = TEMPLATE,
    ) -> Baked:
        for sub in ("home", "out"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        tmpdir = Path(tempfile.mkdtemp(dir=self.short_tmp))
        command = [str(self.bin_dir / "cookiecutter"), str(template), "--no-input"]
        command += ["-o", str(root / "out"), *options]
        if use_config_file:
            command += ["--config-file", str(self.config_file(root, config))]
        command += list(answers)
        result = subprocess.run(
            command,
            capture_output=True,
            text=True,
            env=self.environment(root, tmpdir, env, path),
            cwd=root,
            stdin=subprocess.DEVNULL,
            timeout=BAKE_TIMEOUT,
            check=False,
        )
        parsed = dict(answer.split("=", 1) for answer in answers)
        return Baked(result=result, root=root, tmpdir=tmpdir, slug=slug, answers=parsed)


# What a clone holds besides the template (the same as .gitignore): environments, caches, and
# projects generated inside it, as the README's quick start does.
NOT_TEMPLATE = (".git", ".venv", "build", "bench-results", "__pycache__", ".mypy_cache",
                ".ruff_cache", ".pytest_cache", DEFAULT_SLUG)  # fmt: skip


def template_files(template: Path = TEMPLATE) -> list[str]:
    """The template's files, relative: what git tracks plus new files it does not ignore (so
    a project generated in the clone, `.venv` and caches stay out); without git, every file
    outside NOT_TEMPLATE."""
    if shutil.which("git") and (template / ".git").exists():
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=template, capture_output=True, text=True, check=True,
        ).stdout.split("\0")  # fmt: skip
        return sorted(name for name in listed if name and (template / name).is_file())
    found = []
    for dirpath, dirnames, filenames in os.walk(template):
        dirnames[:] = [name for name in dirnames if name not in NOT_TEMPLATE]
        found += [str((Path(dirpath) / name).relative_to(template)) for name in filenames]
    return sorted(name for name in found if not name.endswith((".pyc", ".pyo")))


def copy_template(target: Path, template: Path = TEMPLATE) -> Path:
    """A copy of the template (`template_files`) at `target`, as a fresh clone would be."""
    for name in template_files(template):
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(template / name, target / name)
    return target


def files_under(directory: Path, skip: tuple[str, ...] = (".venv", ".postgres")) -> list[Path]:
    """Every file below `directory` except the project's environment and database."""
    found = []
    for dirpath, dirnames, filenames in os.walk(directory):
        dirnames[:] = [name for name in dirnames if name not in skip]
        found.extend(Path(dirpath) / name for name in filenames)
    return found


def run_in(project: Path, *command: str, timeout: int = 600, env: dict | None = None):
    """Run a command in a baked project with a clean environment for uv."""
    full_env = {k: v for k, v in os.environ.items() if k not in {"VIRTUAL_ENV", "PYTHONPATH"}}
    full_env.update(UV_PYTHON_DOWNLOADS="never", **(env or {}))
    argv = [uv_binary() if command[0] == "uv" else command[0], *command[1:]]
    return subprocess.run(
        argv,
        cwd=project,
        capture_output=True,
        text=True,
        env=full_env,
        stdin=subprocess.DEVNULL,
        timeout=timeout,
        check=False,
    )


def postgres_processes_using(directory: Path) -> list[str]:
    """Command lines of running postgres servers whose data lives under `directory`."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if "postgres" in cmdline and str(directory) in cmdline:
            found.append(cmdline)
    return found
