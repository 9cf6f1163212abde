"""The terminal chat loop, driven by a script, and `assoclm chat` as a user runs it."""

from __future__ import annotations

import subprocess
import sys

from assoclm.duplex.chat import INTERRUPTED, LISTENING, TURN_OVER, run_chat
from assoclm.duplex.protocol import Dialogue, Event
from assoclm.duplex.session import DuplexSession
from assoclm.duplex.stream import build_stream
from tests.duplex.test_session import TOK, Oracle, tiny_model


class Script:
    """read_line for run_chat: plain strings answer blocking reads; (text, k) is typed
    during an answer, at the k-th poll."""

    def __init__(self, items):
        self.items, self.polls = list(items), 0

    def __call__(self, timeout):
        if not self.items:
            return None
        head = self.items[0]
        if timeout is None:
            assert isinstance(head, str), f"a blocking read met {head!r}"
            return self.items.pop(0) + "\n"
        if isinstance(head, tuple):
            self.polls += 1
            if self.polls == head[1]:
                self.items.pop(0)
                self.polls = 0
                return head[0] + "\n"
        return None


def chat(model, script):
    out = []
    run_chat(DuplexSession(model, TOK), Script(script), out.append)
    return "".join(out)


def test_turns_and_decisions_are_shown():
    stream = build_stream(Dialogue("d", [Event("user", "hi"), Event("model", "abc"),
                                         Event("user", "no"), Event("model", "ok")]), TOK)
    oracle = Oracle(stream, TOK.vocab_size)
    text = chat(oracle, ["hi", "no", "/quit"])
    assert text.count(TURN_OVER) == 2
    assert "model> abc\n" in text and "model> ok\n" in text
    assert oracle.fed == stream.input_ids.tolist()[:-1]


def test_typing_during_an_answer_interrupts_it():
    dialogue = Dialogue("d", [Event("user", "hi"), Event("model", "ab", interrupted=True),
                              Event("user", "no"), Event("model", "ok")])
    stream = build_stream(dialogue, TOK)
    oracle = Oracle(stream, TOK.vocab_size)
    text = chat(oracle, ["hi", ("no", 2), "/quit"])
    assert f"model> ab\n{INTERRUPTED}\n" in text and "model> ok\n" in text
    assert oracle.fed == stream.input_ids.tolist()[:-1]  # exactly the trained stream


def test_listening_commands_and_end_of_input(tmp_path):
    model = tiny_model()
    text = chat(model, ["/nope", f"/save {tmp_path / 's.safetensors'}",
                        f"/load {tmp_path / 'missing'}", "/reset"])
    assert "unknown command '/nope'" in text and "[saved" in text
    assert "load failed" in text and "memory cleared" in text
    # An untrained model keeps listening or answers; an empty line always hands over.
    session = DuplexSession(model, TOK, max_response_tokens=4)
    out = []
    run_chat(session, Script(["hello", "", "/quit"]), out.append)
    assert TURN_OVER in "".join(out) and "model> " in "".join(out)
    assert LISTENING in "".join(out) or "".join(out).count(TURN_OVER) == 2


def test_assoclm_chat_end_to_end(tmp_path):
    from assoclm.checkpoint import save_checkpoint

    save_checkpoint(tmp_path, 0, tiny_model(), "propagator", TOK)
    proc = subprocess.run(
        [sys.executable, "-m", "assoclm.cli", "chat", "--checkpoint", str(tmp_path),
         "--max-response-tokens", "5"],
        input="hello there\n\n/quit\n", capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "you> " in proc.stdout and "model> " in proc.stdout and TURN_OVER in proc.stdout
    assert "bytes, constant" in proc.stderr
    bad = subprocess.run([sys.executable, "-m", "assoclm.cli", "chat", "--checkpoint",
                          str(tmp_path / "nope")], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "checkpoint path not found" in bad.stderr
