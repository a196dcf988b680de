"""The `journeygraph` command line: one thin subcommand per use, errors as one line.

Every subcommand parses its arguments, calls the library, and prints. Errors
that journeygraph raises on purpose print `error: …` with the fix and exit 2;
anything else is an internal error (exit 1) whose traceback shows only with
--debug.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from engine import pandas_off
from ontology.errors import ConfigError, JourneyGraphError

log = logging.getLogger("journeygraph")


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


def _emit(args: argparse.Namespace, data: Any, as_text: Callable[[Any], str]) -> int:
    """Print `data` as JSON with --format json, else as the text `as_text` renders."""
    if args.format == "json":
        _print_json(data)
    else:
        sys.stdout.write(as_text(data))
    return 0


# --- subcommands -----------------------------------------------------------------------------

def cmd_demo(args: argparse.Namespace) -> int:
    from engine.app import pipeline

    summary = pipeline.run_demo(workspace=args.workspace, quiet=args.format == "json")
    if args.format == "json":
        _print_json(summary)
        return 0
    from engine.app import views

    ws = args.workspace or pipeline.DEMO_WORKSPACE
    sys.stdout.write(views.feed(ws, fmt="text", limit=args.limit))
    sys.stdout.write(f"\nThe demo workspace is {ws}. Next:\n"
                     f"  journeygraph feed -w {ws} --format html -o feed.html   the feed as a page\n"
                     f"  journeygraph serve -w {ws}                             the web page, http://127.0.0.1:8765/\n"
                     f"  journeygraph trace INSIGHT_ID -w {ws}                  every number behind an insight\n"
                     f"  journeygraph inspect YOUR_EVENTS.csv                          how your own file would be read\n")
    return 0


def cmd_init(args: argparse.Namespace) -> int:
    from engine.app import init

    path = init.write_config(Path(args.dir), force=args.force)
    sys.stdout.write(f"wrote {path}; edit `source:` and the journeys, then `journeygraph run -c {path}`\n")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from engine.app import pipeline

    summary = pipeline.run(source=args.events, config_path=args.config, workspace=args.workspace, engine=args.engine,
                           if_new=args.if_new)
    if args.format == "json":
        _print_json(summary)
    else:
        from engine.app import views

        sys.stdout.write(views.run_summary_text(summary))
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    from engine import inspection

    sys.stdout.write(inspection.inspect(args.events, write=args.write))
    return 0


def cmd_feed(args: argparse.Namespace) -> int:
    from engine.app import views

    out = views.feed(args.workspace, fmt=args.format, limit=args.limit, snapshot=args.snapshot)
    if args.output:
        Path(args.output).write_text(out)
        sys.stderr.write(f"wrote {args.output}\n")
    else:
        sys.stdout.write(out)
    return 0


def cmd_snapshots(args: argparse.Namespace) -> int:
    from engine.app import views

    rows = views.snapshots(args.workspace)
    return _emit(args, rows, views.snapshots_text)


def cmd_snapshot(args: argparse.Namespace) -> int:
    from engine.app import views

    if args.level is not None and not args.intervals:
        raise ConfigError("--level applies to --intervals: add --intervals (500 replicates) or --intervals N")
    data = views.snapshot(args.workspace, snapshot_id=args.id, journey=args.journey,
                          intervals=args.intervals, level=args.level or 0.95)
    return _emit(args, data, views.snapshot_text)


def cmd_detectors(args: argparse.Namespace) -> int:
    from engine.app import views

    rows = views.detectors()
    return _emit(args, rows, views.detectors_text)


def cmd_ask(args: argparse.Namespace) -> int:
    from engine.app import views

    data = views.ask(args.workspace, args.question)
    return _emit(args, data, views.ask_text)


def cmd_trace(args: argparse.Namespace) -> int:
    from engine.app import views

    data = views.trace(args.workspace, args.insight_id)
    if args.bundle_out:
        from narrator.trace import write_bundle

        write_bundle(data, args.bundle_out, err=sys.stderr)
    return _emit(args, data, views.trace_text)


def cmd_verify(args: argparse.Namespace) -> int:
    from narrator import verify

    return int(verify.run_verify(args.bundle, args.narrative, out=sys.stdout))


def cmd_export(args: argparse.Namespace) -> int:
    from engine.app import views

    out = views.export(args.workspace, fmt=args.format)
    if args.output:
        Path(args.output).write_text(out)
    else:
        sys.stdout.write(out)
    return 0


def cmd_query(args: argparse.Namespace) -> int:
    from engine.app import views

    rows = views.query(args.workspace, sparql=args.sparql, cypher=args.cypher)
    return _emit(args, rows, views.table_text)


def cmd_serve(args: argparse.Namespace) -> int:
    from engine.app import api

    api.serve(workspace=args.workspace, host=args.host, port=args.port, token=args.token)
    return 0


def cmd_mcp(args: argparse.Namespace) -> int:
    from engine.app import mcp

    mcp.run(args.workspace)
    return 0


def cmd_watch(args: argparse.Namespace) -> int:
    from engine.app import watch

    watch.watch(args.source, config_path=args.config, workspace=args.workspace,
                interval_s=args.interval, once=args.once)
    return 0


# --- parser ----------------------------------------------------------------------------------

def _ws(p: argparse.ArgumentParser) -> None:
    p.add_argument("-w", "--workspace", default=None, help="workspace folder (default ./.journeygraph)")


def _replicates(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of replicates; put the snapshot id before "
                                         "--intervals (snapshot ID --intervals [N])") from None
    if not 2 <= value <= 100_000:
        raise argparse.ArgumentTypeError(f"{text} replicates: give 2 to 100000 (500 is a good default)")
    return value


def _level(text: str) -> float:
    value = float(text)
    if not 0.5 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"level {text}: give a value in [0.5, 1), e.g. 0.95")
    return value


def _fmt(p: argparse.ArgumentParser, choices: Sequence[str] = ("text", "json"), default: str = "text") -> None:
    p.add_argument("--format", choices=choices, default=default)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="journeygraph", description="Behavioural intelligence from raw event streams.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    parser.add_argument("--version", action="version", version=f"journeygraph {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands: list[tuple[str, str, Callable[[argparse.Namespace], int]]] = []

    def add(name: str, help_text: str, func: Callable[[argparse.Namespace], int]) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(func=func)
        commands.append((name, help_text, func))
        return p

    p = add("demo", "run the whole pipeline on the bundled SaaS onboarding stream into a fresh demo workspace "
                    "(default .journeygraph-demo), print the top of its feed and what to type next", cmd_demo)
    _ws(p); _fmt(p); p.add_argument("--limit", type=int, default=10)
    p = add("init", "write a commented journeygraph.yaml", cmd_init)
    p.add_argument("dir", nargs="?", default="."); p.add_argument("--force", action="store_true")
    p = add("run", "ingest events, build journeys, snapshots, findings, facts and insights", cmd_run)
    p.add_argument("events", nargs="?", default=None, help="events file/glob, or SQL on a DuckDB/Postgres URL")
    p.add_argument("-c", "--config", default=None); _ws(p); _fmt(p)
    p.add_argument("--engine", choices=("duckdb", "spark"), default=None,
                   help="where the per-event stages run (default: the config's engine:, else duckdb; spark needs journeygraph[spark])")
    p.add_argument("--if-new", action="store_true",
                   help="do nothing when no file is new and the last run had the same source, config and engine version "
                        "(for schedulers; a plain rerun carries the feed's notices on and ages its novelty)")
    p = add("inspect", "how a file is read (format, columns, times) and the journey it suggests", cmd_inspect)
    p.add_argument("events", help="events file or glob")
    p.add_argument("--write", nargs="?", const="journeygraph.yaml", default=None, metavar="PATH",
                   help="also write the proposed config (default ./journeygraph.yaml)")
    p = add("feed", "the ranked insight feed", cmd_feed)
    _ws(p); _fmt(p, ("text", "json", "md", "html")); p.add_argument("--limit", type=int, default=20)
    p.add_argument("--snapshot", default=None); p.add_argument("-o", "--output", default=None)
    p = add("ask", "answer a question from the facts, with citations", cmd_ask)
    p.add_argument("question"); _ws(p); _fmt(p)
    p = add("trace", "insight → sentences → facts → evidence → snapshot → recomputation → events", cmd_trace)
    p.add_argument("insight_id"); _ws(p); _fmt(p)
    p.add_argument("--bundle-out", default=None, help="also write the bundle and narrative for `verify --bundle`")
    p = add("verify", "check a narrative against its bundle (exit 0 faithful, 1 not)", cmd_verify)
    p.add_argument("--bundle", required=True); p.add_argument("--narrative", required=True)
    p = add("snapshots", "list snapshots", cmd_snapshots)
    _ws(p); _fmt(p)
    p = add("snapshot", "metrics of one snapshot (default: all data, first journey)", cmd_snapshot)
    p.add_argument("id", nargs="?", default=None); p.add_argument("--journey", default=None); _ws(p); _fmt(p)
    p.add_argument("--intervals", nargs="?", type=_replicates, const=500, default=None, metavar="REPLICATES",
                   help="bootstrap intervals for B, removal effects and the removal ranking (default 500 replicates)")
    p.add_argument("--level", type=_level, default=None, help="interval level with --intervals (default 0.95)")
    p = add("detectors", "list detectors with version, purpose and thresholds", cmd_detectors)
    _fmt(p)
    p = add("export", "export the fact graph", cmd_export)
    _ws(p); p.add_argument("--format", choices=("turtle", "jsonld", "json"), required=True)
    p.add_argument("-o", "--output", default=None)
    p = add("query", "query the fact graph (SPARQL on embedded, Cypher on Neo4j)", cmd_query)
    _ws(p); _fmt(p)
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--sparql"); group.add_argument("--cypher")
    p = add("serve", "HTTP API and web feed", cmd_serve)
    _ws(p); p.add_argument("--port", type=int, default=8765); p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--token", default=None, help="bearer token (required beyond loopback; or JOURNEYGRAPH_TOKEN)")
    p = add("mcp", "Model Context Protocol server over stdio (read-only tools for AI agents)", cmd_mcp)
    _ws(p)
    p = add("watch", "re-run when new data arrives and push new insights to webhooks", cmd_watch)
    p.add_argument("source"); p.add_argument("-c", "--config", required=True); _ws(p)
    p.add_argument("--interval", type=float, default=60.0); p.add_argument("--once", action="store_true")
    return parser


def _version() -> str:
    from engine import __version__

    return __version__


FAST_EXIT_COMMANDS = ("run", "demo")  # they checkpoint and close their database and fact store themselves


def main(argv: Sequence[str] | None = None) -> int:
    return _main(argv)[0]


def console_main() -> None:
    """The `journeygraph` executable: `main`, then, after a successful `run` or `demo`, a fast exit.

    Why: once `run` has checkpointed and closed the workspace and the fact store, tearing the interpreter
    down (numpy, scipy, pyarrow and DuckDB module state) still takes about 0.3 s; `os._exit` skips that
    after flushing the output and the log handlers. Other commands may leave a connection for the
    interpreter to close, so they exit the normal way.
    """
    code, command = _main(None)
    if code == 0 and command in FAST_EXIT_COMMANDS:
        logging.shutdown()
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except BrokenPipeError:
            pass
        os._exit(code)
    sys.exit(code)


def _main(argv: Sequence[str] | None) -> tuple[int, str]:
    parser = build_parser()
    args = parser.parse_args(argv)
    if argv is None and args.command in FAST_EXIT_COMMANDS:  # the executable's run: nothing in it uses pandas
        pandas_off.switch_off()
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING, stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")
    return _dispatch(args), args.command


def _dispatch(args: argparse.Namespace) -> int:
    try:
        return args.func(args)
    except JourneyGraphError as exc:
        if args.debug:
            raise
        sys.stderr.write(f"error: {_public(exc, args)}\n")
        return exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:
        if args.debug:
            raise
        sys.stderr.write(f"error: internal error ({type(exc).__name__}: {_public(exc, args)}); "
                         "re-run with --debug and report it\n")
        return 1


def _public(exc: BaseException, args: argparse.Namespace) -> str:
    """The message without the workspace's absolute path, the interpreter's path or a process id."""
    from engine.workspace import public_message

    return public_message(str(exc), getattr(args, "workspace", None))


if __name__ == "__main__":
    console_main()
