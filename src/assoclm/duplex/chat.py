"""`assoclm chat`: a full-duplex conversation in the terminal.

You type a line; the model listens to it token by token and shows whether it thinks you have
finished. If it has, it answers at once; if not, it keeps listening (type more, or an empty
line to hand over the turn). While it answers you can type a line and press Enter: the
answer stops there, the model yields and listens to you. Commands: ``/reset`` (new session,
empty memory), ``/save PATH``, ``/load PATH``, ``/quit``.

The loop itself (:func:`run_chat`) only needs a ``read_line(timeout)`` and a ``write``
function, so tests drive it with a script and the terminal drives it with ``select``.
"""

from __future__ import annotations

import argparse
import select
import sys
from collections.abc import Callable

from assoclm.duplex.session import DuplexSession, run_end_margin

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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="assoclm chat", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True, help="a duplex_chat run or checkpoint")
    p.add_argument("--temperature", type=float, default=0.7)
    p.add_argument("--top-k", type=int, default=50)
    p.add_argument("--top-p", type=float, default=0.95)
    p.add_argument("--max-response-tokens", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--end-margin", type=float, default=None,
                   help="take the turn when the [USER_END] logit beats [LISTEN] by more than "
                        "this (default: log(1 / listen weight) of the run, which undoes the "
                        "training weights; 0: the larger logit wins)")
    p.add_argument("--script", action="store_true",
                   help="play the built-in scripted session (listening, turn-taking, an "
                        "interrupt, a fact updated and recalled) instead of reading stdin")
    args = p.parse_args(sys.argv[1:] if argv is None else argv)

    from assoclm.io import resolve_device
    from assoclm.train.checkpoint import CheckpointError, load_checkpoint

    try:
        model, tokenizer, ckpt = load_checkpoint(args.checkpoint, resolve_device(args.device))
        margin = run_end_margin(ckpt) if args.end_margin is None else args.end_margin
        session = DuplexSession(model, tokenizer, max_response_tokens=args.max_response_tokens,
                                temperature=args.temperature, top_k=args.top_k,
                                top_p=args.top_p, seed=args.seed, end_margin=margin)
    except (CheckpointError, ValueError) as exc:
        print(f"assoclm chat: {exc}", file=sys.stderr)
        return 2
    print(f"[{ckpt}: state {session.state_nbytes:,} bytes, constant; takes the turn when "
          f"[USER_END] beats [LISTEN] by {session.end_margin:.2f} nats]", file=sys.stderr)

    def write(text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()

    if args.script:
        from assoclm.duplex.script import run_script

        summary = run_script(session, write)
        recalled = sum(r["ok"] for r in summary["recall"])
        write(f"[recalled {recalled} of {len(summary['recall'])} facts; the model yielded to "
              f"{sum(summary['yielded'])} of {summary['interrupts']} interrupts]\n")
        return 0
    try:
        run_chat(session, terminal_read_line, write)
    except KeyboardInterrupt:
        write("\n")
    return 0
