"""The `wheelferry` command: thin wiring of every stage."""

from __future__ import annotations

from typing import Sequence

from wheelferry import __version__
from wheelferry.clikit import ArgumentParser, dispatch
from wheelferry.offline import cli as offline_cli


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog="wheelferry",
        description="Carry a Python dependency set across an air gap.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND", parser_class=ArgumentParser)
    offline_cli.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `wheelferry` console script."""
    return dispatch(build_parser(), argv)
