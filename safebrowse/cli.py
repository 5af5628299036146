"""The `safebrowse` command: serve both doors, run one episode over stdio, list tasks, drive episodes."""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import logging
import os
import signal
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from safebrowse import __version__
from safebrowse.settings import ServerSettings, SettingsInputError

if TYPE_CHECKING:
    from safebrowse.client import AsyncControlClient, ControlClient, EpisodeSpec, Policy


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
    """The engine flags that were given; the others are left to the environment, the file and the defaults."""
    flags = {"workers": "workers", "chromium_path": "chromium", "extra_tasks_dir": "tasks_dir"}
    given = {field: getattr(args, flag, None) for field, flag in flags.items()}
    return {field: value for field, value in given.items() if value is not None}


def _settings_or_exit(config_file: str | None = None, **flags: object) -> ServerSettings:
    """The settings, or exit 2 with the one-paragraph reason: a traceback would bury the setting at fault."""
    try:
        return ServerSettings.from_env(config_file=config_file, **flags)
    except SettingsInputError as error:
        sys.stderr.write(f"safebrowse: {error}\n")
        raise SystemExit(2) from None


def cmd_serve(args: argparse.Namespace) -> int:
    settings = _settings_or_exit(
        config_file=args.config, host=args.host, mcp_port=args.port, control_host=args.control_host,
        control_port=args.control_port, data_dir=args.data_dir, engine=_engine_overrides(args),
        cluster={"address": args.ray} if args.ray else None,
    )
    if settings.cluster.address:
        return _serve_cluster(settings)
    from engine.book import BookError
    from safebrowse.server import SafebrowseServer

    try:
        server = SafebrowseServer(settings)
    except (BookError, OSError) as error:  # one line for the operator: the data dir, Chromium, a port in use
        sys.stderr.write(f"safebrowse: {error}\n")
        raise SystemExit(2) from None
    log = logging.getLogger("safebrowse")

    def announce() -> None:
        log.info("MCP door (agents):      %s", server.mcp_url)
        log.info("control API (trainers): %s", server.control_url)
        if server.token_path is not None:
            log.info("control token written to %s (owner-only)", server.token_path)
        log.info("%d tasks, %d browser workers", len(server.manager.registry), settings.engine.workers)

    _serve_until_signalled(server, announce)
    return 0


class _Serving(Protocol):
    """A server `safebrowse serve` runs: a single server, or a cluster's front."""

    started: asyncio.Event

    async def serve(self) -> None: ...

    def request_stop(self) -> None: ...


