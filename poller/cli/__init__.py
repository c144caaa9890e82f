"""Command line: parse arguments, set up logging, map errors to exit codes.

Exit status: 0 ok, 1 runtime failure, 2 usage or configuration error. Each command group
lives in a module of its own (``config``: check, schema; ``polling``: once, explain;
``outbox``: deliver, events, replay; ``daemon``: run, status, demo); this one holds the
parser, whose help texts are the commands' documentation (tests/test_docs.py holds the README
to them), and the dispatch.
"""

from __future__ import annotations

import sys

if sys.argv[1:2] == ["run"]:  # first of all, before the imports below take their time
    from poller.cli import startsignals

    startsignals.install()

import argparse  # noqa: E402
import os  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from pathlib import Path  # noqa: E402

from poller import __version__  # noqa: E402
from poller.cli import logconfig  # noqa: E402
from poller.cli.common import EXIT_FAILURE, EXIT_USAGE, load, state_path  # noqa: E402
from poller.config import Config  # noqa: E402
from poller.errors import PollerError  # noqa: E402
from state import StateError, default_state_path  # noqa: E402

DESCRIPTION = (
    "poller: a polling event engine. It polls provider APIs as described by Cloud Elements style "
    "polling configurations and POSTs signed notifications of created and updated records."
)
CHECK_HELP = (
    "Validate a configuration file without running anything. Prints every warning and error "
    "(FILE: JSON.PATH: message) on stderr and, when the file is valid, a table of what would be "
    "polled, with each URL rendered for since = now - 1 h. Exit 0 when valid, 2 when not. "
    "Never creates or touches a state file."
)
SCHEMA_HELP = "Print the JSON Schema (draft 2020-12) of the configuration file."
ONCE_HELP = (
    "Poll every enabled resource once (concurrently, up to engine.maxConcurrentPolls; ignoring "
    "backoff), then attempt every due notification once. Prints a line per resource and per "
    "delivery attempt; exit 0 when every poll and every delivery succeeded, 1 otherwise."
)
DELIVER_HELP = (
    "Attempt the due notifications now, then exit (with --all: every pending one, whatever its retry "
    "time, e.g. after fixing an endpoint). Exit 0 when every attempt got a 2xx (also when none was due, "
    "or there is no state file)."
)
EVENTS_HELP = (
    "List notifications in the outbox (newest first) with their delivery status; --json prints a "
    "JSON array. Reads the state file only."
)
DEMO_HELP = (
    "Run the real daemon (poller run) between a sample provider and a receiver on 127.0.0.1 (random "
    "free ports): the provider changes records every 2 s, poller polls every 3 s, and each notification that "
    "arrives is printed with its verified signatures. Stops on Ctrl-C or after --seconds; exit 0 "
    "when signed notifications arrived and verified."
)
RUN_HELP = (
    "Run the daemon: poll every enabled resource on its interval and deliver notifications as they "
    "come, until SIGTERM/SIGINT (graceful stop, exit 0). SIGHUP reloads the configuration (an invalid "
    "one is refused and the old one keeps running). Tells systemd READY/STATUS/WATCHDOG/STOPPING when "
    "NOTIFY_SOCKET is set; serves /metrics and /healthz when engine.listen is set."
)
STATUS_HELP = (
    "Show each resource's cursor, last poll, last success, consecutive failures, next due poll, and "
    "its pending and dead notifications (--json for machines). Reads the state file only; works while "
    "the daemon runs."
)
REPLAY_HELP = ("Put notifications back to pending with their attempts reset: the given IDs, every dead letter "
               "(--dead), or both.")
EXPLAIN_HELP = (
    "Show what one poll of INSTANCE/RESOURCE would do: the since instant, the rendered URL, each "
    "page fetched and, for every record, the event it would produce or why it is skipped. "
    "Changes nothing (the state file is only read)."
)
WEBHOOKS_HELP = (
    "Print each webhook instance (DESIGN §10) with the URL to give its provider: "
    "engine.webhooks.publicUrl (else the listener) + /webhooks/{instanceId}/{token}. A token that is "
    "not configured (event.webhook.token) is made once and kept in the state file. Subcommands: "
    "requests, replay, register."
)
WEBHOOK_REQUESTS_HELP = (
    "List the inbound requests kept in the state file (newest first) with their outcome (accepted, "
    "duplicate, rejected), status and reason; --json prints a JSON array. Reads the state file only."
)
WEBHOOK_REPLAY_HELP = (
    "Normalise kept requests again with the configuration as it is now (after fixing events.list.ids, "
    "the mapping or the signature secret): new events are announced, known ones are not. Exit 0 when "
    "every request was accepted."
)
WEBHOOK_REGISTER_HELP = (
    "Create the provider-side webhooks (Campaign Monitor, Mailchimp: one per list of events.list.ids) "
    "through the instance's api (baseUrl and headers), pointing at the URL that `poller webhooks` prints; "
    "lists them first, so none is created twice. --remove deletes them. Without INSTANCE: every "
    "Campaign Monitor and Mailchimp instance."
)
CONFIG_HELP = "the configuration file (JSON)"
STATE_HELP = (
    "the state file (SQLite); default: engine.statePath, else $STATE_DIRECTORY/poller.db, else ./poller.db"
)



