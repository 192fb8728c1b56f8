"""scripts/uv.py: finds uv, or fetches the uv wheel for this platform from the package index,
checks its sha256 and runs the binary inside. Against a local index serving a stand-in wheel
(its "uv" is a shell script), so nothing here depends on PyPI."""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import io
import os
import subprocess
import sys
import threading
import types
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.bake import TEMPLATE

SCRIPT = TEMPLATE / "scripts" / "uv.py"
CANDIDATE_TAGS = (
    "manylinux_2_17_x86_64.manylinux2014_x86_64", "manylinux_2_28_aarch64",
    "musllinux_1_1_x86_64", "macosx_11_0_arm64", "macosx_10_12_x86_64", "win_amd64",
)  # fmt: skip


@pytest.fixture(scope="module")
def boot() -> types.ModuleType:
    spec = importlib.util.spec_from_file_location("uv_bootstrap", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def own_tag(boot: types.ModuleType) -> str:
    fitting = [tags for tags in CANDIDATE_TAGS if any(map(boot.tag_fits, tags.split(".")))]
    if not fitting:
        pytest.skip("no uv wheel tag in the list fits this platform")
    return fitting[0]


def fake_wheel(version: str, body: str) -> bytes:
    """A wheel whose uv binary is a shell script printing `fake uv VERSION ARGS`."""
    data = io.BytesIO()
    with zipfile.ZipFile(data, "w") as archive:
        archive.writestr(f"uv-{version}.dist-info/METADATA", "Name: uv\n")
        archive.writestr(f"uv-{version}.data/scripts/uv", body)
    return data.getvalue()


class Index:
    """A PEP 503 simple index on 127.0.0.1 serving /simple/uv/ and the wheels in `files`."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.page = ""
        self.requests: list[str] = []
        self.authorization: str | None = None  # required when set
        index = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                index.requests.append(self.path)
                if index.authorization and self.headers["Authorization"] != index.authorization:
                    self.send_error(401)
                    return
                if self.path == "/simple/uv/":
                    body, kind = index.page.encode(), "text/html"
                elif self.path.lstrip("/") in index.files:
                    body, kind = index.files[self.path.lstrip("/")], "application/octet-stream"
                else:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/simple/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def publish(self, links: list[tuple[str, bytes, str | None]]) -> None:
        """Wheels and the sha256 the page gives for each (None: the real one)."""
        anchors = []
        for name, content, sha256 in links:
            self.files[f"files/{name}"] = content
            digest = sha256 or hashlib.sha256(content).hexdigest()
            anchors.append(f'<a href="../../files/{name}#sha256={digest}">{name}</a>')
        self.page = "<html><body>\n" + "\n".join(anchors) + "\n</body></html>"


@pytest.fixture
def index() -> Iterator[Index]:
    served = Index()
    try:
        yield served
    finally:
        served.server.shutdown()
        served.server.server_close()


def run_script(home: Path, index_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """scripts/uv.py on this Python, with no uv on PATH and a given index."""
    empty = home / "empty-path"
    empty.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("UV", "PIP_", "XDG_"))}
    env.update(PATH=str(empty), HOME=str(home), PIP_INDEX_URL=index_url)
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], env=env, capture_output=True, text=True,
        timeout=60, check=False,
    )  # fmt: skip


@pytest.fixture(autouse=True)
def no_uv_module() -> None:
    if importlib.util.find_spec("uv") is not None:
        pytest.skip("this Python has the uv package; the script would use it")


def test_fetches_checks_caches_and_runs_the_newest_wheel(
    boot: types.ModuleType, index: Index, tmp_path: Path
) -> None:
    tag = own_tag(boot)
    script = '#!/bin/sh\necho "fake uv {version} $*"\n'
    index.publish([
        (f"uv-0.8.0-py3-none-{tag}.whl", fake_wheel("0.8.0", script.format(version="0.8.0")), None),
        (f"uv-0.9.1-py3-none-{tag}.whl", fake_wheel("0.9.1", script.format(version="0.9.1")), None),
        (f"uv-0.10.0a1-py3-none-{tag}.whl", fake_wheel("0.10.0a1", "prerelease"), None),
        ("uv-0.11.0-py3-none-someone_elses_platform.whl", b"not for us", None),
        ("uv-0.11.0.tar.gz", b"sources", None),
    ])  # fmt: skip
    first = run_script(tmp_path, index.url, "run", "pytest", "-q")
    assert first.returncode == 0, first.stderr
    assert first.stdout == "fake uv 0.9.1 run pytest -q\n"
    assert "fetching uv 0.9.1" in first.stderr
    cached = tmp_path / ".cache" / "chatkit-fastapi-template" / "uv" / "0.9.1" / "uv"
    assert cached.is_file() and os.access(cached, os.X_OK)
    downloads = [path for path in index.requests if path.startswith("/files/")]
    assert downloads == [f"/files/uv-0.9.1-py3-none-{tag}.whl"]

    again = run_script(tmp_path, index.url, "--version")
    assert again.stdout == "fake uv 0.9.1 --version\n" and again.stderr == ""
    assert len(index.requests) == 2, "the second run uses the cached binary"


def test_a_wheel_that_does_not_match_its_sha256_is_refused(
    boot: types.ModuleType, index: Index, tmp_path: Path
) -> None:
    tag = own_tag(boot)
    wheel = fake_wheel("0.9.1", "#!/bin/sh\necho tampered\n")
    index.publish([(f"uv-0.9.1-py3-none-{tag}.whl", wheel, "0" * 64)])
    done = run_script(tmp_path, index.url, "--version")
    assert done.returncode == 1
    assert "does not match the index's" in done.stderr and "tampered" not in done.stdout
    assert not (tmp_path / ".cache" / "chatkit-fastapi-template" / "uv" / "0.9.1").exists()


def test_an_unreachable_index_is_one_clear_line(tmp_path: Path) -> None:
    done = run_script(tmp_path, "http://127.0.0.1:9/simple/", "--version")
    assert done.returncode == 1
    (line,) = done.stderr.splitlines()
    assert line.startswith("error: could not reach http://127.0.0.1:9/simple/uv/"), line
    assert "PIP_INDEX_URL" in line


def test_uv_on_path_is_used_as_it_is(tmp_path: Path) -> None:
    found = tmp_path / "bin"
    found.mkdir()
    (found / "uv").write_text('#!/bin/sh\necho "path uv $*"\n')
    (found / "uv").chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("UV", "PIP_"))}
    env.update(PATH=str(found), HOME=str(tmp_path), PIP_INDEX_URL="http://127.0.0.1:9/simple/")
    done = subprocess.run([sys.executable, str(SCRIPT), "sync"], env=env, capture_output=True,
                          text=True, timeout=60, check=False)  # fmt: skip
    assert done.stdout == "path uv sync\n", done.stderr


@pytest.mark.parametrize(
    ("tag", "fits"),
    [("manylinux_2_17_x86_64", True), ("manylinux2014_x86_64", True), ("manylinux_9_99_x86_64",
      False), ("manylinux_2_17_s390x", False), ("win_amd64", False), ("macosx_11_0_arm64", False)],
)  # fmt: skip
def test_platform_tags_on_linux_x86_64(boot: types.ModuleType, tag: str, fits: bool) -> None:
    if not (sys.platform.startswith("linux") and os.uname().machine == "x86_64"):
        pytest.skip("these expectations are for glibc Linux on x86_64")
    if boot.glibc_version() is None:
        pytest.skip("not a glibc system")
    assert boot.tag_fits(tag) is fits


def test_index_credentials_are_sent_for_the_page_and_the_wheel(
    boot: types.ModuleType, index: Index, tmp_path: Path
) -> None:
    """A private index given as https://user:password@host/simple/ (PIP_INDEX_URL style)."""
    tag = own_tag(boot)
    index.authorization = "Basic " + base64.b64encode(b"me:p@ss").decode()
    index.publish([(f"uv-0.9.1-py3-none-{tag}.whl", fake_wheel("0.9.1", "#!/bin/sh\necho ok\n"),
                    None)])  # fmt: skip
    url = index.url.replace("http://", "http://me:p%40ss@")
    done = run_script(tmp_path, url, "--version")
    assert done.returncode == 0 and done.stdout == "ok\n", done.stderr
    assert "p%40ss" not in done.stderr and "p@ss" not in done.stderr
