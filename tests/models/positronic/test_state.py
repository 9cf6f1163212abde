"""PositronicState: round trip through its state dict, lane reset, and rewind equal to the
state that never saw the rewound tokens."""

from __future__ import annotations

import pytest
import torch

from assoclm.models.positronic import PositronicState
from assoclm.testing import assert_rel_close
from tests.models.positronic.test_model import TOL32, tiny, tokens


def test_state_round_trip_reset_and_rewind():
    model = tiny()
    x = tokens(T=9)
    with torch.no_grad():
        _, state = model(x[:, :6])
        loaded = PositronicState.from_state_dict(state.state_dict())
        a, _ = model(x[:, 6:], state)
        b, _ = model(x[:, 6:], loaded)
        assert torch.equal(a, b)
        # a reset lane is a fresh session; the other lane keeps its context
        reset = state.reset(torch.tensor([True, False]))
        c, _ = model(x[:, 6:], reset)
        fresh, _ = model(x[:1, 6:])
        assert_rel_close(c[:1], fresh, TOL32, "reset lane")
        assert_rel_close(c[1:], a[1:], TOL32, "kept lane")
    with pytest.raises(ValueError, match="drop"):
        state.rewind(99)
    with pytest.raises(ValueError, match="kv."):
        PositronicState.from_state_dict({"oops": torch.zeros(1)})


def test_rewind_equals_the_state_that_never_saw_the_drafts():
    model = tiny()
    x = tokens(T=10, seed=4)
    with torch.no_grad():
        _, state = model(x[:, :6])
        _, longer = model(torch.cat([x[:, 6:7], tokens(T=3, seed=9)], 1), state)
        rewound = longer.rewind(3)
        assert rewound.tokens_seen == 7 and rewound.kv.length == 7
        got, _ = model(x[:, 7:], rewound)
        want, _ = model(x)
    assert_rel_close(got, want[:, 7:], TOL32, "rewound then continued")