def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="poller", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"poller {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    check = commands.add_parser("check", help=CHECK_HELP, description=CHECK_HELP)
    check.add_argument("-c", "--config", required=True, metavar="FILE", help=CONFIG_HELP)
    commands.add_parser("schema", help=SCHEMA_HELP, description=SCHEMA_HELP)
    logging_options = argparse.ArgumentParser(add_help=False)
    logging_options.add_argument("--log-format", choices=("text", "json"), help="log line format (default: engine.log.format)")
    logging_options.add_argument("--log-level", type=str.upper,
                                 choices=("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"),  # (engine.log.level's)
                                 help="log level (default: engine.log.level for run, WARNING otherwise)")
    run = commands.add_parser("run", help=RUN_HELP, description=RUN_HELP, parents=[logging_options])
    run.add_argument("-c", "--config", required=True, metavar="FILE", help=CONFIG_HELP)
    run.add_argument("--state", metavar="PATH", help=STATE_HELP)
    status = commands.add_parser("status", help=STATUS_HELP, description=STATUS_HELP, parents=[logging_options])
    status.add_argument("-c", "--config", metavar="FILE", help=CONFIG_HELP + " (for the state file and the intervals)")
    status.add_argument("--state", metavar="PATH", help=STATE_HELP)
    status.add_argument("--json", action="store_true", help="print JSON")
    once = commands.add_parser("once", help=ONCE_HELP, description=ONCE_HELP, parents=[logging_options])
    once.add_argument("-c", "--config", required=True, metavar="FILE", help=CONFIG_HELP)
    once.add_argument("--state", metavar="PATH", help=STATE_HELP)
    deliver = commands.add_parser("deliver", help=DELIVER_HELP, description=DELIVER_HELP, parents=[logging_options])
    deliver.add_argument("-c", "--config", required=True, metavar="FILE", help=CONFIG_HELP)
    deliver.add_argument("--state", metavar="PATH", help=STATE_HELP)
    deliver.add_argument("--all", action="store_true", help="attempt every pending notification, due or not")
    events = commands.add_parser("events", help=EVENTS_HELP, description=EVENTS_HELP, parents=[logging_options])
    events.add_argument("-c", "--config", metavar="FILE", help=CONFIG_HELP + " (to find the state file)")
    events.add_argument("--state", metavar="PATH", help=STATE_HELP)
    events.add_argument("--status", choices=("pending", "delivered", "dead"), help="only notifications in this state")
    events.add_argument("--json", action="store_true", help="print a JSON array")
    events.add_argument("--limit", type=_positive_int, metavar="N", help="at most N notifications")
    replay = commands.add_parser("replay", help=REPLAY_HELP, description=REPLAY_HELP, parents=[logging_options])
    replay.add_argument("ids", nargs="*", metavar="ID", help="notification ids (as `poller events` shows them)")
    replay.add_argument("--dead", action="store_true", help="every dead letter")
    replay.add_argument("-c", "--config", metavar="FILE", help=CONFIG_HELP + " (to find the state file)")
    replay.add_argument("--state", metavar="PATH", help=STATE_HELP)
    replay.set_defaults(command_parser=replay)  # (its usage, not the top level's, for its own errors)
    _webhooks_parser(commands, logging_options)
    demo = commands.add_parser("demo", help=DEMO_HELP, description=DEMO_HELP)
    demo.add_argument("--seconds", type=float, metavar="N", help="stop after N seconds (default: run until Ctrl-C)")
    explain = commands.add_parser("explain", help=EXPLAIN_HELP, description=EXPLAIN_HELP, parents=[logging_options])
    explain.add_argument("-c", "--config", required=True, metavar="FILE", help=CONFIG_HELP)
    explain.add_argument("instance", metavar="INSTANCE", help="the instance id")
    explain.add_argument("resource", metavar="RESOURCE", help="the resource name")
    explain.add_argument("--state", metavar="PATH", help=STATE_HELP)
    return parser


