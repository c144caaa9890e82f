"""Command line: parse arguments, set up logging, map errors to exit codes.

Exit status: 0 ok, 1 runtime failure, 2 usage or configuration error.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from poller import __version__

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2

DESCRIPTION = (
    "poller: a polling event engine. It polls provider APIs as described by Cloud Elements style "
    "polling configurations and POSTs signed notifications of created and updated records."
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="poller", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"poller {__version__}")
    parser.add_subparsers(dest="command", metavar="COMMAND")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on usage errors, 0 on --help
        return int(exc.code or 0)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    return EXIT_OK  # pragma: no cover - every command returns on its own
