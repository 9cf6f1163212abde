"""Every registered model keeps the written contracts of ``assoclm.models.protocols``, and
declares exactly the capabilities it has."""

from __future__ import annotations

import pytest
import torch

from assoclm.models import MODELS, build_model, capabilities
from assoclm.models.protocols import (
    CAPABILITIES,
    CausalLM,
    MaskedDenoiser,
    OwnsTrainingLoss,
    SpeculativeDecoder,
    State,
)
from assoclm.testing import assert_rel_close, assert_streaming_equivalence

VOCAB = 64
# A small config per registered model: a new model must add one here to be checked.
TINY = {
    "propagator": {"hidden_size": 32, "num_layers": 2, "memory_key_size": 16,
                   "memory_value_size": 16, "chunk_size": 4, "conv_size": 3},
    "hebbian": {"hidden_size": 32, "num_layers": 2, "memory_key_size": 16,
                "memory_value_size": 16, "chunk_size": 4},
    "transformer": {"hidden_size": 32, "num_layers": 2, "num_heads": 2, "max_context": 64},
    "positronic": {"hidden_size": 32, "num_layers": 2, "num_heads": 2, "num_kv_heads": 1,
                   "attn_rank": 16, "ring_sizes": [4, 8], "mtp_heads": 2, "max_context": 64,
                   "traits": ["hrm", "controllers"]},
    "recurrent_depth": {"hidden_size": 16, "num_heads": 2, "num_kv_heads": 1,
                        "train_depth": 2, "max_depth": 4},
    "eam": {"max_len": 12, "hidden": 16, "num_heads": 2, "solver_steps": 3},
}
PROTOCOLS = {"causal_lm": CausalLM, "training_loss": OwnsTrainingLoss,
             "speculative": SpeculativeDecoder, "masked_denoiser": MaskedDenoiser}


def tiny(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(name, {**TINY[name], "vocab_size": VOCAB}).eval()


def causal(name: str) -> bool:
    return "causal_lm" in MODELS[name].capabilities


def test_every_registered_model_is_checked_and_every_protocol_named():
    assert set(TINY) == set(MODELS), "add a tiny config for every registered model"
    assert set(PROTOCOLS) == set(CAPABILITIES)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_declared_capabilities_are_exactly_the_protocols_kept(name):
    model = tiny(name)
    declared = capabilities(model)
    assert declared == MODELS[name].capabilities
    for capability, protocol in PROTOCOLS.items():
        kept = isinstance(model, protocol)
        assert kept == (capability in declared), (
            f"{name}: {'keeps' if kept else 'does not keep'} {protocol.__name__} but "
            f"{'does not declare' if kept else 'declares'} {capability!r}")
    assert isinstance(model.config, MODELS[name].config)


@pytest.mark.parametrize("name", [n for n in sorted(MODELS) if causal(n)])
def test_state_keeps_the_state_contract(name):
    model = tiny(name)
    state = model.init_state(2)
    assert isinstance(state, State)
    tokens = torch.randint(0, VOCAB, (2, 5))
    logits, state = model(tokens, state)
    assert logits.shape == (2, 5, VOCAB) and isinstance(state, State)
    assert (state.batch_size, state.num_layers) == (2, model.init_state(2).num_layers)
    assert isinstance(state.nbytes, int) and state.nbytes > 0
    # state_dict -> from_state_dict gives back the same tensors
    again = type(state).from_state_dict(state.state_dict())
    assert again.state_dict().keys() == state.state_dict().keys()
    for key, tensor in state.state_dict().items():
        assert torch.equal(again.state_dict()[key], tensor), key
    # detach and to keep the class and the values
    with torch.enable_grad():
        _, grad_state = model.train()(tokens, None)
        model.eval()
    for copy in (grad_state.detach(), state.to("cpu")):
        assert type(copy) is type(state)
    assert not any(t.requires_grad for t in grad_state.detach().state_dict().values())
    # reset: lane 0 starts afresh, lane 1 goes on
    nxt = torch.randint(0, VOCAB, (2, 3))
    reset = state.reset(torch.tensor([True, False]))
    assert type(reset) is type(state)
    after, _ = model(nxt, reset)
    fresh, _ = model(nxt[:1], None)
    went_on, _ = model(nxt, state)
    assert_rel_close(after[:1], fresh, 1e-5, f"{name}: reset lane")
    assert_rel_close(after[1:], went_on[1:], 1e-5, f"{name}: kept lane")
    with pytest.raises(ValueError, match="mask"):
        state.reset(torch.tensor([True]))


@pytest.mark.parametrize("name", [n for n in sorted(MODELS) if causal(n)])
def test_causal_models_stream(name):
    model = tiny(name)
    tokens = torch.randint(0, VOCAB, (2, 9))
    assert_streaming_equivalence(model, tokens, [0, 1, 4, 9], 1e-5, name)


@pytest.mark.parametrize("name", [n for n in sorted(MODELS) if "masked_denoiser" in
                                  MODELS[n].capabilities])
def test_masked_denoisers_fill_only_masked_positions(name):
    model = tiny(name)
    tokens = torch.randint(0, VOCAB, (2, 8))
    maskable = torch.zeros(2, 8, dtype=torch.bool)
    maskable[:, 4:] = True
    logits, state = model(tokens)
    assert logits.shape == (2, 8, VOCAB) and state is None
    out = model.decode(tokens, maskable, steps=2)
    assert torch.equal(out[~maskable], tokens[~maskable])
    assert out.min() >= 0 and out.max() < VOCAB
