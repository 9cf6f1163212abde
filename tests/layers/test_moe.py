"""Top-k mixture of SwiGLU experts against a per-token dense loop, and its balancing loss."""

from __future__ import annotations

import pytest
import torch

from assoclm.layers.moe import MoE
from assoclm.testing import assert_rel_close

TOL32 = 1e-5


def moe(dim=12, experts=5, top_k=2, seed=0) -> MoE:
    torch.manual_seed(seed)
    layer = MoE(dim, multiplier=2.0, num_experts=experts, top_k=top_k)
    for p in layer.parameters():
        torch.nn.init.normal_(p, std=0.4)
    return layer


def dense_reference(layer: MoE, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per token, in float64: every expert's output, the k best router logits softmaxed
    among themselves, the weighted sum; and the Switch balancing loss. x [N, D]."""
    E, k = layer.num_experts, layer.top_k
    out = torch.zeros(x.shape, dtype=torch.float64)
    chosen = torch.zeros(E, dtype=torch.float64)
    probs = torch.zeros(E, dtype=torch.float64)
    for n in range(x.shape[0]):
        logits = x[n].double() @ layer.router.weight.double().T
        probs += logits.softmax(-1) / x.shape[0]
        order = sorted(range(E), key=lambda e: -logits[e].item())[:k]
        w = torch.stack([logits[e] for e in order]).softmax(-1)
        for weight, e in zip(w, order):
            mlp = layer.experts[e]
            gate, up = (x[n].double() @ mlp.up.weight.double().T).chunk(2)
            y = (torch.nn.functional.silu(gate) * up) @ mlp.down.weight.double().T
            out[n] += weight * y
            chosen[e] += 1.0 / (x.shape[0] * k)
    return out, E * (chosen * probs).sum()


@pytest.mark.parametrize("N, E, k", [pytest.param(1, 3, 1, id="N1-E3-k1"),
                                     pytest.param(37, 5, 2, id="N37-E5-k2"),
                                     pytest.param(20, 4, 4, id="N20-E4-k4")])
def test_matches_the_dense_loop(N, E, k):
    layer = moe(experts=E, top_k=k)
    x = torch.randn(N, 12, generator=torch.Generator().manual_seed(1))
    y = layer(x)
    want, aux = dense_reference(layer, x)
    assert_rel_close(y, want, TOL32, "MoE output")
    assert_rel_close(layer.aux_loss, aux, TOL32, "balancing loss")
    assert int(layer.last_counts.sum()) == N * k


def test_keeps_leading_axes_and_gradients_reach_router_and_used_experts():
    layer = moe(experts=4, top_k=2)
    x = torch.randn(2, 9, 12, requires_grad=True)
    y = layer(x)
    assert y.shape == x.shape
    (y.square().sum() + layer.aux_loss).backward()
    assert layer.router.weight.grad.abs().sum() > 0
    for e, expert in enumerate(layer.experts):
        used = int(layer.last_counts[e]) > 0
        assert (expert.up.weight.grad is not None) == used, f"expert {e}"


def test_balancing_loss_is_one_for_a_uniform_router_and_near_e_when_collapsed():
    layer = moe(experts=4, top_k=1)
    with torch.no_grad():
        layer.router.weight.zero_()
    layer(torch.randn(64, 12))
    # P_e = 1/4 for every expert, so E · Σ f_e P_e = 1 whatever the dispatch
    assert abs(layer.aux_loss.item() - 1.0) < 1e-6
    with torch.no_grad():
        layer.router.weight[2] = 1.0
    # every token sends logit 12 to expert 2 and 0 elsewhere: f_2 = 1, P_2 ≈ 1
    layer(torch.ones(64, 12))
    assert layer.last_counts.tolist() == [0, 0, 64, 0]
    assert 3.99 < layer.aux_loss.item() <= 4.0


def test_rejects_bad_settings():
    with pytest.raises(ValueError, match=r"top_k must be in \[1, num_experts=3\]; got 4"):
        MoE(8, num_experts=3, top_k=4)
    with pytest.raises(ValueError, match="num_experts must be >= 1; got 0"):
        MoE(8, num_experts=0, top_k=1)
    with pytest.raises(ValueError, match="at least one token"):
        MoE(8, num_experts=2, top_k=1)(torch.zeros(0, 8))
