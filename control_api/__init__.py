"""The trainer door: a private HTTP API to create, read, end and close episodes,
with rewards computed server-side (`engine.reward`). See docs/control-api.md."""
