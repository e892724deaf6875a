"""Command line of the air-gapped half (also the entry point of wheelferry-offline.pyz)."""

from __future__ import annotations

import argparse
from typing import Sequence

from wheelferry import __version__
from wheelferry.clikit import ArgumentParser, dispatch


def register(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add the offline commands (verify, install, audit, diff, export-index, probe)."""


def build_parser(prog: str = "wheelferry-offline") -> ArgumentParser:
    parser = ArgumentParser(prog=prog, description="Verify, install and audit wheelferry bundles offline.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND", parser_class=ArgumentParser)
    register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the offline zipapp."""
    return dispatch(build_parser(), argv)
