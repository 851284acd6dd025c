"""The shared entry point of train's command-line tools: user errors are one line on stderr and exit 2."""
from __future__ import annotations

import argparse
import sys
from typing import Callable

from lpn_core.errors import LpnError


def cli_main(parser: argparse.ArgumentParser, run: Callable[[argparse.Namespace], int],
             argv: list[str] | None = None) -> int:
    """Parse ``argv``, call ``run``; an LpnError prints ``error: ...`` and returns 2."""
    args = parser.parse_args(argv)
    try:
        return run(args)
    except LpnError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
