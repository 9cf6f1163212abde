"""The live duplex session: the protocol it feeds, interrupts, constant state, save/load."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from assoclm.duplex.session import DuplexSession
from assoclm.models import PropagatorConfig, PropagatorLM
from assoclm.tokenizer import ByteTokenizer

TOK = ByteTokenizer()
C = {name: TOK.control_id(name) for name in TOK.control_tokens}


def tiny_model(seed=0):
    torch.manual_seed(seed)
    cfg = PropagatorConfig(vocab_size=TOK.vocab_size, hidden_size=32, num_layers=2,
                           memory_key_size=16, memory_value_size=16, chunk_size=16)
    return PropagatorLM(cfg).eval()


class Recorder:
    """Wraps a model and records every token it is stepped with."""

    def __init__(self, model):
        self.model, self.fed = model, []

    def __getattr__(self, name):
        return getattr(self.model, name)

    def step(self, token, state):
        self.fed.append(int(token[0]))
        return self.model.step(token, state)


def names(ids):
    return [TOK.control_tokens[i] if i < len(TOK.control_tokens) else TOK.decode([i])
            for i in ids]


def test_a_turn_feeds_the_protocol_stream():
    rec = Recorder(tiny_model())
    session = DuplexSession(rec, TOK, max_response_tokens=3)
    decisions = session.user_text("hi")
    assert [d.token for d in decisions] == ["h", "i"] and session.phase == "listening"
    assert all(0.0 <= d.p_user_end <= 1.0 for d in decisions)
    session.end_turn()
    pieces = list(session.respond())
    assert session.phase == "idle"
    fed = names(rec.fed)
    assert fed[:6] == ["[SESSION]", "[USER]", "h", "i", "[USER_END]", "[MODEL]"]
    # Every drawn token is fed before [MODEL_END] closes the turn (3 tokens at most).
    assert fed[-1] == "[MODEL_END]" and len(fed) - 7 == len("".join(pieces).encode()) <= 3


def test_interrupt_yields_and_listens():
    rec = Recorder(tiny_model())
    session = DuplexSession(rec, TOK, max_response_tokens=50)
    session.user_text("question")
    response = session.respond()
    shown = [next(response), next(response)]
    decisions = session.interrupt("no")
    assert [d.token for d in decisions] == ["n", "o"] and session.phase == "listening"
    assert list(response) == []  # the response stops
    fed = names(rec.fed)
    cut = fed.index("[USER_INTERRUPT]")
    # The two tokens the user saw were fed before the interrupt, as in training.
    assert fed[cut - 2 : cut] == shown
    assert fed[cut:] == ["[USER_INTERRUPT]", "[MODEL_END]", "[USER]", "n", "o"]
    assert isinstance(session.yielded, bool)
    # user_text while speaking is an interrupt too
    session.end_turn()
    response = session.respond()
    next(response)
    session.user_text("x")
    assert names(rec.fed)[-4:] == ["[USER_INTERRUPT]", "[MODEL_END]", "[USER]", "x"]


def test_state_size_is_constant():
    session = DuplexSession(tiny_model(), TOK)
    session.user_text("0123456789")
    small = session.state_nbytes
    for _ in range(100):
        session.user_text("x" * 100)
    assert session.tokens_fed > 10_000
    assert session.state_nbytes == small


def run_script(session, steps):
    out = []
    for kind, text in steps:
        if kind == "user":
            out.append([(d.token, d.user_end, round(d.p_user_end, 6))
                        for d in session.user_text(text)])
        else:
            out.append(list(itertools.islice(session.respond(), 20)))
    return out


def test_save_and_load_continue_identically(tmp_path):
    script = [("user", "hello there"), ("model", ""), ("user", "and then?"), ("model", "")]
    model = tiny_model()
    a = DuplexSession(model, TOK, max_response_tokens=8, temperature=1.0, seed=3)
    run_script(a, script[:2])
    path = a.save(tmp_path / "s.safetensors")
    rest_a = run_script(a, script[2:])
    b = DuplexSession(model, TOK, max_response_tokens=8, temperature=1.0, seed=99)
    b.user_text("something else entirely")
    b.load(path)
    assert run_script(b, script[2:]) == rest_a
    # A different state gives different decisions: the test can fail.
    c = DuplexSession(model, TOK, max_response_tokens=8, temperature=1.0, seed=3)
    assert run_script(c, script[2:]) != rest_a


def test_a_transformer_session_saves_and_loads_its_kv_cache(tmp_path):
    from assoclm.models import TransformerConfig, TransformerLM

    torch.manual_seed(0)
    model = TransformerLM(TransformerConfig(vocab_size=TOK.vocab_size, hidden_size=32,
                                            num_layers=2, num_heads=2, max_context=256)).eval()
    script = [("user", "hello there"), ("model", ""), ("user", "and then?"), ("model", "")]
    a = DuplexSession(model, TOK, max_response_tokens=8, temperature=1.0, seed=3)
    run_script(a, script[:2])
    path = a.save(tmp_path / "t.safetensors")
    rest_a = run_script(a, script[2:])
    b = DuplexSession(model, TOK, max_response_tokens=8, temperature=1.0, seed=99)
    b.load(path)
    assert run_script(b, script[2:]) == rest_a
    # A session of another model (a memory state, not a cache) refuses the file.
    with pytest.raises(ValueError):
        DuplexSession(tiny_model(), TOK).load(path)


def test_errors():
    session = DuplexSession(tiny_model(), TOK)
    with pytest.raises(RuntimeError, match="only possible while the model is speaking"):
        session.interrupt("x")
    with pytest.raises(ValueError, match="max_response_tokens"):
        DuplexSession(tiny_model(), TOK, max_response_tokens=0)
    with pytest.raises(FileNotFoundError, match="session file not found"):
        session.load("/nonexistent/session.safetensors")


class Oracle:
    """A fake model that, at the i-th token it is fed, predicts the i-th training target of
    ``stream``: driving a session with it must reproduce the stream's inputs exactly."""

    def __init__(self, stream, vocab_size):
        self.targets = stream.target_ids.tolist()
        self.vocab_size, self.fed = vocab_size, []
        self.weight = torch.nn.Parameter(torch.zeros(1))  # a device to live on

    def parameters(self):
        return iter([self.weight])

    def init_state(self, batch_size, device=None):
        from assoclm.models.state import MemoryState

        return MemoryState((torch.zeros(batch_size, 1, 2, 2),))

    def step(self, token, state):
        i = len(self.fed)
        self.fed.append(int(token[0]))
        logits = torch.zeros(1, self.vocab_size)
        logits[0, self.targets[i] if i < len(self.targets) else 0] = 10.0
        return logits, state


