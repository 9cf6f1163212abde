"""The scripted demo session: with a model that follows the protocol it shows every step."""

from __future__ import annotations

import subprocess
import sys

from assoclm.duplex.protocol import Dialogue, Event
from assoclm.duplex.script import SCRIPT, run_script
from assoclm.duplex.session import DuplexSession
from assoclm.duplex.stream import build_stream
from tests.duplex.test_session import TOK, Oracle, tiny_model

ANSWERS = ["Okay.", "Noted.", None, "Updated.", "She lives in Nairobi.", "Oslo."]


def scripted_dialogue() -> Dialogue:
    events = []
    for turn, answer in zip(SCRIPT, ANSWERS):
        events.append(Event("user", turn.user))
        if turn.interrupt_after is not None:
            # ByteTokenizer: one piece per byte, so the cut falls after interrupt_after bytes
            events.append(Event("model", "I do like it"[: turn.interrupt_after],
                                interrupted=True))
            events.append(Event("user", turn.interjection))
            events.append(Event("model", "Go on."))
        else:
            events.append(Event("model", answer))
    return Dialogue("script", events)


def test_a_protocol_following_model_passes_every_step_of_the_script():
    stream = build_stream(scripted_dialogue(), TOK)
    oracle = Oracle(stream, TOK.vocab_size)
    out = []
    summary = run_script(DuplexSession(oracle, TOK), out.append)
    text = "".join(out)
    assert summary["handovers"] == 0 and summary["interrupts"] == 1
    assert summary["yielded"] == [True]
    assert [r["ok"] for r in summary["recall"]] == [True, True]
    assert [r["kind"] for r in summary["recall"]] == ["updated", "untouched"]
    assert "model> I d  <- you: 'wait'" in text and "yields ([MODEL_END])" in text
    assert "turn over: answering" in text and "recalled" in text
    assert oracle.fed == stream.input_ids.tolist()[:-1]  # exactly the trained protocol


def test_an_untrained_model_is_reported_honestly(tmp_path):
    from assoclm.checkpoint import save_checkpoint

    save_checkpoint(tmp_path, 0, tiny_model(), "propagator", TOK)
    proc = subprocess.run([sys.executable, "-m", "assoclm.cli", "chat", "--checkpoint",
                           str(tmp_path), "--script", "--max-response-tokens", "6",
                           "--temperature", "0"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("you>   ") == len(SCRIPT)
    assert "[recalled 0 of 2 facts" in proc.stdout  # random weights remember nothing
    assert "bytes after" in proc.stdout


def test_the_memory_lines_use_the_wording_the_memory_dialogues_teach():
    """The script claims to ask what the model was trained on: its statements, correction
    and questions must be instances of the memory dialogues' city templates, with a person,
    a relation and cities from their vocabularies."""
    from assoclm.duplex.sources import memory as d

    statements, questions, _ = d.TEMPLATES["city"]
    prefixes = [p for p, new_sentence in d.CORRECTIONS if not new_sentence]
    subjects = {"my sister": "my sister", "Tomas": "Tomas"}
    assert "sister" in d.RELATIONS and "Tomas" in d.NAMES

    def instances(templates, value=None):
        out = set()
        for t in templates:
            for s in subjects:
                p = "my sister's" if s == "my sister" else f"{s}'s"
                out.add(t.format(s=s, S=s[0].upper() + s[1:], p=p, P=p.capitalize(),
                                 v=value, a="a"))
        return out

    memory_turns = [t for t in SCRIPT if t.expect is not None]
    said = [t.user for t in SCRIPT if t.interrupt_after is None and t.expect is None]
    for line in said:
        value = line.rstrip(".").split()[-1]
        assert value in d.CITIES, line
        plain = line.removeprefix(next((p for p in prefixes if line.startswith(p)), ""))
        plain = plain[0].upper() + plain[1:]
        assert plain in instances(statements, value), line
    for turn in memory_turns:
        assert turn.user in instances(questions), turn.user
        assert turn.expect in d.CITIES
    assert any(line.startswith(tuple(prefixes)) for line in said), "no correction"