def _serve_until_signalled(server: _Serving, announce: Callable[[], None]) -> None:
    """Serve until SIGINT or SIGTERM; `announce` once it listens. A server that stops before it
    has started (its browsers or its cluster could not start, say) exits 2 with one line."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, server.request_stop)
        serving = asyncio.create_task(server.serve())
        started = asyncio.create_task(server.started.wait())
        await asyncio.wait({serving, started}, return_when=asyncio.FIRST_COMPLETED)
        if serving.done():
            started.cancel()
            error = serving.exception()
            if error is not None:
                sys.stderr.write(f"safebrowse: the server could not start: {type(error).__name__}: {error}\n")
                raise SystemExit(2)
            return
        announce()
        await serving

    asyncio.run(main())


def _serve_cluster(settings: ServerSettings) -> int:
    """`safebrowse serve --ray`: the front of a Ray cluster (`safebrowse.cluster_server`)."""
    from engine.book import BookError
    from safebrowse.cluster_server import ClusterFront

    try:
        front = ClusterFront(settings)
    except (BookError, SettingsInputError) as error:
        sys.stderr.write(f"safebrowse: {error}\n")
        raise SystemExit(2) from None
    log = logging.getLogger("safebrowse")

    def announce() -> None:
        log.info("control API (trainers): %s", front.control_url)
        if front.token_path is not None:
            log.info("control token written to %s (owner-only)", front.token_path)
        nodes = front.room.fleet.alive()
        log.info("Ray cluster %s: %d browser nodes", settings.cluster.address, len(nodes))
        for node in nodes:
            log.info("  node %s: MCP door %s", node.name, node.info.mcp_url)

    _serve_until_signalled(front, announce)
    return 0


def cmd_stdio(args: argparse.Namespace) -> int:
    from safebrowse.stdio import run_stdio, run_suite_stdio

    if (args.task is None) == (args.suite is None):
        sys.stderr.write("safebrowse stdio: give either --task (one episode) or --suite (an evaluation)\n")
        raise SystemExit(2)
    if args.suite is None and (args.episodes is not None or args.report or args.difficulty or args.max_steps):
        sys.stderr.write("safebrowse stdio: --episodes, --difficulty, --max-steps and --report go with --suite\n")
        raise SystemExit(2)
    settings = _settings_or_exit(control_port=args.control_port or 0, data_dir=args.data_dir,
                                 engine=_engine_overrides(args))
    serve_control = args.control_port is not None
    if args.suite is not None:
        asyncio.run(run_suite_stdio(
            settings, args.suite, episodes=1 if args.episodes is None else args.episodes,
            seed=0 if args.seed is None else args.seed, difficulty=args.difficulty, max_steps=args.max_steps,
            report_path=Path(args.report) if args.report else None, serve_control=serve_control))
        return 0
    asyncio.run(run_stdio(settings, task_id=args.task, seed=args.seed, serve_control=serve_control))
    return 0


def _moment(text: str) -> float:
    """A time given on the command line: seconds since the epoch, or an ISO 8601 date or date-time
    (UTC unless it names a zone)."""
    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a time: give seconds since the epoch or an ISO date such as 2026-11-30T12:00"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment.timestamp()


def cmd_export(args: argparse.Namespace) -> int:
    """Write recorded episodes of a data dir as training data (JSON lines or Parquet)."""
    from control_api.export import ExportError, write_jsonl, write_parquet
    from engine.book import BookError, EpisodeBook

    data_dir = Path(args.data_dir) if args.data_dir else _settings_or_exit().data_dir
    if args.format == "parquet" and not args.output:
        raise SystemExit("safebrowse export: --format parquet writes a file; name it with -o FILE")
    try:
        book = EpisodeBook.open(data_dir, read_only=True)
    except BookError as error:
        raise SystemExit(f"safebrowse export: {error}") from None
    try:
        entries = book.entries(task_id=args.task, success=args.success, since=args.since, until=args.until)
        if args.format == "parquet":
            count = write_parquet(entries, Path(args.output))
        elif args.output:
            with open(args.output, "w", encoding="utf-8") as out:
                count = write_jsonl(entries, out)
        else:
            count = write_jsonl(entries, sys.stdout)
    except ExportError as error:
        raise SystemExit(f"safebrowse export: {error}") from None
    finally:
        book.close()
    print(f"exported {count} episodes from {data_dir}", file=sys.stderr)
    return 0


def _print_suites(as_json: bool) -> int:
    from tasks.suites import NAMED_SUITES

    if as_json:
        json.dump([{"name": suite.name, "description": suite.description, "tasks": list(suite.task_ids)}
                   for suite in NAMED_SUITES.values()], sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    for suite in NAMED_SUITES.values():
        print(f"{suite.name:<20} {len(suite.task_ids):>3} tasks  {suite.description}")
        print(f"{'':<20}      {', '.join(suite.task_ids)}")
    return 0


def cmd_tasks(args: argparse.Namespace) -> int:
    if args.suites:
        return _print_suites(args.json)
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


def _control_token(args: argparse.Namespace) -> str:
    """The control token: `--token` (where a command has it), SAFEBROWSE_CONTROL_TOKEN, or the server's token file."""
    from safebrowse.settings import default_token_file

    token = getattr(args, "token", None) or os.environ.get("SAFEBROWSE_CONTROL_TOKEN")
    if not token:
        path = os.environ.get("SAFEBROWSE_TOKEN_FILE") or str(default_token_file())
        try:
            token = Path(path).read_text(encoding="utf-8").strip()
        except OSError:
            raise SystemExit(
                f"no control token: set SAFEBROWSE_CONTROL_TOKEN or start the server first ({path})"
            ) from None
    return token


def _control_client(args: argparse.Namespace) -> ControlClient:
    from safebrowse.client import ControlClient

    return ControlClient(args.control_url, _control_token(args))


def _print_model(model: object) -> None:
    sys.stdout.write(model.model_dump_json(indent=2) + "\n")  # type: ignore[attr-defined]


