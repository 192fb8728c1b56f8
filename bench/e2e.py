"""End-to-end benchmark: bake a fresh project, then measure it against the guide's baseline.

    uv run python bench/e2e.py [--quick] [--json bench-results/e2e.json] [--check]

Bakes the template with the real cookiecutter CLI into a temporary folder, runs `uv sync`
there, and hands over to bench/driver/ inside the baked project's virtualenv (which has
the app, the openai SDK, httpx and psutil). Every other option is passed to the driver;
`--project DIR` skips baking and uses an already baked (and synced) project.
Standard library only, so any Python 3.11+ can start it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
TEMPLATE = BENCH_DIR.parent
# The uv running this script (`uv run` exports it; scripts/uv.py may have fetched it): the
# machine may have no uv on PATH.
UV = os.environ.get("UV") or shutil.which("uv") or "uv"


def bake(out: Path) -> Path:
    """Generate a project with the template's defaults (no tables: the driver makes its own)."""
    cookiecutter = [UV, "tool", "run", "cookiecutter"]
    subprocess.run(
        [*cookiecutter, str(TEMPLATE), "--no-input", "-o", str(out), "create_tables=false"],
        check=True,
        timeout=600,
        env={k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"},
    )
    (project,) = [p for p in out.iterdir() if (p / "pyproject.toml").is_file()]
    print(f"baked {project}", file=sys.stderr)
    subprocess.run(
        [UV, "sync", "--quiet"],
        cwd=project,
        check=True,
        timeout=900,
        env={k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"},
    )
    return project


DRIVER_OPTIONS = """
options passed to bench/driver/:
  --quick               a ~1 minute smoke run (shorter phases, fewer turns)
  --json PATH           also write every figure as JSON
  --check               exit 1 when a target is missed
  --database-url URL    use this PostgreSQL (default: a throwaway embedded one)
  --no-baseline         measure the generated app only
  --titles on|off       GENERATE_TITLES for the app (default on, as shipped)
  --only PHASES         overhead,tool,ttft,throughput,long,scale (default: all)
  --profile FILE        also run py-spy on the app under load (.svg, or .txt stacks)
  --db-transport tcp|socket, --think S, --seconds S, --levels 1,8,32,128,
  --ttft-concurrency N, --ttft-first S, --ttft-tokens N, --ttft-delay S,
  --load-tokens N       load shape (see bench/README.md)
"""


def main() -> int:
    """Bake (unless --project), then run the driver in the project's virtualenv."""
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog=DRIVER_OPTIONS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--project", type=Path, help="an already baked and synced project")
    parser.add_argument("--keep", action="store_true", help="keep the baked project")
    args, rest = parser.parse_known_args()
    tmp: Path | None = None
    project = args.project
    if project is None:
        tmp = Path(tempfile.mkdtemp(prefix="chatkit-bench-"))
        project = bake(tmp)
    python = project.resolve() / ".venv" / "bin" / "python"
    argv = [str(python), str(BENCH_DIR / "driver"), "--project", str(project), *rest]
    try:
        return subprocess.run(argv, check=False).returncode
    finally:
        if tmp is not None and not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp is not None:
            print(f"kept {tmp}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
