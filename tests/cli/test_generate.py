"""The `assoclm generate` command: plain, --chat, --speculative, and its usage errors."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
import torch
from torch import nn

from assoclm.checkpoint import load_checkpoint, save_checkpoint
from assoclm.cli.generate import main
from assoclm.generation import generate
from assoclm.models import PropagatorConfig, PropagatorLM
from assoclm.tokenizer import ByteTokenizer
from tests.test_generation import (
    CONTROL,
    END_THINK,
    IM_END,
    IM_START,
    THINK,
    TOK,
    Drafting,
    Scripted,
    tiny,
)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    run = tmp_path_factory.mktemp("run")
    save_checkpoint(run, 3, tiny(), "propagator", ByteTokenizer())
    return run


STATS = re.compile(r"prompt (\d+) tokens, (\d+) new tokens, prefill [\d.]+ s, "
                   r"([\d.]+|-) tokens/s, state (\d+) bytes \(constant\)")


def test_cli_prints_prompt_then_streams_the_generated_text(run_dir, capsys):
    text = "Hello, wörld"
    assert main(["--checkpoint", str(run_dir), "--prompt", text, "--max-new-tokens", "24",
                 "--seed", "3"]) == 0
    out, err = capsys.readouterr()
    model, tok, _ = load_checkpoint(run_dir)
    # the defaults: temperature 0.8, top-k 50, top-p 0.95; no control or chat id
    ids = list(generate(model, tok.encode(text), 24, temperature=0.8, top_k=50, top_p=0.95,
                        seed=3, banned_ids=tok.special_ids))
    assert out == text + tok.decode(ids) + "\n"
    assert len(out) > len(text) + 1
    stats = STATS.search(err)
    assert stats, f"no stats line in stderr: {err!r}"
    assert stats.group(1, 2) == ("13", "24")
    assert int(stats.group(4)) == model.init_state(1).nbytes


def test_cli_seed_reproducible_and_prompt_sources(run_dir, tmp_path, capsys, monkeypatch):
    def run(*flags: str) -> str:
        assert main(["--checkpoint", str(run_dir), "--max-new-tokens", "16", *flags]) == 0
        return capsys.readouterr().out

    a, b, c = (run("--prompt", "abc", "--seed", s) for s in ("7", "7", "8"))
    assert a == b and a != c
    path = tmp_path / "p.txt"
    path.write_text("abc", encoding="utf-8")
    assert run("--prompt-file", str(path), "--seed", "7") == a
    monkeypatch.setattr("sys.stdin", io.StringIO("abc"))
    assert run("--prompt-file", "-", "--seed", "7", "--device", "auto") == a
    ckpt = run_dir / "checkpoints" / "step-0000003"
    assert main(["--checkpoint", str(ckpt), "--max-new-tokens", "16", "--prompt", "abc",
                 "--seed", "7"]) == 0
    assert capsys.readouterr().out == a, "a checkpoint directory must work like its run"


BAD_CLI = [
    pytest.param(["--checkpoint", "{tmp}/nope", "--prompt", "x"], "checkpoint path not found",
                 id="missing-checkpoint"),
    pytest.param(["--checkpoint", "{tmp}", "--prompt", "x"], "is not a checkpoint",
                 id="not-a-checkpoint"),
    pytest.param(["--prompt", "x"], "the following arguments are required: --checkpoint",
                 id="no-checkpoint-flag"),
    pytest.param(["--checkpoint", "{run}"],
                 "one of the arguments --prompt --prompt-file is required", id="no-prompt"),
    pytest.param(["--checkpoint", "{run}", "--prompt", "x", "--prompt-file", "y"],
                 "not allowed with", id="two-prompts"),
    pytest.param(["--checkpoint", "{run}", "--prompt", ""], "the prompt is empty",
                 id="empty-prompt"),
    pytest.param(["--checkpoint", "{run}", "--prompt-file", "{tmp}/nope.txt"],
                 "cannot read --prompt-file", id="missing-prompt-file"),
    pytest.param(["--checkpoint", "{run}", "--prompt", "x", "--top-p", "0"],
                 "sampling.top_p must be a number in (0, 1]; got 0.0", id="top-p-0"),
    pytest.param(["--checkpoint", "{run}", "--prompt", "x", "--temperature", "-1"],
                 "sampling.temperature", id="temperature-negative"),
    pytest.param(["--checkpoint", "{run}", "--prompt", "x", "--top-k", "1.5"],
                 "--top-k: invalid int", id="top-k-float"),
    pytest.param(["--checkpoint", "{run}", "--prompt", "x", "--max-new-tokens", "-2"],
                 "generate.max_new_tokens", id="max-new-tokens-negative"),
    pytest.param(["--checkpoint", "{run}", "--prompt", "x", "--prefill-chunk", "0"],
                 "generate.prefill_chunk", id="prefill-chunk-0"),
    pytest.param(["--checkpoint", "{run}", "--prompt", "x", "--device", "toaster"],
                 "--device 'toaster'", id="bad-device"),
]


@pytest.mark.parametrize("argv,message", BAD_CLI)
def test_cli_bad_input_is_one_line_and_exit_code_2(run_dir, tmp_path, capsys, argv, message):
    argv = [a.format(run=run_dir, tmp=tmp_path) for a in argv]
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert err.startswith("assoclm generate: "), err
    assert message in err, err
    assert "Traceback" not in err and err.count("\n") == 1 and out == ""


def test_cli_help_exits_zero(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for flag in ("--prompt-file", "--chat", "--system", "--speculative"):
        assert flag in out


def use_model(monkeypatch, model: nn.Module, tok=TOK) -> None:
    """Make `assoclm generate` load ``model`` and ``tok`` whatever the checkpoint."""
    monkeypatch.setattr("assoclm.cli.generate.load_checkpoint",
                        lambda path, device: (model, tok, Path(path)))


def test_cli_plain_generation_never_samples_special_ids(monkeypatch, capsys):
    model = Scripted(TOK.encode("plain"), loud=list(TOK.special_ids))
    use_model(monkeypatch, model)
    # top-k 1 keeps the best id left after the ban
    assert main(["--checkpoint", "x", "--prompt", "go ", "--max-new-tokens", "5",
                 "--temperature", "1", "--top-k", "1"]) == 0
    assert capsys.readouterr().out == "go plain\n"


# ---- the command: --chat -----------------------------------------------------------------------

def test_cli_chat_on_a_checkpoint_prints_only_the_reply_up_to_im_end(run_dir, capsys):
    argv = ["--checkpoint", str(run_dir), "--prompt", "Hello, wörld", "--chat",
            "--max-new-tokens", "30", "--temperature", "0"]
    assert main(argv) == 0
    out, err = capsys.readouterr()
    model, tok, _ = load_checkpoint(run_dir)
    prompt_ids = tok.encode_chat([{"role": "user", "content": "Hello, wörld"}])
    gen = generate(model, prompt_ids, 30, temperature=0, banned_ids=[*CONTROL, IM_START],
                   stop_ids=[IM_END])
    reply = list(gen)
    # this untrained model happens to end its turn: greedy reaches <|im_end|> at token 9
    assert gen.stopped_by == IM_END and 0 < len(reply) < 30, f"no early stop: {reply}"
    assert out == tok.decode(reply) + "\n"
    assert "Hello" not in out and "<|im_end|>" not in out
    stats = STATS.search(err)
    assert stats and stats.group(1, 2) == (str(len(prompt_ids)), str(len(reply))), err


def test_cli_chat_formats_the_prompt_and_lets_the_model_think(monkeypatch, capsys):
    script = [THINK, *TOK.encode("hm"), END_THINK, *TOK.encode("Hi ü"), IM_END,
              *TOK.encode("never shown")]
    # the control ids and <|im_start|> are loud: banned in a reply, the script wins
    model = Scripted(script, loud=[*CONTROL, IM_START])
    use_model(monkeypatch, model)
    assert main(["--checkpoint", "x", "--chat", "--prompt", "Hello <|im_end|>", "--system",
                 "Be brief.", "--max-new-tokens", "40", "--temperature", "0.5"]) == 0
    out, err = capsys.readouterr()
    assert out == "<think>hm</think>Hi ü\n"
    assert model.prompt == TOK.encode_chat([{"role": "system", "content": "Be brief."},
                                            {"role": "user", "content": "Hello <|im_end|>"}])
    assert TOK.decode(model.prompt).endswith("<|im_start|>assistant\n")
    # the stop id is not counted
    reply = script[:script.index(IM_END)]
    assert f"prompt {len(model.prompt)} tokens, {len(reply)} new tokens," in err, err


def test_cli_chat_needs_a_tokenizer_with_chat_tokens(tmp_path, capsys):
    old = ByteTokenizer(chat=False)
    torch.manual_seed(0)
    model = PropagatorLM(PropagatorConfig(vocab_size=old.vocab_size, hidden_size=32,
                                          num_layers=1, memory_key_size=16,
                                          memory_value_size=16, chunk_size=16))
    save_checkpoint(tmp_path, 1, model, "propagator", old)
    assert main(["--checkpoint", str(tmp_path), "--prompt", "hi", "--chat"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and "Traceback" not in err
    assert f"the tokenizer in {tmp_path} has no chat tokens" in err
    # plain generation still works on the old checkpoint
    assert main(["--checkpoint", str(tmp_path), "--prompt", "hi", "--max-new-tokens", "3"]) == 0


# ---- the command: --speculative ----------------------------------------------------------------

SPEC_STATS = re.compile(r"prompt (\d+) tokens, (\d+) new tokens, [\d.]+ s, ([\d.]+|-) tokens/s, "
                        r"speculative: 6 of 8 drafted tokens accepted \(75\.0%\), "
                        r"3 forward calls \(([\d.]+) tokens per call\)")


def test_cli_speculative_hands_greedy_decoding_to_the_model(monkeypatch, capsys):
    model = Drafting(TOK.encode("drafted text"))
    use_model(monkeypatch, model)
    assert main(["--checkpoint", "x", "--prompt", "abc: ", "--speculative", "--temperature",
                 "0", "--max-new-tokens", "7"]) == 0
    out, err = capsys.readouterr()
    assert model.speculative_calls == [(TOK.encode("abc: "), 7, ())]
    assert out == "abc: drafted\n"
    stats = SPEC_STATS.search(err)
    assert stats, f"no speculative stats line in stderr: {err!r}"
    assert stats.group(1, 2, 4) == ("5", "7", "2.33")


def test_cli_speculative_chat_stops_at_im_end(monkeypatch, capsys):
    model = Drafting([*TOK.encode("Sure."), IM_END, *TOK.encode("more")])
    use_model(monkeypatch, model)
    assert main(["--checkpoint", "x", "--prompt", "Hi", "--chat", "--speculative",
                 "--temperature", "0"]) == 0
    out, _ = capsys.readouterr()
    prompt_ids = TOK.encode_chat([{"role": "user", "content": "Hi"}])
    assert model.speculative_calls == [(prompt_ids, 200, (IM_END,))]
    assert out == "Sure.\n"


class NoHeads(Drafting):
    """Has the method, but its config says it has no draft heads."""

    class config:
        mtp_heads = 0


BAD_SPECULATIVE = [
    pytest.param(None, ["--speculative"], "--speculative decodes greedily; it needs "
                 "--temperature 0 (got 0.8)", id="default-temperature"),
    pytest.param(None, ["--speculative", "--temperature", "0.3"], "(got 0.3)",
                 id="temperature-0.3"),
    pytest.param("checkpoint", ["--speculative", "--temperature", "0"],
                 "the model in {run} has no draft heads; --speculative needs a positronic model "
                 "with mtp_heads > 0", id="no-method"),
    pytest.param(NoHeads, ["--speculative", "--temperature", "0"],
                 "the model in {run} has no draft heads", id="mtp-heads-0"),
    pytest.param(None, ["--system", "be nice"], "--system is the system message of a chat; "
                 "it needs --chat", id="system-without-chat"),
]


@pytest.mark.parametrize("model,flags,message", BAD_SPECULATIVE)
def test_cli_speculative_and_chat_usage_errors(run_dir, monkeypatch, capsys, model, flags,
                                               message):
    if model not in (None, "checkpoint"):
        use_model(monkeypatch, model([10]))
    assert main(["--checkpoint", str(run_dir), "--prompt", "x", *flags]) == 2
    out, err = capsys.readouterr()
    assert err.startswith("assoclm generate: ") and err.count("\n") == 1, err
    assert message.format(run=run_dir) in err, err
    assert out == "" and "Traceback" not in err


def test_a_corrupt_checkpoint_is_one_line_naming_the_file(tmp_path, capsys):
    save_checkpoint(tmp_path, 1, tiny(), "propagator", ByteTokenizer())
    weights = tmp_path / "checkpoints" / "step-0000001" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    assert main(["--checkpoint", str(tmp_path), "--prompt", "x"]) == 2
    out, err = capsys.readouterr()
    assert err.startswith("assoclm generate: ") and err.count("\n") == 1, err
    assert f"{weights} is not a readable safetensors file" in err
    assert out == "" and "Traceback" not in err
