"""`assoclm chat`: a full-duplex conversation in the terminal.

You type a line; the model listens to it token by token and shows whether it thinks you have
finished. If it has, it answers at once; if not, it keeps listening (type more, or an empty
line to hand over the turn). While it answers you can type a line and press Enter: the
answer stops there, the model yields and listens to you. Commands: ``/reset`` (new session,
empty memory), ``/save PATH``, ``/load PATH``, ``/quit``.
"""

from __future__ import annotations

import argparse
import sys

from assoclm.checkpoint import CheckpointError, load_checkpoint
from assoclm.duplex.chat import run_chat, terminal_read_line
from assoclm.duplex.config import run_end_margin
from assoclm.duplex.script import run_script
from assoclm.duplex.session import DuplexSession
from assoclm.io import resolve_device


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