def cmd_episode(args: argparse.Namespace) -> int:
    from safebrowse.client import ControlAPIError

    with _control_client(args) as client:
        try:
            if args.action == "create":
                _print_model(client.create_episode(args.task, seed=args.seed, max_steps=args.max_steps))
            elif args.action == "list":
                for summary in client.list_episodes().episodes:
                    sys.stdout.write(summary.model_dump_json() + "\n")
            elif args.action == "state":
                _print_model(client.get_episode(args.episode_id))
            elif args.action == "trajectory":
                _print_model(client.get_trajectory(args.episode_id))
            elif args.action == "close":
                _print_model(client.close_episode(args.episode_id))
        except ControlAPIError as error:
            sys.stderr.write(f"error: {error}\n")
            return 1
    return 0


# -- rollout: scripted episodes against a running server --------------------------------------


@dataclass
class RolloutOutcome:
    """One scripted episode as the rollout command reports it (and writes it with --json)."""

    index: int
    task_id: str
    seed: int | None
    episode_id: str | None = None
    success: bool = False
    total_reward: float = 0.0
    failure_reason: str = ""
    actions: int = 0
    reset_ms: float | None = None
    step_ms: list[float] = field(default_factory=list)
    error: str | None = None

    @property
    def completed(self) -> bool:
        return self.error is None


async def _play_one(control: AsyncControlClient, index: int, spec: EpisodeSpec,
                    policy: Policy) -> RolloutOutcome:
    """One episode through the real doors, its failures caught so the other episodes keep going.

    `arollout` runs one episode at a time here (the command does its own gating) so that
    each finished episode can move the progress bar and an error ends only its episode.
    `arollout` closes the episode even when it fails; the reset time (`setup_ms`) is read
    from the closed episode's state, which the server keeps for its last 1,000 episodes.
    """
    from safebrowse.client import ControlAPIError, arollout

    outcome = RolloutOutcome(index=index, task_id=spec.task_id, seed=spec.seed)
    try:
        batch = await arollout(control, [spec], policy)
        (episode,) = batch.episodes
        outcome.episode_id, outcome.seed = episode.episode_id, episode.seed
        outcome.success, outcome.total_reward = episode.success, episode.total_reward
        outcome.failure_reason, outcome.actions = episode.failure_reason, len(episode.actions)
        outcome.step_ms = [step.action_ms + step.observation_ms + step.validate_ms for step in episode.steps]
        try:
            outcome.reset_ms = (await control.get_episode(episode.episode_id)).setup_ms
        except ControlAPIError:
            pass  # forgotten already: the summary shows "-" rather than failing a played episode
    except Exception as error:  # noqa: BLE001 - reported per episode, and the exit code says so
        outcome.error = f"{type(error).__name__}: {error}".splitlines()[0]
    return outcome


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _task_summary(outcomes: list[RolloutOutcome]) -> dict[str, object]:
    done = [o for o in outcomes if o.completed]
    successes = sum(1 for o in done if o.success)
    return {
        "episodes": len(outcomes),
        "completed": len(done),
        "errors": len(outcomes) - len(done),
        "successes": successes,
        "success_rate": successes / len(done) if done else None,
        "mean_total_reward": statistics.fmean(o.total_reward for o in done) if done else None,
        "reset_ms_median": _median([o.reset_ms for o in done if o.reset_ms is not None]),
        "step_ms_median": _median([ms for o in done for ms in o.step_ms]),
    }


def _summary_table(summaries: dict[str, dict[str, object]]) -> str:
    def ms(value: object) -> str:
        return "-" if value is None else f"{value:.0f} ms"

    header = ["task", "episodes", "errors", "success", "mean reward", "reset p50", "step p50"]
    rows = [header]
    for task_id, s in summaries.items():
        rate = s["success_rate"]
        success = f"{s['successes']}/{s['completed']}" + ("" if rate is None else f" ({rate:.0%})")
        reward = "-" if s["mean_total_reward"] is None else f"{s['mean_total_reward']:+.3f}"
        rows.append([task_id, str(s["episodes"]), str(s["errors"]), success, reward,
                     ms(s["reset_ms_median"]), ms(s["step_ms_median"])])
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths)))
             for row in rows]
    return "\n".join(lines)


