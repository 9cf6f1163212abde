"""`assoclm generate`: continue a prompt with a trained checkpoint, streaming the text.

Plain generation bans every special id (control and chat). ``--chat`` wraps the prompt in
ChatML as a user message, lets the model sample ``<think>``, ``</think>`` and
``<|im_end|>``, stops at ``<|im_end|>`` and prints only the assistant's reply.
``--speculative`` hands greedy decoding to the model's own ``speculative_generate`` (a
model that declares the speculative capability and has draft heads).
"""

from __future__ import annotations

import argparse
import sys
import time

import torch
from torch import nn

from assoclm.checkpoint import CheckpointError, load_checkpoint
from assoclm.generation import (
    Generation,
    StreamDecoder,
    check_counts,
    check_sampling,
    generate,
)
from assoclm.io import resolve_device
from assoclm.models import capabilities
from assoclm.tokenizer import NUM_CONTROL, BaseTokenizer


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    # argparse would print the usage and exit; main() reports one line and returns 2.
    def error(self, message: str):
        raise _UsageError(message)


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="assoclm generate",
                description="Continue a prompt with a trained checkpoint, streaming the text.")
    p.add_argument("--checkpoint", required=True, metavar="DIR",
                   help="a run directory (uses its latest checkpoint) or a checkpoint directory")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--prompt", metavar="TEXT", help="the prompt text")
    source.add_argument("--prompt-file", metavar="PATH",
                        help="read the prompt from PATH (- = stdin)")
    p.add_argument("--max-new-tokens", type=int, default=200)
    p.add_argument("--temperature", type=float, default=0.8, help="0 = greedy")
    p.add_argument("--top-k", type=int, default=50, help="0 = off")
    p.add_argument("--top-p", type=float, default=0.95, help="1 = off")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N, or auto (cuda if any)")
    p.add_argument("--prefill-chunk", type=int, default=256,
                   help="most prompt tokens per parallel forward call")
    p.add_argument("--chat", action="store_true",
                   help="send the prompt as a user message (ChatML) and print only the "
                        "assistant's reply, up to <|im_end|>")
    p.add_argument("--system", metavar="TEXT", help="with --chat: a system message first")
    p.add_argument("--speculative", action="store_true",
                   help="greedy speculative decoding with the model's draft heads "
                        "(needs --temperature 0 and a positronic model with mtp_heads > 0)")
    return p


def _read_prompt(args: argparse.Namespace) -> str:
    if args.prompt is not None:
        return args.prompt
    if args.prompt_file == "-":
        return sys.stdin.read()
    try:
        with open(args.prompt_file, encoding="utf-8") as f:
            return f.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise _UsageError(f"cannot read --prompt-file {args.prompt_file}: {exc}") from None


def _device(name: str) -> torch.device:
    try:
        return resolve_device(name)
    except ValueError as exc:
        raise _UsageError(f"--{exc}") from None


def _stream(gen: Generation, decoder: StreamDecoder, out) -> str:
    """Write the text as it comes, flushing each piece; returns the stats line."""
    start = time.perf_counter()
    first = prefill_bytes = None
    for token_id in gen:
        if first is None:
            # time to the first token: the prefill plus one sampling
            first = time.perf_counter()
            prefill_bytes = gen.state.nbytes
        out.write(decoder.push(token_id))
        out.flush()
    end = time.perf_counter()
    out.write(decoder.flush() + "\n")
    out.flush()
    first = end if first is None else first
    decode_s = end - first
    # the rate counts the tokens after the first, whose time is in the prefill figure
    rate = f"{(gen.new_tokens - 1) / decode_s:.1f}" if gen.new_tokens > 1 and decode_s else "-"
    # no state when nothing was generated (no prefill either)
    state_bytes = gen.state.nbytes if gen.state is not None else None
    if state_bytes is None:
        state = "state size unknown"
    elif state_bytes == prefill_bytes:
        state = f"state {state_bytes} bytes (constant)"
    else:
        state = f"state {state_bytes} bytes ({prefill_bytes} after the prompt)"
    return (f"prompt {gen.prompt_tokens} tokens, {gen.new_tokens} new tokens, "
            f"prefill {first - start:.3f} s, {rate} tokens/s, {state}")


