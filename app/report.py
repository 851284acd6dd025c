"""How the app words what goes wrong: one line for the status bar, also for errors that are bugs."""
from __future__ import annotations

import logging

log = logging.getLogger("app")


def one_line(message: str, fallback: str = "") -> str:
    """The first line of ``message``, stripped (the status bar shows one sentence)."""
    return message.strip().splitlines()[0] if message.strip() else fallback


def unexpected(err: BaseException) -> str:
    """One line for an error that is not an LpnError (a bug): the app reports it instead of aborting.

    An exception escaping QThread.run makes PyQt6 abort the whole process, recording included, so worker
    threads catch everything, log the traceback and show this line.
    """
    log.exception("unexpected error in a worker thread", exc_info=err)
    return f"unexpected error ({type(err).__name__}: {err}); the log has details"
