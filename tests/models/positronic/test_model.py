"""PositronicLM: streaming equivalence, cached greedy decoding against full recomputation,
the training objective (z-loss, draft heads), self-speculative decoding against greedy, a
checkpoint round trip with the generate command, and frozen memories."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from assoclm.models.positronic import PositronicConfig, PositronicLM
from assoclm.testing import assert_rel_close, assert_streaming_equivalence

TOL32 = 1e-5


def tiny(**kw) -> PositronicLM:
    torch.manual_seed(0)
    cfg = dict(vocab_size=61, hidden_size=48, num_layers=2, num_heads=6, num_kv_heads=2,
               attn_rank=16, ring_sizes=(4, 8, 16), max_context=128, rope_base=100.0,
               mtp_heads=3, init_std=0.1)
    cfg.update(kw)
    return PositronicLM(PositronicConfig(**cfg)).eval()


def tokens(B=2, T=30, vocab=61, seed=0) -> torch.Tensor:
    return torch.randint(0, vocab, (B, T), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("T", [1, 29])
def test_streaming_equivalence(T):
    model = tiny()
    x = tokens(T=T)
    cuts = sorted({0, 1, min(2, T), min(11, T), T})
    s_full, s_chunk, s_step = assert_streaming_equivalence(model, x, cuts, TOL32, "positronic")
    for s in (s_chunk, s_step):
        assert s.tokens_seen == T
        for a, b in zip(s.kv.keys, s_full.kv.keys):
            assert_rel_close(a, b, TOL32, "cached keys")


def test_cached_greedy_decoding_is_identical_to_full_recomputation():
    model = tiny(init_std=0.3)
    prompt = tokens(B=1, T=5, seed=3)
    with torch.no_grad():
        # cached: the prompt once, then one token at a time through the KV cache
        logits, state = model(prompt)
        cached, cached_logits = [], []
        nxt = logits[:, -1].argmax(-1)
        for _ in range(48):
            cached.append(int(nxt))
            step_logits, state = model.step(nxt, state)
            cached_logits.append(step_logits[0])
            nxt = step_logits.argmax(-1)
        # full recomputation: the whole sequence from scratch for every new token
        seq = prompt[0].tolist()
        full, full_logits = [], []
        for _ in range(48):
            out, _ = model(torch.tensor([seq]))
            full_logits.append(out[0, -1])
            full.append(int(out[0, -1].argmax()))
            seq.append(full[-1])
    assert cached == full
    assert len(set(cached)) > 3          # a non-trivial continuation
    assert_rel_close(torch.stack(cached_logits[:-1]), torch.stack(full_logits[1:]), TOL32,
                     "cached vs recomputed logits")


def test_training_loss_parts():
    model = tiny(mtp_heads=2, z_loss=1e-2)
    x, y = tokens(T=12, seed=1), tokens(T=12, seed=2)
    mask = torch.ones(2, 12)
    mask[0, 4] = 0
    loss, parts, logits, _ = model.training_loss(x, y, mask)
    logits = logits.detach()
    m = mask.flatten()
    ce = (F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none") * m).sum() / m.sum()
    z = (logits.logsumexp(-1).square().flatten() * m).sum() / m.sum()
    # head j predicts y[t + j + 1] from position t
    with torch.no_grad():
        h, _, _ = model.hidden(x, model.init_state(2))
    mtp = []
    for j, head in enumerate(model.draft_heads):
        s = j + 1
        with torch.no_grad():
            lg = model.head(head(h[:, :-s]))
        w = (mask[:, :-s] * mask[:, s:]).flatten()
        mtp.append((F.cross_entropy(lg.flatten(0, 1), y[:, s:].flatten(), reduction="none")
                    * w).sum() / w.sum())
    mtp = torch.stack(mtp).mean()
    assert parts["ce"] == pytest.approx(float(ce), rel=1e-5)
    assert parts["z"] == pytest.approx(float(z), rel=1e-5)
    assert parts["mtp"] == pytest.approx(float(mtp), rel=1e-5)
    assert float(loss.detach()) == pytest.approx(float(ce + 1e-2 * z + 0.3 * mtp), rel=1e-5)
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
    assert model.draft_heads[0].proj.weight.grad.abs().sum() > 0
    assert model.logit_scale.grad != 0


def test_draft_heads_start_as_the_main_head():
    model = tiny()
    h, _, _ = model.hidden(tokens(T=7), model.init_state(2))
    main = model.head(h)
    for drafts in model.draft_logits(h):
        assert torch.equal(drafts, main)


def greedy(model, prompt, n, stops=()):
    with torch.no_grad():
        logits, state = model(torch.tensor([prompt]))
        out = []
        for _ in range(n):
            token = int(logits[0, -1].argmax())
            if token in stops:
                break
            out.append(token)
            logits, state = model(torch.tensor([[token]]), state)
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_speculative_decoding_equals_greedy(seed):
    model = tiny(init_std=0.3, mtp_heads=4)
    torch.manual_seed(seed)
    # perturbed draft heads: some drafts accepted, some rejected
    for head in model.draft_heads:
        torch.nn.init.normal_(head.proj.weight, std=0.05 * seed)
    prompt = tokens(B=1, T=6, seed=seed)[0].tolist()
    want = greedy(model, prompt, 60)
    got, stats = model.speculative_generate(prompt, 60)
    assert got == want
    assert stats["forward_calls"] <= 61 and stats["accepted"] <= stats["drafted"]
    if seed == 0:   # untouched heads on a looping continuation: some drafts accepted
        assert stats["accepted"] > 0
    # with a stop token taken from the greedy continuation
    stop = want[17]
    assert model.speculative_generate(prompt, 60, stop_ids=(stop,))[0] == \
        greedy(model, prompt, 60, stops=(stop,))
    # exact length limits
    for n in (1, 2, 5):
        assert model.speculative_generate(prompt, n)[0] == want[:n]


def test_speculative_decoding_accepts_and_rejects_on_a_trained_pattern():
    # Train briefly on a periodic sequence: the draft heads learn it, so most drafts pass.
    model = tiny(mtp_heads=3)
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    period = torch.tensor([5, 9, 2, 7, 11, 3, 8])
    seq = period.repeat(6)[None]
    for _ in range(60):
        loss = model.training_loss(seq[:, :-1], seq[:, 1:], torch.ones(1, seq.shape[1] - 1))[0]
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    prompt = period.tolist()
    out, stats = model.speculative_generate(prompt, 28)
    assert out == greedy(model, prompt, 28)
    assert stats["accepted"] / stats["drafted"] > 0.5
    assert stats["forward_calls"] < 28 / 2


def test_speculative_decoding_never_picks_a_banned_id():
    model = tiny(init_std=0.3)
    prompt = tokens(B=1, T=6, seed=5)[0].tolist()
    want = greedy(model, prompt, 30)
    banned = sorted(set(want[:10]))
    got, _ = model.speculative_generate(prompt, 30, banned_ids=banned)
    assert not set(got) & set(banned)
    # the reference: greedy with the same ids masked
    with torch.no_grad():
        logits, state = model(torch.tensor([prompt]))
        ref = []
        for _ in range(30):
            token = int(logits[0, -1].index_fill(0, torch.tensor(banned), -math.inf).argmax())
            ref.append(token)
            logits, state = model(torch.tensor([[token]]), state)
    assert got == ref


def test_speculative_decoding_errors():
    with pytest.raises(ValueError, match="mtp_heads"):
        tiny(mtp_heads=0).speculative_generate([1, 2], 5)
    with pytest.raises(ValueError, match="prompt"):
        tiny().speculative_generate([], 5)


# ----------------------------------------------------------------------- checkpoint and CLI
def test_checkpoint_round_trip_and_generate_speculative_equals_greedy(tmp_path, capsys):
    from assoclm.checkpoint import load_checkpoint, save_checkpoint
    from assoclm.cli.generate import main as generate_main
    from assoclm.tokenizer import ByteTokenizer

    tok = ByteTokenizer()
    model = tiny(vocab_size=tok.vocab_size, init_std=0.3, traits=("hrm", "moe"))
    save_checkpoint(tmp_path, 1, model, "positronic", tok)
    loaded, _, _ = load_checkpoint(tmp_path)
    x = tokens(vocab=tok.vocab_size)
    assert torch.equal(loaded(x)[0], model(x)[0])
    plain = tiny(vocab_size=tok.vocab_size, init_std=0.3)
    save_checkpoint(tmp_path / "plain", 1, plain, "positronic", tok)
    outputs = []
    for extra in ([], ["--speculative"]):
        code = generate_main(["--checkpoint", str(tmp_path / "plain"), "--prompt", "hello",
                              "--max-new-tokens", "40", "--temperature", "0", *extra])
        assert code == 0
        captured = capsys.readouterr()
        outputs.append(captured.out)
    assert outputs[0] == outputs[1] and len(outputs[0]) > len("hello")
    assert "accepted" in captured.err


def test_memories_can_be_frozen_at_run_time():
    model = tiny(traits=("specialists", "controllers"))
    x = tokens(T=6)
    with torch.no_grad():
        _, before = model(x[:, :3])
        _, written = model(x[:, 3:], before)
        model.set_memories_frozen(True)
        _, frozen = model(x[:, 3:], before)
        model.set_memories_frozen(False)
        _, again = model(x[:, 3:], before)
    stores = [k for k in before.extras if "specialists" in k or "controller" in k]
    assert stores
    for k in stores:
        assert torch.equal(frozen.extras[k], before.extras[k])
        assert not torch.equal(written.extras[k], before.extras[k])
        assert torch.equal(again.extras[k], written.extras[k])
