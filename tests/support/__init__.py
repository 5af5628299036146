"""What the tests share to run the real server: each module builds one piece, typed, from the
composition root (`safebrowse.server`), so a test runs what `safebrowse serve` runs.

- `waiting`: `wait_for`, polling a condition the engine reaches on its own threads.
- `engine`: `EngineHarness`, a started EpisodeManager on a background loop, driven synchronously,
  with a test's own workers, tasks, registry, oracle and engine settings.
- `pages`: the static pages of `tests/pages/` as tasks (`page_task`).
- `listener`: an ASGI app served by uvicorn on a free loopback port of a background loop.
- `live`: `LiveServer`, the whole server (both doors) on free loopback ports.
- `control`: `Control`, the trainer's HTTP client, and `PrivateControlServer`, an engine behind
  the control API alone, for tests that need an engine configuration of their own.
- `door`: `Door`, a second agent door with its own limits over a running engine.
- `agent`: the scripted MCP `Agent` (a real `mcp` SDK client), `play`, and raw JSON-RPC pieces.
"""