async def _rollout(args: argparse.Namespace, task_ids: list[str], token: str) -> int:
    import httpx

    from safebrowse.client import AsyncControlClient, ControlAPIError, EpisodeSpec
    from safebrowse.progress import progress_bar
    from safebrowse.scripted import POLICIES

    options = {"max_steps": args.max_steps} if args.max_steps else {}
    # Episode k of every task before episode k+1 of any: a run cut short still covers each task.
    specs = [EpisodeSpec(task_id, None if args.seed is None else args.seed + k, options)
             for k in range(args.episodes) for task_id in task_ids]
    started = time.perf_counter()
    async with AsyncControlClient(args.control_url, token) as control:
        try:
            offered = {task.id for task in (await control.list_tasks()).tasks}
        except ControlAPIError as error:
            sys.stderr.write(f"error: the control API at {args.control_url} refused: {error}\n")
            return 1
        except httpx.HTTPError as error:
            sys.stderr.write(f"error: cannot reach the control API at {args.control_url}: {error!r}\n")
            return 1
        missing = [task_id for task_id in task_ids if task_id not in offered]
        if missing:
            sys.stderr.write(f"error: the server does not offer {', '.join(missing)}\n")
            return 1

        gate = asyncio.Semaphore(args.concurrency)
        outcomes: list[RolloutOutcome] = []
        with progress_bar(len(specs), "rollout", enabled=args.progress, unit="episode") as bar:

            async def one(index: int, spec: EpisodeSpec) -> None:
                async with gate:
                    outcome = await _play_one(control, index, spec, POLICIES[spec.task_id])
                outcomes.append(outcome)
                successes = sum(1 for o in outcomes if o.success)
                status = "error" if outcome.error else ("ok" if outcome.success else "fail")
                bar.set_postfix_str(f"{outcome.task_id} {status}, {successes}/{len(outcomes)} ok", refresh=False)
                bar.update()

            await asyncio.gather(*(one(index, spec) for index, spec in enumerate(specs)))
    elapsed = time.perf_counter() - started
    outcomes.sort(key=lambda o: o.index)

    summaries = {task_id: _task_summary([o for o in outcomes if o.task_id == task_id]) for task_id in task_ids}
    summaries["overall"] = _task_summary(outcomes)
    seeds = "server-chosen seeds" if args.seed is None else f"seeds {args.seed}..{args.seed + args.episodes - 1}"
    print(f"rollout: {len(task_ids)} task(s) x {args.episodes} episode(s), {seeds}, "
          f"concurrency {args.concurrency}, {elapsed:.1f} s")
    print(_summary_table(summaries))
    print("reset and step p50: the server's own setup and action+observation+validation times, median")
    errors = [o for o in outcomes if not o.completed]
    for outcome in errors[:5]:
        sys.stderr.write(f"error: {outcome.task_id} seed {outcome.seed}: {outcome.error}\n")
    if len(errors) > 5:
        sys.stderr.write(f"error: ... and {len(errors) - 5} more\n")
    if args.json:
        report = {
            "control_url": args.control_url, "tasks": task_ids, "episodes_per_task": args.episodes,
            "seed": args.seed, "concurrency": args.concurrency, "max_steps": args.max_steps,
            "elapsed_s": elapsed, "summary": summaries, "episodes": [asdict(o) for o in outcomes],
        }
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(report, handle, indent=1)
            handle.write("\n")
    return 1 if errors else 0