def test_a_live_session_feeds_exactly_the_stream_the_model_was_trained_on():
    from assoclm.duplex.protocol import Dialogue, Event
    from assoclm.duplex.stream import build_stream

    dialogue = Dialogue("d", [Event("user", "hi"), Event("model", "abc"),
                              Event("user", "no"), Event("model", "ok")])
    stream = build_stream(dialogue, TOK)
    oracle = Oracle(stream, TOK.vocab_size)
    session = DuplexSession(oracle, TOK)
    first = session.user_text("hi")
    assert [d.user_end for d in first] == [False, True] and session.user_finished
    assert "".join(session.respond()) == "abc"
    assert [d.user_end for d in session.user_text("no")] == [False, True]
    assert "".join(session.respond()) == "ok"
    # The stream ends with [SESSION_END], which a live session never sends.
    assert oracle.fed == stream.input_ids.tolist()[:-1]


def test_an_interrupt_feeds_what_training_saw():
    from assoclm.duplex.protocol import Dialogue, Event
    from assoclm.duplex.stream import build_stream

    dialogue = Dialogue("d", [Event("user", "hi"), Event("model", "ab", interrupted=True),
                              Event("user", "no"), Event("model", "ok")])
    stream = build_stream(dialogue, TOK)
    oracle = Oracle(stream, TOK.vocab_size)
    session = DuplexSession(oracle, TOK)
    session.user_text("hi")
    response = session.respond()
    assert next(response) + next(response) == "ab"
    session.interrupt("no")
    assert session.yielded  # the oracle predicts [MODEL_END] after [USER_INTERRUPT]
    assert "".join(session.respond()) == "ok"
    assert oracle.fed == stream.input_ids.tolist()[:-1]


def test_a_failed_save_leaves_no_file_behind(tmp_path, monkeypatch):
    import assoclm.io

    def broken(*args, **kwargs):
        raise OSError("disk full")

    session = DuplexSession(tiny_model(), TOK)
    # the write fails after the temporary file was created
    monkeypatch.setattr(assoclm.io.os, "fsync", broken)
    with pytest.raises(OSError, match="disk full"):
        session.save(tmp_path / "s.safetensors")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_a_corrupt_session_file_is_a_clear_error_naming_it(tmp_path, damage):
    session = DuplexSession(tiny_model(), TOK)
    session.user_text("hello")
    path = session.save(tmp_path / "s.safetensors")
    data = path.read_bytes()
    path.write_bytes({"truncated": data[: len(data) // 2], "garbage": b"\x00not a session" * 9,
                      "empty": b""}[damage])
    with pytest.raises(ValueError, match="s.safetensors is not a readable duplex session"):
        session.load(path)


def test_the_turn_taking_margin_decides():
    """The model takes the turn when [USER_END] beats [LISTEN] by more than end_margin, and
    p_user_end is the two-way probability after the margin."""
    model = tiny_model()
    probe = DuplexSession(model, TOK)
    probe.user_text("hello")
    gap = float(probe.logits[0, C["[USER_END]"]] - probe.logits[0, C["[LISTEN]"]])
    for margin in (gap - 0.01, gap + 0.01, 0.0):
        session = DuplexSession(model, TOK, end_margin=margin)
        last = session.user_text("hello")[-1]
        assert last.user_end == (gap > margin)
        assert session.user_finished == (gap > margin)
        assert last.p_user_end == pytest.approx(1 / (1 + math.exp(margin - gap)), rel=1e-5)
    with pytest.raises(ValueError, match="end_margin"):
        DuplexSession(model, TOK, end_margin=float("nan"))
