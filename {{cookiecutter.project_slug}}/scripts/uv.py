#!/usr/bin/env python3
"""Run uv with the given arguments, fetching uv first when this machine has none.

    python3 scripts/uv.py tool run cookiecutter . --no-input
    python3 scripts/uv.py run pytest

Standard library only; runs on any Python 3.8+: a stock Debian or Ubuntu `python3` (where
`pip install` is refused as "externally managed" and pip or venv may be missing), python.org
Python on macOS, or Windows. It uses the first uv it finds:

1. `uv` on PATH;
2. the `uv` package, if this Python has it (`pip install uv`);
3. a copy this script fetched before, in the user cache folder (`~/.cache/chatkit-fastapi-
   template/uv` on Linux, `~/Library/Caches/...` on macOS, `%LOCALAPPDATA%\\...` on Windows);
4. else it downloads the uv wheel for this platform from the package index (PyPI, or
   `UV_DEFAULT_INDEX` / `UV_INDEX_URL` / `PIP_INDEX_URL` when set), checks its sha256 against
   the one the index publishes, and unpacks the uv binary into that cache folder.

Nothing is installed into Python or system-wide. Delete the cache folder to get a newer uv.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import urllib.request
import zipfile
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit, urlunsplit

DEFAULT_INDEX = "https://pypi.org/simple/"
INDEX_VARIABLES = ("UV_DEFAULT_INDEX", "UV_INDEX_URL", "PIP_INDEX_URL")
CACHE_NAME = "chatkit-fastapi-template"
TIMEOUT = 60
WINDOWS = sys.platform == "win32"
EXE = "uv.exe" if WINDOWS else "uv"
WHEEL = re.compile(r"uv-(?P<version>[^-]+)-[^-]+-[^-]+-(?P<platforms>[^-]+)\.whl")
STABLE = re.compile(r"\d+(\.\d+)*")
# Older manylinux names and the glibc they stand for.
LEGACY_MANYLINUX = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}


class BootstrapError(Exception):
    """Why no uv could be found or fetched; one line for the user."""


# ------------------------------------------------------------------------------ finding uv


def installed_uv() -> str | None:
    """uv on PATH, or the one the `uv` package of this Python carries."""
    found = shutil.which("uv")
    if found:
        return found
    try:
        from uv import find_uv_bin  # type: ignore[import-not-found]

        return str(find_uv_bin())
    except Exception:  # not installed, or its binary is missing
        return None


def cache_dir() -> Path:
    """Where fetched uv binaries are kept (the platform's user cache folder)."""
    if WINDOWS:
        base = os.environ.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = str(Path.home() / "Library" / "Caches")
    else:
        base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / CACHE_NAME / "uv"


def version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def cached_uv(cache: Path) -> str | None:
    """The newest uv this script fetched before, if any."""
    if not cache.is_dir():
        return None
    versions = [p for p in cache.iterdir() if STABLE.fullmatch(p.name) and (p / EXE).is_file()]
    if not versions:
        return None
    return str(max(versions, key=lambda p: version_key(p.name)) / EXE)


# ------------------------------------------------------------------------------ platform


def glibc_version() -> tuple[int, int] | None:
    """The C library's glibc version, or None (musl, or not Linux)."""
    try:
        name, version = os.confstr("CS_GNU_LIBC_VERSION").split()  # type: ignore[union-attr]
        if name == "glibc":
            major, minor = version.split(".")[:2]
            return int(major), int(minor)
    except (AttributeError, OSError, ValueError):
        pass
    return None


def tag_fits(tag: str) -> bool:
    """Whether a wheel's platform tag runs on this machine."""
    own = sysconfig.get_platform().replace("-", "_").replace(".", "_")
    if WINDOWS:
        return tag == own
    machine = platform.machine().lower()
    if sys.platform == "darwin":
        match = re.fullmatch(r"macosx_(\d+)_(\d+)_(\w+)", tag)
        if not match or match.group(3) not in {machine, "universal2"}:
            return False
        release = [int(part) for part in (platform.mac_ver()[0] or "10.0").split(".")[:2]]
        return (int(match.group(1)), int(match.group(2))) <= tuple([*release, 0])[:2]
    if not sys.platform.startswith("linux"):
        return False
    if machine in {"amd64", "x64"}:
        machine = "x86_64"
    if machine == "arm64":
        machine = "aarch64"
    glibc = glibc_version()
    legacy = re.fullmatch(r"(manylinux\d+)_(\w+)", tag)
    if legacy and legacy.group(1) in LEGACY_MANYLINUX:
        return (
            glibc is not None
            and legacy.group(2) == machine
            and (LEGACY_MANYLINUX[legacy.group(1)] <= glibc)
        )
    match = re.fullmatch(r"(manylinux|musllinux)_(\d+)_(\d+)_(\w+)", tag)
    if match:
        if match.group(4) != machine:
            return False
        wanted = (int(match.group(2)), int(match.group(3)))
        if match.group(1) == "manylinux":
            return glibc is not None and wanted <= glibc
        return glibc is None  # musl: uv's musllinux wheels need musl 1.1+
    return tag == f"linux_{machine}"


# ------------------------------------------------------------------------------ the index


def index_url() -> str:
    for name in INDEX_VARIABLES:
        value = os.environ.get(name, "").strip()
        if value:
            return value.rstrip("/") + "/"
    return DEFAULT_INDEX


def without_credentials(url: str) -> str:
    """`url` without a user name or password (to show it, or to open it)."""
    return urlunsplit(urlsplit(url)._replace(netloc=urlsplit(url).netloc.rpartition("@")[2]))


def same_credentials(url: str, index: str) -> str:
    """`url` with the index's user name and password when it is on the index's host."""
    parts, login = urlsplit(url), urlsplit(index)
    if (
        login.username is None
        or parts.username is not None
        or parts.netloc != (login.netloc.rpartition("@")[2])
    ):
        return url
    return urlunsplit(parts._replace(netloc=login.netloc))


def open_url(url: str, accept: str = "*/*") -> tuple[bytes, str, str]:
    """GET `url` (credentials in it become a basic-auth header); body, final URL, type."""
    parts = urlsplit(url)
    headers = {"Accept": accept, "User-Agent": "chatkit-fastapi-template scripts/uv.py"}
    if parts.username is not None:
        login = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        headers["Authorization"] = "Basic " + base64.b64encode(login.encode()).decode()
        url = without_credentials(url)
    if parts.scheme not in {"https", "http", "file"}:
        raise BootstrapError(f"unsupported index URL {url!r}")
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 (scheme checked above)
    with urllib.request.urlopen(request, timeout=TIMEOUT) as response:  # noqa: S310
        return response.read(), response.geturl(), response.headers.get("Content-Type", "")


class _Links(HTMLParser):
    """The <a href> links of a PEP 503 simple page, with their data-yanked marks."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[tuple[str, bool]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            values = dict(attrs)
            if values.get("href"):
                self.links.append((str(values["href"]), "data-yanked" in values))


def index_files(page: bytes, page_url: str, content_type: str) -> list[dict[str, str]]:
    """Every non-yanked uv file the index lists: filename, url and sha256 (when given)."""
    files = []
    if "json" in content_type:
        for entry in json.loads(page.decode("utf-8"))["files"]:
            if not entry.get("yanked"):
                files.append({"filename": entry["filename"],
                              "url": urljoin(page_url, entry["url"]),
                              "sha256": entry.get("hashes", {}).get("sha256", "")})  # fmt: skip
        return files
    parser = _Links()
    parser.feed(page.decode("utf-8", "replace"))
    for href, yanked in parser.links:
        if yanked:
            continue
        url = urljoin(page_url, href)
        base, _, fragment = url.partition("#")
        sha256 = fragment[len("sha256=") :] if fragment.startswith("sha256=") else ""
        files.append({"filename": unquote(base.rsplit("/", 1)[-1]), "url": base, "sha256": sha256})
    return files


def pick_wheel(files: list[dict[str, str]]) -> tuple[str, dict[str, str]] | None:
    """The newest stable uv wheel for this platform: (version, file)."""
    best: tuple[tuple[int, ...], str, dict[str, str]] | None = None
    for entry in files:
        match = WHEEL.fullmatch(entry["filename"])
        if not match or not STABLE.fullmatch(match.group("version")):
            continue
        if not any(tag_fits(tag) for tag in match.group("platforms").split(".")):
            continue
        key = version_key(match.group("version"))
        if best is None or key > best[0]:
            best = (key, match.group("version"), entry)
    return (best[1], best[2]) if best else None


def fetch_uv(cache: Path) -> str:
    """Download, check and unpack the uv binary for this platform; its path."""
    page_url = urljoin(index_url(), "uv/")
    shown = without_credentials(page_url)
    try:
        page, final_url, content_type = open_url(
            page_url, "application/vnd.pypi.simple.v1+json, text/html;q=0.1"
        )
        picked = pick_wheel(index_files(page, final_url, content_type))
        if picked is None:
            raise BootstrapError(f"{shown} has no uv wheel for {sysconfig.get_platform()}")
        version, entry = picked
        if not re.fullmatch(r"[0-9a-f]{64}", entry["sha256"]):
            raise BootstrapError(f"{shown} gives no sha256 for {entry['filename']}")
        print(f"scripts/uv.py: fetching uv {version} from {shown} (once; kept in {cache})",
              file=sys.stderr, flush=True)  # fmt: skip
        wheel, _, _ = open_url(same_credentials(entry["url"], page_url))
    except OSError as exc:  # URLError, timeouts, connection resets
        reason = getattr(exc, "reason", None) or exc
        raise BootstrapError(f"could not reach {shown}: {reason}") from exc
    digest = hashlib.sha256(wheel).hexdigest()
    if digest != entry["sha256"]:
        raise BootstrapError(
            f"{entry['filename']}: sha256 {digest} does not match the index's {entry['sha256']}"
        )
    with zipfile.ZipFile(io.BytesIO(wheel)) as archive:
        names = [n for n in archive.namelist() if re.fullmatch(rf"uv-[^/]+\.data/scripts/{EXE}", n)]
        if not names:
            raise BootstrapError(f"{entry['filename']} holds no {EXE}")
        binary = archive.read(names[0])
    target = cache / version
    target.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target, prefix=".uv-")
    with os.fdopen(fd, "wb") as out:
        out.write(binary)
    os.chmod(tmp, 0o755)  # noqa: S103 (an executable for this user and others to run)
    os.replace(tmp, target / EXE)
    return str(target / EXE)


def find_or_fetch_uv() -> str:
    cache = cache_dir()
    return installed_uv() or cached_uv(cache) or fetch_uv(cache)


def main(args: list[str]) -> int:
    try:
        uv = find_or_fetch_uv()
    except BootstrapError as exc:
        print(f"error: {exc}. Install uv (https://docs.astral.sh/uv/) or set PIP_INDEX_URL "
              "to an index you can reach, then try again.", file=sys.stderr)  # fmt: skip
        return 1
    sys.stdout.flush()
    if WINDOWS:  # exec on Windows returns to the shell at once; wait for uv instead
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C goes to uv, which stops
        return subprocess.call([uv, *args])
    os.execv(uv, [uv, *args])  # noqa: S606 (uv, found or checked above, with the user's args)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
