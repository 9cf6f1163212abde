"""The trainer: learning, exact resume, carried state, evaluation, checkpoints, schedule."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from assoclm.checkpoint import (
    resolve_checkpoint,
)
from assoclm.tokenizer import BPETokenizer, ByteTokenizer
from assoclm.train import TrainConfig, Trainer, TrainError, get_preset
from assoclm.train.evaluate import evaluate, token_byte_lengths
from assoclm.train.schedule import learning_rate

QUIET = {"progress": False, "log": lambda message: None}


def write_corpus(root, n_docs=6, lines=30, seed=0):
    """Small documents with learnable structure: counting sentences with varied names."""
    rng = np.random.default_rng(seed)
    names = ["anna", "bob", "carla", "dmitri", "eve", "femi"]
    root.mkdir(parents=True, exist_ok=True)
    for d in range(n_docs):
        text = "".join(
            f"{names[int(rng.integers(len(names)))]} counts {i % 10} {(i + 1) % 10}.\n"
            for i in range(lines)
        )
        (root / f"doc{d}.txt").write_text(text)
    return str(root / "*.txt")


def tiny_config(data, family="propagator", **changes) -> tuple[TrainConfig, dict]:
    model, train = get_preset("tiny", family)
    train.update(data=data, max_steps=12, eval_every=4, seed=3, model=family)
    train.update(changes)
    return TrainConfig(**train), model


def train_losses(run_dir):
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [json.loads(x)["loss"] for x in lines if json.loads(x)["kind"] == "train"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_corpus(tmp_path_factory.mktemp("corpus"))


def test_training_lowers_the_held_out_loss(corpus, tmp_path):
    config, model = tiny_config(corpus, max_steps=60, eval_every=30, learning_rate=1e-2)
    result = Trainer(config, model, tmp_path, **QUIET).run()
    evals = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()
             if json.loads(x)["kind"] == "eval"]
    assert [e["step"] for e in evals] == [30, 60]
    # An untrained byte model sits near ln(269) = 5.6 nats; this text is very predictable.
    assert result.val_loss < 2.5 and evals[-1]["val_loss"] < evals[0]["val_loss"]
    assert result.val_bpb == pytest.approx(result.val_loss / math.log(2))  # 1 byte per token
    assert (tmp_path / "loss.png").stat().st_size > 1000


@pytest.mark.parametrize(("family", "streaming", "traits"), [
    ("propagator", True, ()), ("propagator", False, ()), ("hebbian", True, ()),
    ("transformer", True, ()), ("positronic", True, ("hrm", "specialists", "controllers"))])
def test_resume_gives_the_losses_of_the_uninterrupted_run(corpus, tmp_path, family, streaming,
                                                          traits):
    config, model = tiny_config(corpus, family, streaming=streaming)
    if traits:  # the traits' test-time memories are carried and restored like the KV cache
        model = {**model, "traits": list(traits)}
    Trainer(config, model, tmp_path / "a", **QUIET).run()
    first = Trainer(config, model, tmp_path / "b", **QUIET).run(stop_after=5)
    assert first.interrupted and first.step == 5
    resumed = Trainer(config, model, tmp_path / "b", resume=tmp_path / "b", **QUIET)
    assert resumed.step == 5
    if streaming:  # the carried memory (or KV cache) came back too
        assert resumed.memory is not None
        assert sum(float(t.float().abs().sum()) for t in resumed.memory.state_dict().values()) > 0
    resumed.run()
    a, b = train_losses(tmp_path / "a"), train_losses(tmp_path / "b")
    assert len(a) == len(b) == 12
    assert a == b  # exactly: same weights, moments, data position, memory and schedule


def test_resume_into_a_new_directory_carries_the_metrics(corpus, tmp_path):
    config, model = tiny_config(corpus)
    Trainer(config, model, tmp_path / "a", **QUIET).run(stop_after=6)
    # A crash after the checkpoint can leave lines past it: they must not survive a resume.
    with open(tmp_path / "a" / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"kind": "train", "step": 7, "loss": 99.0}) + "\n")
    Trainer(config, model, tmp_path / "c", resume=tmp_path / "a", **QUIET).run()
    losses = train_losses(tmp_path / "c")
    assert len(losses) == 12 and 99.0 not in losses


def test_streaming_carries_memory_and_resets_lanes_at_new_documents(corpus, tmp_path):
    config, model = tiny_config(corpus, batch_size=3)
    trainer = Trainer(config, model, tmp_path, **QUIET)
    seen = []
    forward = trainer.model.forward

    def spy(tokens, state=None):
        logits, new_state = forward(tokens, state)
        seen.append((state, new_state))
        return logits, new_state

    trainer.model.forward = spy
    resets = []
    next_batch = trainer.stream.next_batch

    def spy_batch():
        batch = next_batch()
        resets.append(batch.reset.clone())
        return batch

    trainer.stream.next_batch = spy_batch
    for _ in range(40):
        trainer.train_step()
    assert resets[0].all() and any(r.any() for r in resets[1:])
    assert any((~r).any() for r in resets[1:])
    for step in range(1, 40):
        given, previous_out = seen[step][0], seen[step - 1][1]
        for lane in range(3):
            want = torch.zeros_like(previous_out.memories[0][lane]) if resets[step][lane] \
                else previous_out.memories[0][lane]
            assert torch.equal(given.memories[0][lane], want)
        assert not given.memories[0].requires_grad  # truncated BPTT: detached


def test_without_streaming_every_step_starts_from_an_empty_memory(corpus, tmp_path):
    config, model = tiny_config(corpus, streaming=False)
    trainer = Trainer(config, model, tmp_path, **QUIET)
    states = []
    forward = trainer.model.forward
    trainer.model.forward = lambda tokens, state=None: (states.append(state), forward(tokens,
                                                                                    state))[1]
    for _ in range(3):
        trainer.train_step()
    assert states == [None, None, None] and trainer.memory is None


def test_evaluate_counts_every_byte_and_carries_state():
    torch.manual_seed(0)
    tok = BPETokenizer.train(["the cat sat on the mat. " * 50, "a dog ran. " * 50], vocab_size=300)
    model_cfg, _ = get_preset("tiny")
    from assoclm.models import build_model

    model = build_model("propagator", {**model_cfg, "vocab_size": tok.vocab_size})
    docs = [tok.encode("the cat sat on the mat. a dog ran. " * 6), tok.encode("the dog sat.")]
    byte_lengths = token_byte_lengths(tok)
    got = evaluate(model, docs, byte_lengths, batch_size=2, seq_len=8, max_tokens=10_000)
    # Reference: each document in one forward pass, no windows.
    nats, n_bytes, n_tokens = 0.0, 0, 0
    for d in docs:
        ids = torch.tensor(d)[None]
        logits, _ = model(ids[:, :-1])
        nll = torch.nn.functional.cross_entropy(logits[0], ids[0, 1:], reduction="sum")
        nats += float(nll.detach())
        n_bytes += sum(len(tok.token_bytes(i)) for i in d[1:])
        n_tokens += len(d) - 1
    assert got["tokens"] == n_tokens
    assert got["loss"] == pytest.approx(nats / n_tokens, rel=1e-5)
    assert got["bpb"] == pytest.approx(nats / math.log(2) / n_bytes, rel=1e-5)
    # Cutting to an equal share per document.
    cut = evaluate(model, docs, byte_lengths, batch_size=2, seq_len=8, max_tokens=10)
    assert cut["tokens"] == 5 + min(5, len(docs[1]) - 1)


def test_bfloat16_autocast_trains(corpus, tmp_path):
    config, model = tiny_config(corpus, precision="bfloat16", max_steps=4)
    result = Trainer(config, model, tmp_path, **QUIET).run()
    assert math.isfinite(result.val_loss)


def test_one_document_is_cut_into_parts_for_validation(tmp_path):
    (tmp_path / "only.txt").write_text("".join(f"line {i}\n" for i in range(500)))
    config, model = tiny_config(str(tmp_path / "only.txt"), max_steps=2)
    messages = []
    trainer = Trainer(config, model, tmp_path / "run", progress=False, log=messages.append)
    assert len(trainer.val_ids) >= 1 and len(trainer.train_ids) >= 50
    assert any("cut into 100 parts" in m for m in messages)


def test_config_errors_name_the_problem(corpus, tmp_path):
    with pytest.raises(ValueError, match="set at least one limit"):
        TrainConfig(data=corpus)
    with pytest.raises(ValueError, match="precision must be one of"):
        TrainConfig(data=corpus, max_steps=1, precision="int8")
    with pytest.raises(ValueError, match="unknown key"):
        TrainConfig.from_dict({"max_steps": 1, "lr": 0.1})
    config, model = tiny_config(corpus, device="cuda:7" if not torch.cuda.is_available()
                                else "bogus")
    with pytest.raises(TrainError, match="device"):
        Trainer(config, model, tmp_path, **QUIET)


def test_schedule_warms_up_then_decays_to_the_floor():
    lrs = [learning_rate(s, s / 100, 1.0, 10, 0.1) for s in range(101)]
    assert lrs[0] == pytest.approx(0.1 * (0.5 + 0.5 * math.cos(0)) * 1.0 / 1, rel=0.2)
    assert all(a < b for a, b in zip(lrs[:9], lrs[1:10]))  # warm-up rises
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))  # then only falls
    assert lrs[-1] == pytest.approx(0.1)
    assert learning_rate(5, 2.0, 1.0, 0, 0.0) == 0.0  # progress clamps at 1


def test_only_the_newest_checkpoints_are_kept(corpus, tmp_path):
    config, model = tiny_config(corpus, checkpoint_every=2, keep_checkpoints=2, max_steps=8)
    Trainer(config, model, tmp_path, **QUIET).run()
    kept = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert kept == ["step-0000006", "step-0000008"]
    assert resolve_checkpoint(tmp_path).name == "step-0000008"


def test_evaluate_can_take_whole_documents_up_to_the_budget():
    from assoclm.models import build_model

    model_cfg, _ = get_preset("tiny")
    tok = ByteTokenizer()
    model = build_model("propagator", {**model_cfg, "vocab_size": tok.vocab_size})
    docs = [list(range(10, 30)), list(range(40, 50)), list(range(60, 90))]
    lengths = token_byte_lengths(tok)
    got = evaluate(model, docs, lengths, batch_size=2, seq_len=8, max_tokens=30,
                   whole_documents=True)
    assert got["tokens"] == 19 + 9  # the first two documents whole; the third would overflow
    one = evaluate(model, docs, lengths, batch_size=2, seq_len=8, max_tokens=5,
                   whole_documents=True)
    assert one["tokens"] == 19  # always at least one document
