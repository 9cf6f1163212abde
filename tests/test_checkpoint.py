"""Checkpoints of every registered model: round trip, atomic saves, corrupt files named,
EAM in the same format, the optimizer state stored flat."""

from __future__ import annotations

import pytest
import torch

from assoclm.checkpoint import (
    CheckpointError,
    load_checkpoint,
    load_model,
    load_trainer_state,
    optimizer_state_from_flat,
    optimizer_state_to_flat,
    resolve_checkpoint,
    save_checkpoint,
    write_model,
)
from assoclm.models import EAMConfig, EAMModel, build_model
from assoclm.tokenizer import ByteTokenizer
from assoclm.train import get_preset


def test_checkpoint_round_trip_and_atomic_failure(tmp_path, monkeypatch):
    from assoclm.models import build_model

    model_cfg, _ = get_preset("tiny")
    tok = ByteTokenizer()
    model = build_model("propagator", {**model_cfg, "vocab_size": tok.vocab_size})
    first = save_checkpoint(tmp_path, 1, model, "propagator", tok)
    loaded, loaded_tok, where = load_checkpoint(tmp_path)
    assert where == first and loaded_tok.vocab_size == 269 and loaded_tok.has_chat
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), name

    def broken_save(self, path):
        raise OSError("disk full")

    monkeypatch.setattr(ByteTokenizer, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(tmp_path, 2, model, "propagator", tok)
    assert resolve_checkpoint(tmp_path) == first  # latest still points at the good one
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step-0000001"]

    with pytest.raises(CheckpointError, match="not found"):
        resolve_checkpoint(tmp_path / "nope")
    with pytest.raises(CheckpointError, match="is not a checkpoint"):
        resolve_checkpoint(tmp_path / "checkpoints")


def tiny_model() -> torch.nn.Module:
    model_cfg, _ = get_preset("tiny")
    return build_model("propagator", {**model_cfg, "vocab_size": ByteTokenizer().vocab_size})


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
@pytest.mark.parametrize("file", ["model.safetensors", "trainer_state.safetensors"])
def test_a_corrupt_file_is_a_checkpoint_error_naming_it(tmp_path, damage, file):
    ckpt = save_checkpoint(tmp_path, 1, tiny_model(), "propagator", ByteTokenizer(),
                           trainer_state={"step": 1}, trainer_tensors={"x": torch.ones(3)})
    path = ckpt / file
    data = path.read_bytes()
    path.write_bytes({"truncated": data[: len(data) // 2], "garbage": b"\x07not safetensors" * 9,
                      "empty": b""}[damage])
    with pytest.raises(CheckpointError, match=f"{file} is not a readable safetensors file"):
        if file == "model.safetensors":
            load_checkpoint(tmp_path)
        else:
            load_trainer_state(ckpt)


def test_eam_is_saved_and_loaded_like_every_model(tmp_path):
    torch.manual_seed(0)
    model = EAMModel(EAMConfig(vocab_size=5, max_len=10, hidden=16, num_heads=2)).eval()
    write_model(tmp_path, model, "eam")
    loaded, model_type, where = load_model(tmp_path)
    assert model_type == "eam" and where == tmp_path and isinstance(loaded, EAMModel)
    assert not loaded.training
    tokens = torch.randint(0, 5, (2, 10))
    assert torch.equal(model(tokens)[0], loaded(tokens)[0])
    # a token model's loader asks for the tokenizer an EAM run does not have
    with pytest.raises(CheckpointError, match="tokenizer"):
        load_checkpoint(tmp_path)


def test_an_unregistered_model_type_is_refused_before_anything_is_written(tmp_path):
    with pytest.raises(ValueError, match="unknown model 'mamba'"):
        write_model(tmp_path / "m", tiny_model(), "mamba")
    assert not (tmp_path / "m" / "model.safetensors").exists()


def test_the_optimizer_state_round_trips_flat():
    model = tiny_model()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.randint(0, 50, (2, 8)))[0].sum().backward()
    opt.step()
    meta, tensors = optimizer_state_to_flat(opt)
    assert all(name.startswith("optimizer.") for name in tensors)
    again = torch.optim.AdamW(model.parameters(), lr=1e-3)
    again.load_state_dict(optimizer_state_from_flat(meta, tensors))
    for index, entries in opt.state_dict()["state"].items():
        for key, value in entries.items():
            assert torch.equal(torch.as_tensor(again.state_dict()["state"][index][key]),
                               torch.as_tensor(value)), (index, key)
