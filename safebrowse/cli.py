"""The `safebrowse` command: serve both doors, run one episode over stdio, list tasks."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys

from safebrowse import __version__
from safebrowse.settings import ServerSettings


class JsonLogFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message (and the exception, if any)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def _engine_overrides(args: argparse.Namespace) -> dict[str, object]:
    overrides: dict[str, object] = {}
    if getattr(args, "workers", None):
        overrides["workers"] = args.workers
    if getattr(args, "chromium", None):
        overrides["chromium_path"] = args.chromium
    if getattr(args, "tasks_dir", None):
        overrides["extra_tasks_dir"] = args.tasks_dir
    return overrides


def cmd_serve(args: argparse.Namespace) -> int:
    from safebrowse.server import SafebrowseServer

    settings = ServerSettings.from_env(
        config_file=args.config, host=args.host, mcp_port=args.port, control_host=args.control_host,
        control_port=args.control_port, engine=_engine_overrides(args),
    )
    server = SafebrowseServer(settings)
    log = logging.getLogger("safebrowse")

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, server.request_stop)
        serving = asyncio.create_task(server.serve())
        await server.started.wait()
        log.info("MCP door (agents):      %s", server.mcp_url)
        log.info("control API (trainers): %s", server.control_url)
        if server.token_path is not None:
            log.info("control token written to %s (owner-only)", server.token_path)
        log.info("%d tasks, %d browser workers", len(server.manager.registry), settings.engine.workers)
        await serving

    asyncio.run(main())
    return 0


def cmd_stdio(args: argparse.Namespace) -> int:
    from mcp_server.stdio import run_stdio

    settings = ServerSettings.from_env(control_port=args.control_port or 0, engine=_engine_overrides(args))
    asyncio.run(run_stdio(settings, task_id=args.task, seed=args.seed, serve_control=args.control_port is not None))
    return 0


def cmd_tasks(args: argparse.Namespace) -> int:
    from tasks import default_registry

    registry = default_registry(args.tasks_dir)
    rows = [
        {"id": spec.id, "family": spec.family, "description": spec.description,
         "difficulties": list(spec.difficulties)}
        for spec in registry
        if not args.family or spec.family == args.family
    ]
    if args.json:
        json.dump(rows, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        for row in rows:
            print(f"{row['id']:<40} {row['description']}")
    return 0


def _control_client(args: argparse.Namespace):
    from safebrowse.client import ControlClient
    from safebrowse.settings import default_token_file

    token = os.environ.get("SAFEBROWSE_CONTROL_TOKEN")
    if not token:
        path = os.environ.get("SAFEBROWSE_TOKEN_FILE") or str(default_token_file())
        try:
            token = open(path, encoding="utf-8").read().strip()
        except OSError:
            raise SystemExit(f"no control token: set SAFEBROWSE_CONTROL_TOKEN or start the server first ({path})")
    return ControlClient(args.control_url, token)


def _print_model(model: object) -> None:
    sys.stdout.write(model.model_dump_json(indent=2) + "\n")  # type: ignore[attr-defined]


def cmd_episode(args: argparse.Namespace) -> int:
    from safebrowse.client import ControlAPIError

    with _control_client(args) as client:
        try:
            if args.action == "create":
                _print_model(client.create_episode(args.task, seed=args.seed, max_steps=args.max_steps))
            elif args.action == "list":
                for summary in client.episodes():
                    sys.stdout.write(summary.model_dump_json() + "\n")
            elif args.action == "state":
                _print_model(client.state(args.episode_id))
            elif args.action == "trajectory":
                _print_model(client.trajectory(args.episode_id))
            elif args.action == "close":
                _print_model(client.close(args.episode_id))
        except ControlAPIError as error:
            sys.stderr.write(f"error: {error}\n")
            return 1
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="safebrowse", description=__doc__)
    parser.add_argument("--version", action="version", version=f"safebrowse {__version__}")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    parser.add_argument("--log-format", default=os.environ.get("SAFEBROWSE_LOG_FORMAT", "text"),
                        choices=["text", "json"], help="json: one JSON object per line, for log collectors")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="serve the MCP door and the control API")
    serve.add_argument("--host", default=None, help="MCP host (default 127.0.0.1; 0.0.0.0 in a container)")
    serve.add_argument("--port", type=int, default=None, help="MCP port (default 8000)")
    serve.add_argument("--control-host", default=None, help="control API host (default 127.0.0.1)")
    serve.add_argument("--control-port", type=int, default=None, help="control API port (default 8001)")
    serve.add_argument("--workers", type=int, default=None, help="browser workers (default: CPU count)")
    serve.add_argument("--chromium", default=None, help="Chromium executable (default /usr/bin/chromium)")
    serve.add_argument("--tasks-dir", default=None, help="operator folder of custom tasks")
    serve.add_argument("--config", default=None, help="TOML settings file (also SAFEBROWSE_CONFIG)")
    serve.set_defaults(func=cmd_serve)

    stdio = sub.add_parser("stdio", help="run one episode over MCP stdio (Claude Desktop)")
    stdio.add_argument("--task", required=True, help="task id, e.g. miniwob.click-test")
    stdio.add_argument("--seed", type=int, default=None)
    stdio.add_argument("--control-port", type=int, default=None,
                       help="also serve the control API on this loopback port")
    stdio.add_argument("--workers", type=int, default=1)
    stdio.add_argument("--chromium", default=None)
    stdio.add_argument("--tasks-dir", default=None)
    stdio.set_defaults(func=cmd_stdio)

    tasks = sub.add_parser("tasks", help="list the tasks this server offers")
    tasks.add_argument("--family", default=None)
    tasks.add_argument("--json", action="store_true")
    tasks.add_argument("--tasks-dir", default=None)
    tasks.set_defaults(func=cmd_tasks)

    episode = sub.add_parser("episode", help="create, inspect or close episodes through the control API")
    episode.add_argument("--control-url", default=os.environ.get("SAFEBROWSE_CONTROL_URL", "http://127.0.0.1:8001"))
    actions = episode.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="create (reset) an episode; prints the agent token")
    create.add_argument("task")
    create.add_argument("--seed", type=int, default=None)
    create.add_argument("--max-steps", type=int, default=None)
    actions.add_parser("list", help="list episodes")
    for name in ("state", "trajectory", "close"):
        one = actions.add_parser(name, help=f"{name} of one episode")
        one.add_argument("episode_id")
    episode.set_defaults(func=cmd_episode)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Logs go to stderr: stdout belongs to the MCP stdio transport.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLogFormatter() if args.log_format == "json"
                         else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=args.log_level, handlers=[handler])
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
