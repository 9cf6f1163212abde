"""MaskGIT schedule and unmasking rounds."""

from __future__ import annotations

import math

import pytest
import torch

from assoclm.ops.maskgit import mask_ratio, masked_after, training_mask, unmask_step


def test_cosine_schedule_ends_and_decreases():
    assert mask_ratio(0.0) == 1.0 and abs(mask_ratio(1.0)) < 1e-12
    r = torch.linspace(0, 1, 50)
    assert (mask_ratio(r).diff() <= 0).all()
    assert abs(mask_ratio(0.5) - math.cos(math.pi / 4)) < 1e-12


@pytest.mark.parametrize("n, steps", [(8, 8), (8, 3), (16, 12), (5, 1)])
def test_masked_counts_follow_the_schedule(n, steps):
    total = torch.tensor([n])
    counts = [masked_after(t, steps, total).item() for t in range(steps + 1)]
    assert counts[0] == n and counts[-1] == 0
    assert all(a >= b for a, b in zip(counts, counts[1:]))
    for t, c in enumerate(counts):
        assert c == math.floor(n * math.cos(math.pi / 2 * t / steps) + 1e-9)


def test_training_mask_is_inside_maskable_and_covers_the_ratio_range():
    g = torch.Generator().manual_seed(0)
    maskable = torch.zeros(4000, 12, dtype=torch.bool)
    maskable[:, 4:] = True
    mask = training_mask(maskable, g)
    assert not (mask & ~maskable).any()
    counts = mask.sum(1)
    assert counts.min() >= 1 and counts.max() == 8
    # E[ceil(8 cos(πr/2))] for r ~ U(0,1) is about 8·2/π + 0.5 ≈ 5.6
    assert 5.0 < counts.float().mean() < 6.2
    # every maskable position gets masked about equally often
    freq = mask[:, 4:].float().mean(0)
    assert (freq.max() - freq.min()) < 0.05


def test_unmask_step_keeps_the_most_confident():
    mask_id = 9
    tokens = torch.tensor([[1, mask_id, mask_id, mask_id, mask_id]])
    masked = tokens == mask_id
    logits = torch.full((1, 5, 9), -10.0)
    # position: predicted token, confidence rising with position
    for pos, (tok, score) in {1: (3, 1.0), 2: (4, 2.0), 3: (5, 5.0), 4: (6, 8.0)}.items():
        logits[0, pos, tok] = score
    total = masked.sum(1)
    # after round 1 of 2: floor(4·cos(π/4)) = 2 stay masked, the two least confident
    out, still = unmask_step(tokens, masked, logits, 1, 2, total, mask_id)
    assert out.tolist() == [[1, mask_id, mask_id, 5, 6]]
    assert still.tolist() == [[False, True, True, False, False]]
    out, still = unmask_step(out, still, logits, 2, 2, total, mask_id)
    assert out.tolist() == [[1, 3, 4, 5, 6]] and not still.any()


def test_unmask_step_always_makes_progress():
    mask_id = 3
    tokens = torch.full((2, 6), mask_id)
    masked = torch.ones(2, 6, dtype=torch.bool)
    logits = torch.randn(2, 6, 3, generator=torch.Generator().manual_seed(0))
    # with 100 rounds the schedule alone would keep all 6 masked after round 1
    out, still = unmask_step(tokens, masked, logits, 1, 100, masked.sum(1), mask_id)
    assert (still.sum(1) == 5).all()
    assert ((out != mask_id) == ~still).all()


def test_shapes_are_checked():
    with pytest.raises(ValueError, match="agree"):
        unmask_step(torch.zeros(2, 3, dtype=torch.long), torch.ones(2, 3, dtype=torch.bool),
                    torch.zeros(2, 4, 5), 1, 2, torch.tensor([3, 3]), 4)
    with pytest.raises(ValueError, match="bool"):
        training_mask(torch.ones(2, 3))