def _webhooks_parser(commands: argparse._SubParsersAction, logging_options: argparse.ArgumentParser) -> None:
    # -c and --state before or after the subcommand (the subcommands' defaults must not hide the first)
    where = argparse.ArgumentParser(add_help=False)
    where.add_argument("-c", "--config", metavar="FILE", default=argparse.SUPPRESS, help=CONFIG_HELP)
    where.add_argument("--state", metavar="PATH", default=argparse.SUPPRESS, help=STATE_HELP)
    webhooks = commands.add_parser("webhooks", help=WEBHOOKS_HELP, description=WEBHOOKS_HELP,
                                   parents=[logging_options])
    webhooks.add_argument("-c", "--config", metavar="FILE", help=CONFIG_HELP)
    webhooks.add_argument("--state", metavar="PATH", help=STATE_HELP)
    webhooks.add_argument("--json", action="store_true", help="print JSON")
    actions = webhooks.add_subparsers(dest="action", metavar="SUBCOMMAND")
    requests = actions.add_parser("requests", help=WEBHOOK_REQUESTS_HELP, description=WEBHOOK_REQUESTS_HELP,
                                  parents=[where])
    requests.add_argument("--rejected", action="store_true", help="only the rejected ones")
    requests.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print a JSON array")
    requests.add_argument("--limit", type=_positive_int, metavar="N", help="at most N requests")
    replay = actions.add_parser("replay", help=WEBHOOK_REPLAY_HELP, description=WEBHOOK_REPLAY_HELP, parents=[where])
    replay.add_argument("ids", nargs="+", metavar="ID", help="request ids (as `poller webhooks requests` shows them)")
    register = actions.add_parser("register", help=WEBHOOK_REGISTER_HELP, description=WEBHOOK_REGISTER_HELP,
                                  parents=[where])
    register.add_argument("instance", nargs="?", metavar="INSTANCE", help="the instance id (default: all)")
    register.add_argument("--remove", action="store_true", help="delete the webhooks instead")


def webhooks_command(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """poller webhooks [requests | replay | register]: requests needs only the state file."""
    from poller.cli import webhooks

    action = args.action
    if action != "requests" and not args.config:
        parser.error(f"webhooks{' ' + action if action else ''} needs -c CONFIG")
    config = None
    if args.config:
        loaded = load(args.config)
        if loaded is None:
            return EXIT_USAGE
        config = loaded.config
    path = Path(args.state) if args.state else default_state_path(
        os.environ, config.engine.state_path if config is not None else None)
    logconfig.setup(args.log_format or "text", args.log_level or "WARNING")
    try:
        if action == "requests":
            return webhooks.requests(path, rejected=args.rejected, as_json=args.json, limit=args.limit)
        assert config is not None
        config = webhooks.with_api_instances(config, path)
        if action == "replay":
            return webhooks.replay(config, path, args.ids)
        if action == "register":
            return webhooks.register(config, path, args.instance, remove=args.remove)
        return webhooks.list_urls(config, path, as_json=args.json)
    except (PollerError, StateError) as exc:
        print(f"poller webhooks: {exc}", file=sys.stderr)
        return EXIT_FAILURE


def main(argv: Sequence[str] | None = None) -> int:
    try:
        code = _main(argv)
        sys.stdout.flush()  # (here, so that a reader gone is seen here, not at exit)
    except BrokenPipeError:
        # the reader went away (`poller events | head`): the rest has nowhere to go, and a
        # traceback would say nothing useful; stdout goes to /dev/null so the exit's flush is quiet
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_FAILURE
    return code


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on usage errors, 0 on --help
        return int(exc.code or 0)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    if args.command in ("check", "schema"):
        from poller.cli import config as config_commands

        return config_commands.check(args.config) if args.command == "check" else config_commands.schema()
    if args.command in ("events", "replay", "status"):
        return state_command(parser, args)
    if args.command == "webhooks":
        return webhooks_command(parser, args)
    if args.command == "demo":
        from poller.cli.daemon import demo

        return demo(args.seconds)
    loaded = load(args.config)
    if loaded is None:
        return EXIT_USAGE
    log = loaded.config.engine.log
    logconfig.setup(args.log_format or log.format, args.log_level or ("WARNING" if args.command != "run" else log.level))
    for warning in loaded.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    try:
        return _config_command(args, loaded.config)
    except (PollerError, StateError) as exc:
        print(f"poller {args.command}: {exc}", file=sys.stderr)
        return EXIT_FAILURE


def _config_command(args: argparse.Namespace, config: Config) -> int:
    """The commands that run with a loaded configuration: run, once, deliver, explain."""
    path = state_path(args, config)
    if args.command == "run":
        from poller.cli.daemon import run

        return run(args.config, config, path)
    if args.command == "deliver":
        from poller.cli.outbox import deliver

        return deliver(config, path, everything=args.all)
    from poller.cli import polling

    if args.command == "once":
        return polling.once(config, path)
    return polling.explain(config, path, args.instance, args.resource)


def state_command(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """status, events and replay: they need the state file, which -c CONFIG or --state names."""
    from poller.cli import daemon, outbox

    config = None
    if args.config:
        loaded = load(args.config)
        if loaded is None:
            return EXIT_USAGE
        config = loaded.config
    if args.state:
        path = Path(args.state)
    else:
        path = default_state_path(os.environ, config.engine.state_path if config is not None else None)
    logconfig.setup(args.log_format or "text", args.log_level or "WARNING")
    try:
        if args.command == "status":
            return daemon.status(path, config, as_json=args.json)
        if args.command == "events":
            return outbox.events(path, status=args.status, as_json=args.json, limit=args.limit)
        if not args.ids and not args.dead:
            args.command_parser.error("replay needs notification ids or --dead")
        return outbox.replay(path, args.ids, dead=args.dead)
    except (PollerError, StateError) as exc:
        print(f"poller {args.command}: {exc}", file=sys.stderr)
        return EXIT_FAILURE


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:  # (argparse would say "invalid _positive_int value")
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value
