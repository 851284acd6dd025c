"""The shared entry point of train's command-line tools: user errors are one line on stderr and exit 2."""
from __future__ import annotations

import argparse
import sys
from typing import Callable

from lpn_core.errors import LpnError


def cli_main(parser: argparse.ArgumentParser, run: Callable[[argparse.Namespace], int],
             argv: list[str] | None = None, resume_hint: Callable[[argparse.Namespace], str] | None = None) -> int:
    """Parse ``argv``, call ``run``; an LpnError prints ``error: ...`` and returns 2, an unwritable path
    likewise; Ctrl-C prints ``interrupted`` (with ``resume_hint``'s advice) and returns 130."""
    args = parser.parse_args(argv)
    try:
        return run(args)
    except LpnError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        print(f"error: {err.strerror or err}: '{err.filename}'; check the path and its permissions", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted" + (f": {resume_hint(args)}" if resume_hint else ""), file=sys.stderr)
        return 130
