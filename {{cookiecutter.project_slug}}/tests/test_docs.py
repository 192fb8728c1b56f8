"""The documentation keeps up: every setting in .env.example and in the README's table, README
requests that are valid, and the operating notes (no key, template updates, PgBouncer)."""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
from chatkit.types import ChatKitReq
from pydantic import TypeAdapter

import tests.support.app as support_app
from {{ cookiecutter.project_slug }}.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
SETTINGS = sorted(name.upper() for name in Settings.model_fields)
NOT_SETTINGS = frozenset(
    {
        # read by libraries, documented beside the settings
        "OTEL_SERVICE_NAME",
        "OTEL_EXPORTER_OTLP_HEADERS",
        "FORWARDED_ALLOW_IPS",
        "AWS_ACCESS_KEY_ID",  # the S3 client's (ATTACHMENT_STORAGE=s3://...)
        "AWS_SECRET_ACCESS_KEY",
    }
)


def env_example_variables() -> set[str]:
    """The variables .env.example sets or shows commented out (`# NAME=value`)."""
    text = (ROOT / ".env.example").read_text(encoding="utf-8")
    return set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=", text, re.MULTILINE))


def readme_section(title: str) -> str:
    text = README.read_text(encoding="utf-8")
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert match, f"README has no '## {title}' section"
    return match.group(1)


def readme_table_rows() -> list[str]:
    """The variables named in the first column of the README's configuration table, in
    order (a variable in two rows is there twice)."""
    found: list[str] = []
    for line in readme_section("Configuration").splitlines():
        if line.startswith("|"):
            first_cell = line.split("|")[1]
            found += re.findall(r"`([A-Z][A-Z0-9_]*)`", first_cell)
    return found


def readme_table_variables() -> set[str]:
    return set(readme_table_rows())


def test_env_example_lists_every_setting_once() -> None:
    """A setting added to Settings without a line in .env.example fails here."""
    text = (ROOT / ".env.example").read_text(encoding="utf-8")
    lines = re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=", text, re.MULTILINE)
    assert not {name for name in lines if lines.count(name) > 1}, "listed twice"
    missing = [name for name in SETTINGS if name not in env_example_variables()]
    assert not missing, f".env.example lacks {missing}"
    unknown = env_example_variables() - set(SETTINGS) - NOT_SETTINGS
    assert not unknown, f".env.example names what the app does not read: {sorted(unknown)}"


def test_readme_configuration_table_lists_every_setting() -> None:
    """A setting added to Settings without a row in the README's table fails here."""
    rows = readme_table_rows()
    assert not {name for name in rows if rows.count(name) > 1}, "in two rows"
    missing = [name for name in SETTINGS if name not in readme_table_variables()]
    assert not missing, f"the README's Configuration table lacks {missing}"
    unknown = readme_table_variables() - set(SETTINGS) - NOT_SETTINGS
    assert not unknown, f"the README's table names what the app does not read: {sorted(unknown)}"


def test_readme_curl_requests_are_valid_chatkit_requests() -> None:
    """Every `-d '{...}'` body in the README is a ChatKit request the server accepts; there
    are examples for creating a thread, listing threads and listing a thread's items."""
    bodies = re.findall(r"-d '(\{.*?\})'", README.read_text(encoding="utf-8"), re.S)
    adapter: TypeAdapter[ChatKitReq] = TypeAdapter(ChatKitReq)
    kinds = set()
    for body in bodies:
        request = adapter.validate_json(body.replace("'\"$THREAD\"'", "thr_example"))
        kinds.add(request.type)
    assert {"threads.create", "threads.list", "items.list"} <= kinds, kinds


