"""A full-duplex conversation in the terminal (the loop behind `assoclm chat`).

You type a line; the model listens to it token by token and shows whether it thinks you have
finished. If it has, it answers at once; if not, it keeps listening (type more, or an empty
line to hand over the turn). While it answers you can type a line and press Enter: the
answer stops there, the model yields and listens to you. Commands: ``/reset`` (new session,
empty memory), ``/save PATH``, ``/load PATH``, ``/quit``.

The loop itself (:func:`run_chat`) only needs a ``read_line(timeout)`` and a ``write``
function, so tests drive it with a script and the terminal drives it with ``select``.
"""

from __future__ import annotations

import select
import sys
from collections.abc import Callable

from assoclm.duplex.session import DuplexSession

ReadLine = Callable[[float | None], "str | None"]

LISTENING = "[listening]"
TURN_OVER = "[you have finished: answering]"
INTERRUPTED = "[interrupted: listening]"
HELP = ("Type and press Enter. An empty line hands the turn to the model. Type while it "
        "answers to interrupt. /reset /save PATH /load PATH /quit")


def _command(session: DuplexSession, line: str, write: Callable[[str], None]) -> bool:
    """Run a /command; returns False on /quit."""
    name, _, arg = line.partition(" ")
    if name == "/quit":
        return False
    if name == "/reset":
        session.reset()
        write("[new session: memory cleared]\n")
    elif name in ("/save", "/load") and arg.strip():
        try:
            if name == "/save":
                write(f"[saved {session.save(arg.strip())}]\n")
            else:
                session.load(arg.strip())
                write(f"[loaded {arg.strip()}]\n")
        except (OSError, ValueError) as exc:
            write(f"[{name[1:]} failed: {exc}]\n")
    else:
        write(f"[unknown command {line!r}] {HELP}\n")
    return True


def _answer(session: DuplexSession, read_line: ReadLine, write: Callable[[str], None]
            ) -> str | None:
    """Stream the answer; returns the line that interrupted it, if any."""
    write("model> ")
    for piece in session.respond():
        write(piece)
        typed = read_line(0.0)
        if typed is not None and typed.strip():
            session.interrupt()
            write(f"\n{INTERRUPTED}\n")
            return typed
    write("\n")
    return None


def run_chat(session: DuplexSession, read_line: ReadLine, write: Callable[[str], None]) -> None:
    """The chat loop. ``read_line(None)`` blocks for the next line (None at end of input);
    ``read_line(0.0)`` returns a line only if one is already waiting."""
    write(f"{HELP}\n")
    pending: str | None = None
    while True:
        if pending is None:
            write("you> ")
            line = read_line(None)
            if line is None:
                write("\n")
                return
        else:
            line, pending = pending, None
        line = line.rstrip("\n")
        if line.startswith("/"):
            if not _command(session, line.strip(), write):
                return
            continue
        if line:
            decisions = session.user_text(line if session.phase != "listening" else " " + line)
            finished = bool(decisions) and decisions[-1].user_end
        else:
            finished = session.phase == "listening" or session.phase == "idle"
            session.end_turn()
        if not finished:
            write(f"{LISTENING}\n")
            continue
        write(f"{TURN_OVER}\n")
        pending = _answer(session, read_line, write)


def terminal_read_line(timeout: float | None) -> str | None:
    """A line from stdin; with a timeout, only if one is ready (POSIX ``select``)."""
    if timeout is not None:
        ready, _, _ = select.select([sys.stdin], [], [], timeout)
        if not ready:
            return None
    line = sys.stdin.readline()
    return line if line else None