def _speculative(model: nn.Module, prompt_ids: list[int], max_new_tokens: int,
                 stop_ids: tuple[int, ...], banned: list[int], tokenizer: BaseTokenizer,
                 out) -> str:
    """Greedy decoding by the model's ``speculative_generate``; returns the stats line."""
    start = time.perf_counter()
    with torch.inference_mode():
        new_ids, stats = model.speculative_generate(prompt_ids, max_new_tokens,
                                                    stop_ids=stop_ids, banned_ids=banned)
    seconds = time.perf_counter() - start
    new_ids = [int(i) for i in new_ids]
    out.write(tokenizer.decode(new_ids) + "\n")
    out.flush()
    drafted, accepted, calls = (int(stats[k]) for k in ("drafted", "accepted", "forward_calls"))
    rate = f"{len(new_ids) / seconds:.1f}" if seconds > 0 else "-"
    acceptance = f"{accepted / drafted:.1%}" if drafted else "-"
    per_call = f"{len(new_ids) / calls:.2f}" if calls else "-"
    return (f"prompt {len(prompt_ids)} tokens, {len(new_ids)} new tokens, {seconds:.3f} s, "
            f"{rate} tokens/s, speculative: {accepted} of {drafted} drafted tokens accepted "
            f"({acceptance}), {calls} forward calls ({per_call} tokens per call)")


def _has_draft_heads(model: nn.Module) -> bool:
    # A model that can decode speculatively may be configured without draft heads.
    return "speculative" in capabilities(model) and model.config.mtp_heads > 0


def _run(args: argparse.Namespace) -> int:
    # Everything the user can get wrong is checked before the checkpoint is loaded.
    try:
        check_sampling(args.temperature, args.top_k, args.top_p)
        check_counts(args.max_new_tokens, args.seed, args.prefill_chunk)
    except ValueError as exc:
        raise _UsageError(str(exc)) from None
    if args.speculative and args.temperature > 0:
        raise _UsageError("--speculative decodes greedily; it needs --temperature 0 "
                          f"(got {args.temperature})")
    if args.system is not None and not args.chat:
        raise _UsageError("--system is the system message of a chat; it needs --chat")
    prompt = _read_prompt(args)
    if not prompt:
        raise _UsageError("the prompt is empty; give some text with --prompt or --prompt-file")
    device = _device(args.device)
    try:
        model, tokenizer, _ = load_checkpoint(args.checkpoint, device)
    except CheckpointError as exc:
        raise _UsageError(str(exc)) from None
    if args.chat and not tokenizer.has_chat:
        raise _UsageError(f"the tokenizer in {args.checkpoint} has no chat tokens (it was "
                          "saved before they were reserved); --chat needs a model trained "
                          "with them")
    if args.speculative and not _has_draft_heads(model):
        raise _UsageError(f"the model in {args.checkpoint} has no draft heads; --speculative "
                          "needs a positronic model with mtp_heads > 0")
    try:
        if args.chat:
            system = [] if args.system is None else [{"role": "system", "content": args.system}]
            prompt_ids = tokenizer.encode_chat([*system, {"role": "user", "content": prompt}])
        else:
            prompt_ids = tokenizer.encode(prompt)
    except ValueError as exc:
        raise _UsageError(str(exc)) from None
    if args.chat:
        # the reply may think and end its turn, but not open a new one
        stop_ids = (tokenizer.chat_id("<|im_end|>"),)
        banned = [*range(NUM_CONTROL), tokenizer.chat_id("<|im_start|>")]
    else:
        stop_ids, banned = (), list(tokenizer.special_ids)
        sys.stdout.write(prompt)
        sys.stdout.flush()
    if args.speculative:
        stats = _speculative(model, prompt_ids, args.max_new_tokens, stop_ids, banned,
                             tokenizer, sys.stdout)
    else:
        gen = generate(model, prompt_ids, args.max_new_tokens,
                       temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
                       seed=args.seed, prefill_chunk=args.prefill_chunk, banned_ids=banned,
                       stop_ids=stop_ids)
        stats = _stream(gen, StreamDecoder(tokenizer), sys.stdout)
    print(stats, file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    """``assoclm generate``: 0 on success, 2 on bad input (one line on stderr, no traceback)."""
    argv = sys.argv[1:] if argv is None else argv
    try:
        return _run(_parser().parse_args(argv))
    except SystemExit as exc:
        # --help
        return exc.code if isinstance(exc.code, int) else 0
    except _UsageError as exc:
        print(f"assoclm generate: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
