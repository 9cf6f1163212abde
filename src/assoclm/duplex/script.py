"""A scripted live session that shows the protocol at work: listening, the turn-taking
decision, an interrupt, and a fact that is stated, updated and recalled.

    assoclm chat --checkpoint runs/duplex --script

Each user line is fed token by token. The decisions are drawn as one mark per token: ``·``
for listening and ``|`` for the user-end decision. If the model is still listening at the end
of a line, the script hands it the turn, and the transcript says so. One answer is cut after
a few pieces by a user interjection. The last questions check what the model remembers.

The statements, the correction and the questions use the wording of the synthetic memory
dialogues (``assoclm.duplex.sources.memory_dialogues``: "{S} lives in {v}.", a "Correction: "
prefix, "Where does {s} live?") with a person, relation and cities of their vocabularies: the
script asks the model to do what it was trained on, on a dialogue it has not seen.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from assoclm.duplex.metrics import answer_contains
from assoclm.duplex.session import DuplexSession


@dataclass(frozen=True)
class Turn:
    """One user line; ``interrupt_after`` cuts the model's answer after that many pieces with
    ``interjection``; ``expect`` is a value the answer should contain (a memory check)."""

    user: str
    interrupt_after: int | None = None
    interjection: str = ""
    expect: str | None = None
    kind: str = ""


SCRIPT: tuple[Turn, ...] = (
    Turn("My sister lives in Lisbon."),
    Turn("Tomas lives in Oslo."),
    Turn("Do you enjoy music?", interrupt_after=3, interjection="wait"),
    Turn("Correction: my sister lives in Nairobi."),
    Turn("Where does my sister live?", expect="Nairobi", kind="updated"),
    Turn("Where does Tomas live?", expect="Oslo", kind="untouched"),
)


def run_script(session: DuplexSession, write: Callable[[str], None],
               script: tuple[Turn, ...] = SCRIPT) -> dict:
    """Play ``script`` on ``session`` and write a transcript. Returns what happened:
    ``{"handovers", "interrupts", "yielded", "recall": [{"expected", "answer", "ok", ...}]}``.
    """
    summary: dict = {"handovers": 0, "interrupts": 0, "yielded": [], "recall": []}
    for turn in script:
        decisions = session.user_text(turn.user)
        marks = "".join("|" if d.user_end else "·" for d in decisions)
        finished = bool(decisions) and decisions[-1].user_end
        note = "turn over: answering" if finished else "still listening: turn handed over"
        write(f"you>   {turn.user}\n       {marks}  {note}\n")
        if not finished:
            session.end_turn()
            summary["handovers"] += 1
        pieces = []
        write("model> ")
        for piece in session.respond():
            pieces.append(piece)
            write(piece)
            if turn.interrupt_after is not None and len(pieces) == turn.interrupt_after:
                decisions = session.interrupt(turn.interjection)
                summary["interrupts"] += 1
                summary["yielded"].append(session.yielded)
                verdict = "yields ([MODEL_END])" if session.yielded else "does not yield"
                write(f"  <- you: {turn.interjection!r}\n       [interrupt: the model "
                      f"{verdict}, then listens]\n")
                if not (decisions and decisions[-1].user_end):
                    session.end_turn()
                write("model> ")
                pieces = [p for p in session.respond()]
                write("".join(pieces))
                break
        write("\n")
        if turn.expect is not None:
            answer = "".join(pieces)
            ok = answer_contains(answer, turn.expect)
            summary["recall"].append({"expected": turn.expect, "kind": turn.kind,
                                      "answer": answer, "ok": ok})
            write(f"       [memory ({turn.kind}): expected {turn.expect!r}: "
                  f"{'recalled' if ok else 'missed'}]\n")
    write(f"[state: {session.state_nbytes:,} bytes after {session.tokens_fed:,} tokens, the "
          "same as after the first]\n")
    return summary
