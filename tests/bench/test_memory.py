"""The CPU peak-memory meter counts live tensor storages exactly."""

from __future__ import annotations

import torch

from assoclm.bench.memory import peak_tensor_bytes, saved_for_backward_bytes


def test_peak_counts_what_is_alive_at_once():
    def work():
        a = torch.zeros(1000)
        b = torch.zeros(2000)
        del a
        c = torch.zeros(500)
        return b, c

    assert peak_tensor_bytes(work) == 4 * 3000


def test_views_and_in_place_ops_share_their_storage():
    def work():
        a = torch.zeros(1000)
        a.add_(1)
        _ = a[10:], a.view(10, 100)
        return a * 2

    assert peak_tensor_bytes(work) == 2 * 4000


def test_tensors_made_before_are_not_counted_but_backward_is():
    w = torch.randn(100, 100, requires_grad=True)

    def forward_only():
        with torch.no_grad():
            torch.tanh(torch.ones(64, 100) @ w)

    def with_backward():
        torch.tanh(torch.ones(64, 100) @ w).sum().backward()

    fwd = peak_tensor_bytes(forward_only)
    assert fwd < 3 * 64 * 100 * 4
    # backward adds at least w's gradient (40 kB) on top of the activations
    assert peak_tensor_bytes(with_backward) >= fwd + 100 * 100 * 4


def test_saved_for_backward_grows_with_depth():
    w = torch.randn(50, 50, requires_grad=True)

    def chain(n):
        def run():
            x = torch.ones(8, 50)
            for _ in range(n):
                x = torch.tanh(x @ w)
        return run

    two, three, four = (saved_for_backward_bytes(chain(n)) for n in (2, 3, 4))
    # every extra layer saves the same: its input, w and its output
    assert four - three == three - two == 2 * 8 * 50 * 4 + 50 * 50 * 4