def test_readme_shows_how_to_try_the_app_with_the_fake_model() -> None:
    """The README's fake-model command starts a model server at the OPENAI_BASE_URL it gives
    and says so in one line (with no key: see
    test_model_errors.test_a_local_server_needs_no_api_key)."""
    text = README.read_text(encoding="utf-8")
    command = re.search(r"uv\.py run python (tests/support/fake_openai\.py --port (\d+))", text)
    base_url = re.search(r"OPENAI_BASE_URL=(http://127\.0\.0\.1:(\d+)/v1)", text)
    assert command and base_url, "the README shows the fake model and its OPENAI_BASE_URL"
    assert command[2] == base_url[2], "the same port"
    # The README's port may be taken here: port 0, and the line says which port it got.
    script, _, _ = command[1].partition(" ")
    fake = subprocess.Popen(
        [sys.executable, str(ROOT / script), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert fake.stdout is not None
        ready = fake.stdout.readline()
        assert ready.startswith("fake model ready:"), ready + fake.communicate(timeout=10)[1]
        said = re.search(r"OPENAI_BASE_URL=http://127\.0\.0\.1:(\d+)/v1 ", ready)
        assert said and said[1] != "0", ready
        models = httpx.get(f"http://127.0.0.1:{said[1]}/v1/models", timeout=10)
        assert models.status_code == 200
    finally:
        fake.terminate()
        fake.wait(10)


def test_readme_says_what_cruft_diff_compares() -> None:
    section = readme_section("Template updates")
    assert "cruft diff" in section and ".cruft.json" in section
    assert "recorded commit" in section


def test_readme_warns_about_pgbouncer_login_retry() -> None:
    """PgBouncer's server_login_retry (15 s) outlasts a short PostgreSQL restart."""
    text = README.read_text(encoding="utf-8")
    assert re.search(r"server_login_retry = 1\b", text)
    assert "15 s" in text


def test_readme_tool_test_recipe_uses_what_the_tests_have() -> None:
    """The "Build on it" test recipe imports what exists and asks for a fixture the tests
    provide (the recipe itself was run against a real `lookup_order` tool)."""
    text = README.read_text(encoding="utf-8")
    recipe = re.search(r"```python\n# tests/agent/test_orders\.py\n(.*?)```", text, re.S)
    assert recipe, "the README shows how to test a new tool"
    namespace: dict[str, Any] = {}
    exec(compile(recipe[1], "README.md", "exec"), namespace)  # noqa: S102 (our own README)
    (test,) = [value for name, value in namespace.items() if name.startswith("test_")]
    assert list(inspect.signature(test).parameters) == ["client_for"]
    assert callable(getattr(support_app, "client_for", None))
    assert "@tool lookup_order" in recipe[1] and "Tool said: " in recipe[1]


def heading_anchors(text: str) -> set[str]:
    """The README's heading anchors as GitHub makes them: lower case, spaces to hyphens,
    punctuation other than hyphens and underscores dropped."""
    headings = re.findall(r"^#{2,4} (.+)$", text, re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def test_every_capability_row_is_yes_and_points_at_what_exists() -> None:
    """Rows 1-60 of the ChatKit capability table: each **yes**, each with at least one
    pointer, and every pointer exists here: a module (a path under the package) or a heading
    of this README (a recipe)."""
    text = README.read_text(encoding="utf-8")
    package = ROOT / "src" / Settings.__module__.split(".")[0]
    anchors = heading_anchors(text)
    rows = [
        [cell.strip() for cell in line.strip().strip("|").split("|")]
        for line in readme_section("ChatKit capabilities").splitlines()
        if re.match(r"\| \d+ \|", line)
    ]
    assert [int(row[0]) for row in rows] == list(range(1, 61))
    for number, _capability, _documented, status, where in rows:
        assert status.startswith("yes"), f"row {number}: {status}"
        paths = [p for p in re.findall(r"`([^`]+)`", where) if re.search(r"/|\.\w+$", p)]
        links = re.findall(r"\]\(#([^)]+)\)", where)
        assert paths or links, f"row {number} points nowhere"
        for path in paths:
            assert (package / path).exists(), f"row {number}: no {path}"
        for anchor in links:
            assert anchor in anchors, f"row {number}: no heading #{anchor}"
