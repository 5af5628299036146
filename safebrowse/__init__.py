"""safebrowse: a browser for LLM agents through agent-safe MCP tools, with a private
control API where RL trainers create episodes and read rewards computed server-side."""

__version__ = "0.1.0"
