"""EAM: config checks, HRR injection, the equilibrium solve, JFB memory and MaskGIT decoding."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from assoclm.bench.memory import saved_for_backward_bytes
from assoclm.models.eam import EAMConfig, EAMModel
from assoclm.ops.hrr import unbind
from assoclm.ops.maskgit import training_mask
from assoclm.testing import assert_rel_close
from assoclm.train.eam import EAMRun, examples


def tiny(**overrides) -> EAMConfig:
    base = dict(vocab_size=11, max_len=10, hidden=32, num_heads=2, mlp_multiplier=2.0,
                solver_steps=6, tol=0.0, damping=0.0)
    return EAMConfig(**{**base, **overrides})


@pytest.mark.parametrize("overrides, field", [
    ({"hidden": 30, "num_heads": 4}, "multiple of num_heads"),
    ({"grad_tail": 7}, "grad_tail"),
    ({"binding": "rope"}, "binding"),
    ({"backward": "exact"}, "backward"),
    ({"anderson": 1}, "anderson"),
    ({"damping": 1.0}, "damping"),
    ({"beta": 0.0}, "beta"),
])
def test_config_names_the_bad_field(overrides, field):
    with pytest.raises(ValueError, match=field):
        tiny(**overrides)


def test_config_rejects_unknown_keys_and_round_trips():
    c = tiny(beta=0.5)
    assert EAMConfig.from_dict(c.to_dict()) == c
    with pytest.raises(ValueError, match="unknown key"):
        EAMConfig.from_dict({**c.to_dict(), "depth": 3})


def test_hrr_injection_binds_each_token_to_its_position():
    torch.manual_seed(0)
    model = EAMModel(tiny(hidden=64))
    tokens = torch.randint(0, 11, (3, 10))
    u = model.inject(tokens)
    filler = unbind(u, model.roles)
    cos = F.cosine_similarity(filler, model.embed(tokens), dim=-1)
    assert cos.min() > 0.99
    # the same token at two positions is bound to two different (near-orthogonal) vectors
    same = model.inject(torch.full((1, 10), 4))[0]
    off = F.cosine_similarity(same[:, None], same[None], dim=-1)
    assert off[~torch.eye(10, dtype=torch.bool)].abs().max() < 0.7


def test_learned_positions_ablation_has_no_roles():
    model = EAMModel(tiny(binding="learned"))
    assert model.roles is None and model.positions.weight.shape == (10, 32)
    assert "roles" not in model.state_dict()
    assert "roles" in EAMModel(tiny()).state_dict()


def test_untrained_block_is_contractive_and_solve_converges():
    torch.manual_seed(0)
    model = EAMModel(tiny(solver_steps=40, tol=1e-5)).eval()
    tokens = torch.randint(0, 12, (4, 10))
    logits, solve = model.solve(tokens, energies=True)
    assert logits.shape == (4, 10, 11)
    assert solve.converged and solve.residuals[-1] < 1e-5 < solve.residuals[0]
    assert len(solve.energies) == len(solve.residuals)
    # at the solution the block reproduces its input
    u = model.inject(tokens)
    z = torch.zeros_like(u)
    with torch.no_grad():
        for _ in range(len(solve.residuals)):
            z = model.block(z, u)
        ref = F.linear(model.norm(z), model.embed.weight[:11])
    assert_rel_close(logits, ref, 1e-5, "solve vs explicit iteration")


def test_solver_steps_override_sets_the_depth():
    model = EAMModel(tiny()).eval()
    _, solve = model.solve(torch.zeros(2, 10, dtype=torch.long), solver_steps=3)
    assert len(solve.residuals) == 3


def _saved_bytes(model: EAMModel, tokens: torch.Tensor) -> int:
    return saved_for_backward_bytes(lambda: model(tokens))


def test_grad_tail_one_keeps_training_memory_flat_in_solver_depth():
    tokens = torch.randint(0, 12, (4, 10))
    shallow = _saved_bytes(EAMModel(tiny(solver_steps=8)), tokens)
    deep = _saved_bytes(EAMModel(tiny(solver_steps=32)), tokens)
    assert deep == shallow
    full = _saved_bytes(EAMModel(tiny(solver_steps=32, grad_tail=32)), tokens)
    assert full > 10 * shallow


@pytest.mark.parametrize("backward", ["jfb", "implicit"])
def test_every_parameter_gets_a_gradient(backward):
    torch.manual_seed(0)
    model = EAMModel(tiny(backward=backward, solver_steps=10))
    logits, _ = model(torch.randint(0, 12, (2, 10)))
    logits.square().mean().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_bad_inputs_are_named():
    model = EAMModel(tiny())
    with pytest.raises(ValueError, match="state"):
        model(torch.zeros(1, 4, dtype=torch.long), state=object())
    with pytest.raises(ValueError, match="token ids"):
        model(torch.full((1, 4), 12))
    with pytest.raises(ValueError, match="max_len"):
        model(torch.zeros(1, 11, dtype=torch.long))
    with pytest.raises(ValueError, match="integer"):
        model(torch.zeros(1, 4))
    with pytest.raises(ValueError, match="maskable"):
        model.decode(torch.zeros(1, 4, dtype=torch.long), torch.ones(1, 5, dtype=torch.bool), 2)


def test_decode_fills_every_masked_position_and_keeps_the_rest():
    torch.manual_seed(0)
    model = EAMModel(tiny()).eval()
    tokens = torch.randint(0, 11, (5, 10))
    maskable = torch.zeros(5, 10, dtype=torch.bool)
    maskable[:, 6:] = True
    out = model.decode(tokens, maskable, steps=3)
    assert (out[~maskable] == tokens[~maskable]).all()
    assert (out < 11).all()


def test_decode_learns_copy():
    """A trivially learnable task: after a short training the parallel decode is right."""
    torch.manual_seed(0)
    run = EAMRun(task="copy", length=4, num_digits=4)
    model = EAMModel(EAMConfig(vocab_size=5, max_len=run.seq_len, hidden=32, num_heads=2,
                               mlp_multiplier=2.0, solver_steps=6, tol=0.0, damping=0.0))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    rng, g = np.random.default_rng(0), torch.Generator().manual_seed(0)
    for _ in range(400):
        tokens, maskable = examples(run, 64, rng)
        mask = training_mask(maskable, g)
        logits, _ = model(tokens.masked_fill(mask, model.config.mask_id))
        loss = F.cross_entropy(logits[mask], tokens[mask])
        opt.zero_grad()
        loss.backward()
        opt.step()
    tokens, maskable = examples(run, 200, np.random.default_rng(1))
    out = model.eval().decode(tokens, maskable, steps=4)
    seq_acc = (out == tokens).all(1).float().mean().item()
    assert seq_acc > 0.9, f"copy sequence accuracy {seq_acc:.3f}"
