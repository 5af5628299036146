"""The agent door: MCP tools over streamable HTTP (`http`) or stdio (`stdio`).

Every tool is in `tools`. The door acts on an episode only through
`engine.agent_view.AgentPort` and imports nothing else of the engine: no
reward rubric, step records, episode internals, manager, oracle back-ends,
control API, tasks or the `safebrowse` composition root (a test checks this in a
fresh interpreter). Whoever composes the server hands the door its ports.
"""
