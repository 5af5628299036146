"""The agent door over stdio: one process, one episode, whoever holds the pipe is the agent.

For desktop clients such as Claude Desktop, which start the server as a child
process and speak MCP over its stdin/stdout. There is no token: the process was
started for one episode, and `serve_stdio` binds the tools to that episode's port.
Building the engine and creating the episode belong to the composition root
(`safebrowse.stdio`), not to the door.

stdout belongs to the protocol: nothing here prints, and logs go to stderr. The
server returns when the client closes stdin.
"""

from __future__ import annotations

from mcp.server.stdio import stdio_server

from engine.agent_view.instructions import INSTRUCTIONS
from engine.agent_view.port import AgentPort
from mcp_server.tools import build_server


async def serve_stdio(port: AgentPort, version: str, instructions: str = INSTRUCTIONS) -> None:
    """Serve the tools of the episode behind `port` over stdin/stdout until the client hangs up."""
    server = build_server(lambda _ctx: port, version, instructions)
    async with stdio_server() as (read_stream, write_stream):
        await server.run(read_stream, write_stream, server.create_initialization_options())