def cmd_rollout(args: argparse.Namespace) -> int:
    from safebrowse.scripted import POLICIES

    task_ids = list(dict.fromkeys(t.strip() for t in args.tasks.split(",") if t.strip()))
    if not task_ids:
        sys.stderr.write("error: --tasks names no task\n")
        return 2
    unscripted = [task_id for task_id in task_ids if task_id not in POLICIES]
    if unscripted:
        sys.stderr.write(f"error: no scripted policy for {', '.join(unscripted)}; "
                         f"tasks with one: {', '.join(sorted(POLICIES))}\n")
        return 2
    if args.episodes < 1 or args.concurrency < 1:
        sys.stderr.write("error: --episodes and --concurrency must be at least 1\n")
        return 2
    if args.log_level != "DEBUG":
        # One INFO line per HTTP request would bury the progress and the summary.
        for name in ("httpx", "httpx2", "mcp"):
            logging.getLogger(name).setLevel(logging.WARNING)
    return asyncio.run(_rollout(args, task_ids, _control_token(args)))


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
    serve.add_argument("--data-dir", default=None,
                       help="where the episode book is kept (default ~/.local/state/safebrowse; SAFEBROWSE_DATA_DIR)")
    serve.add_argument("--ray", default=None, metavar="ADDRESS",
                       help="run browser nodes on this Ray cluster (auto, HOST:PORT or ray://HOST:PORT; "
                            "SAFEBROWSE_RAY_ADDRESS); needs the ray extra")
    serve.set_defaults(func=cmd_serve)

    stdio = sub.add_parser("stdio", help="run one episode over MCP stdio (Claude Desktop)")
    stdio.add_argument("--task", default=None, help="task id, e.g. miniwob.click-test (one episode)")
    stdio.add_argument("--suite", default=None,
                       help="evaluate on a suite: task ids and suite names, comma-separated (see tasks --suites)")
    stdio.add_argument("--episodes", type=int, default=None, help="with --suite: episodes per task (default 1)")
    stdio.add_argument("--difficulty", default=None, help="with --suite: the difficulty of tasks that have them")
    stdio.add_argument("--max-steps", type=int, default=None,
                       help="with --suite: each episode's step budget (default: the server's)")
    stdio.add_argument("--report", default=None, metavar="FILE",
                       help="with --suite: write the operator's report (JSON) here")
    stdio.add_argument("--seed", type=int, default=None,
                       help="the episode's seed; with --suite the first seed of each task (default 0)")
    stdio.add_argument("--control-port", type=int, default=None,
                       help="also serve the control API on this loopback port")
    stdio.add_argument("--workers", type=int, default=1)
    stdio.add_argument("--chromium", default=None)
    stdio.add_argument("--tasks-dir", default=None)
    stdio.add_argument("--data-dir", default=None,
                       help="where the episode book is kept (default ~/.local/state/safebrowse; SAFEBROWSE_DATA_DIR); "
                            "one process per data dir")
    stdio.set_defaults(func=cmd_stdio)

    export = sub.add_parser("export", help="write recorded episodes as training data (JSON lines or Parquet)")
    export.add_argument("--data-dir", default=None,
                        help="the server's data dir (default: SAFEBROWSE_DATA_DIR or the settings' data_dir)")
    export.add_argument("--format", choices=("jsonl", "parquet"), default="jsonl")
    export.add_argument("-o", "--output", default=None, help="file to write (default: standard output, JSON lines)")
    export.add_argument("--task", default=None, help="only episodes of this task id")
    outcome = export.add_mutually_exclusive_group()
    outcome.add_argument("--success", dest="success", action="store_const", const=True, default=None,
                         help="only successful episodes")
    outcome.add_argument("--failed", dest="success", action="store_const", const=False,
                         help="only failed episodes")
    export.add_argument("--since", type=_moment, default=None,
                        help="only episodes created at or after this time (epoch seconds or ISO date)")
    export.add_argument("--until", type=_moment, default=None,
                        help="only episodes created before this time (epoch seconds or ISO date)")
    export.set_defaults(func=cmd_export)

    tasks = sub.add_parser("tasks", help="list the tasks this server offers")
    tasks.add_argument("--family", default=None)
    tasks.add_argument("--json", action="store_true")
    tasks.add_argument("--suites", action="store_true", help="list the named suites instead")
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

    rollout = sub.add_parser("rollout", help="play scripted episodes against a running server, with a summary")
    rollout.add_argument("--control-url", default=os.environ.get("SAFEBROWSE_CONTROL_URL", "http://127.0.0.1:8001"))
    rollout.add_argument("--token", default=None,
                         help="control token (default: SAFEBROWSE_CONTROL_TOKEN, then the server's token file; "
                              "prefer those, a flag shows in the process list)")
    rollout.add_argument("--tasks", required=True,
                         help="comma-separated task ids with a scripted policy, "
                              "e.g. miniwob.click-test,miniwob.enter-text")
    rollout.add_argument("--episodes", type=int, default=1, help="episodes per task (default 1)")
    rollout.add_argument("--seed", type=int, default=None,
                         help="first seed; episode k of a task uses seed+k (default: the server picks)")
    rollout.add_argument("--concurrency", type=int, default=1, help="episodes at once (default 1)")
    rollout.add_argument("--max-steps", type=int, default=None, help="the episodes' step limit (default: the server's)")
    rollout.add_argument("--json", default=None, metavar="FILE", help="also write every episode and the summary here")
    rollout.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                         help="a progress line on stderr (default: only when stderr is a terminal)")
    rollout.set_defaults(func=cmd_rollout)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Logs go to stderr: stdout belongs to the MCP stdio transport.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLogFormatter() if args.log_format == "json"
                         else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=args.log_level, handlers=[handler])
    command: Callable[[argparse.Namespace], int] = args.func
    return command(args)


if __name__ == "__main__":
    raise SystemExit(main())
