"""Generation: chunked prefill + one step per token against a naive full re-run, sampling
filters, stop ids and the streaming decoder (the `assoclm generate` command:
tests/cli/test_generate.py)."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from assoclm.generation import StreamDecoder, filter_logits, generate, sample_next
from assoclm.models import PropagatorConfig, PropagatorLM
from assoclm.tokenizer import CHAT_TOKENS, NUM_CONTROL, BPETokenizer, ByteTokenizer

TOK = ByteTokenizer()
# control ids, 256 bytes, chat ids
VOCAB = TOK.vocab_size
CONTROL = list(range(NUM_CONTROL))
IM_START, IM_END, THINK, END_THINK = (TOK.chat_id(name) for name in CHAT_TOKENS)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # Tiny matmuls gain nothing from threads; on a loaded 2-core box two OpenMP threads
    # waiting on each other make each one ~1000x slower.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny(write_from: str = "input") -> PropagatorLM:
    torch.manual_seed(0)
    model = PropagatorLM(PropagatorConfig(
        vocab_size=VOCAB, hidden_size=32, num_layers=2, memory_key_size=16,
        memory_value_size=16, chunk_size=16, write_from=write_from, write_rate=0.9,
        forget_rate=0.3, init_std=1.0,
    ))
    # Larger than the default init so that greedy text does not repeat one token and the
    # memory (hence the prefill path) shapes the logits.
    with torch.no_grad():
        for block in model.blocks:
            block.scale_read.fill_(1.0)
            block.gate_bias.normal_()
    return model.eval()


def prompt(T: int, seed: int = 0) -> list[int]:
    """T random byte ids."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(NUM_CONTROL, NUM_CONTROL + 256, (T,), generator=g).tolist()


def greedy_reference(model: nn.Module, prompt_ids: list[int], n: int) -> list[int]:
    """Re-run the full forward over the whole sequence for every new token; argmax, no control."""
    ids = list(prompt_ids)
    with torch.no_grad():
        for _ in range(n):
            logits, _ = model(torch.tensor([ids]))
            last = logits[0, -1].clone()
            last[CONTROL] = -math.inf
            ids.append(int(last.argmax()))
    return ids[len(prompt_ids):]


def first_difference(a: list[int], b: list[int]) -> str:
    i = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    return f"first difference at token {i}: {a[i:i + 5]} vs expected {b[i:i + 5]}"


class Spy(nn.Module):
    """Wraps a model and records every call: its kind, size, grad mode and the state size."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner
        self.calls: list[tuple[str, int]] = []
        self.nbytes: list[int] = []
        self.inference_mode: list[bool] = []

    def _record(self, kind: str, size: int, state) -> None:
        self.calls.append((kind, size))
        self.nbytes.append(state.nbytes)
        self.inference_mode.append(torch.is_inference_mode_enabled())

    def init_state(self, batch_size, device=None):
        state = self.inner.init_state(batch_size, device)
        self._record("init", batch_size, state)
        return state

    def forward(self, tokens, state=None):
        logits, state = self.inner(tokens, state)
        self._record("forward", tokens.shape[1], state)
        return logits, state

    def step(self, token, state):
        logits, state = self.inner.step(token, state)
        self._record("step", token.shape[0], state)
        return logits, state


class FixedLogits(nn.Module):
    """The same next-token logits whatever the input; the state is a dummy tensor."""

    def __init__(self, logits: torch.Tensor):
        super().__init__()
        self.register_buffer("logits", logits)

    def init_state(self, batch_size, device=None):
        return torch.zeros(batch_size, device=device)

    def forward(self, tokens, state=None):
        return self.logits.expand(*tokens.shape, -1), state

    def step(self, token, state):
        return self.logits.expand(token.shape[0], -1), state


class Scripted(nn.Module):
    """Says ``script`` one id after the other (logit 5), whatever it reads, while the ``loud``
    ids always get logit 10: only banning them lets the script through.

    Records the prompt it was prefilled with and every ``speculative_generate`` call.
    """

    capabilities = frozenset({"causal_lm"})

    def __init__(self, script: list[int], loud: list[int] = (), vocab: int = VOCAB):
        super().__init__()
        self.script, self.loud, self.vocab = list(script), list(loud), vocab
        self.prompt: list[int] = []
        self.speculative_calls: list[tuple] = []
        self._said = 0

    def _logits(self) -> torch.Tensor:
        logits = torch.zeros(self.vocab)
        logits[self.loud] = 10.0
        logits[self.script[min(self._said, len(self.script) - 1)]] = 5.0
        return logits

    def init_state(self, batch_size, device=None):
        self.prompt, self._said = [], 0
        return torch.zeros(batch_size, device=device)

    def forward(self, tokens, state=None):
        self.prompt += tokens[0].tolist()
        return self._logits().expand(*tokens.shape, -1), state

    def step(self, token, state):
        self._said += 1
        return self._logits().expand(token.shape[0], -1), state


class Drafting(Scripted):
    """A stand-in for a model with draft heads: ``speculative_generate`` returns the script
    up to the first stop id."""

    capabilities = frozenset({"causal_lm", "speculative"})

    class config:
        mtp_heads = 4

    def speculative_generate(self, prompt_ids, max_new_tokens, stop_ids=(), banned_ids=()):
        self.speculative_calls.append((list(prompt_ids), max_new_tokens, tuple(stop_ids)))
        ids = self.script[:max_new_tokens]
        stops = [k for k, i in enumerate(ids) if i in stop_ids]
        ids = ids[:stops[0]] if stops else ids
        return ids, {"drafted": 8, "accepted": 6, "forward_calls": 3}


# ---- generate: prefill + step path against the naive re-run ----------------------------------

# (write_from, prompt length, prefill chunk); "output" models prefill with a per-token scan
# inside forward, so fewer of those cases suffice.
CASES = [("input", 1, 16), ("input", 7, 16), ("input", 45, 16), ("input", 45, 7),
         ("input", 45, 1), ("input", 45, 256), ("output", 7, 16), ("output", 45, 7)]


@pytest.mark.parametrize("write_from,T,chunk", CASES,
                         ids=[f"{w}-T{t}-chunk{c}" for w, t, c in CASES])
def test_greedy_generate_equals_full_rerun_reference(write_from, T, chunk):
    model = tiny(write_from)
    ids = prompt(T)
    got = list(generate(model, ids, 20, temperature=0, prefill_chunk=chunk))
    expected = greedy_reference(model, ids, 20)
    assert len(set(expected)) > 1, f"degenerate model: greedy repeats one token {expected[:3]}"
    assert got == expected, first_difference(got, expected)


def test_prefill_is_chunked_and_each_new_token_is_one_step():
    spy = Spy(tiny())
    T, chunk, n = 45, 16, 12
    gen = generate(spy, prompt(T), n, temperature=1.0, prefill_chunk=chunk, seed=1)
    assert spy.calls == [], "generate() must not touch the model before the first next()"
    received = []
    for k, token_id in enumerate(gen, start=1):
        received.append(token_id)
        steps = [c for c in spy.calls if c[0] == "step"]
        assert len(steps) == k - 1, f"after {k} tokens the model made {len(steps)} steps"
        assert not torch.is_inference_mode_enabled(), "inference mode leaked to the caller"
    assert len(received) == n
    forwards = [size for kind, size in spy.calls if kind == "forward"]
    assert forwards == [16, 16, 13], f"prefill forward sizes {forwards}"
    assert spy.calls[0] == ("init", 1)
    assert spy.calls[1 + len(forwards):] == [("step", 1)] * (n - 1)
    assert all(spy.inference_mode), "a model call ran outside inference mode"
    assert len(set(spy.nbytes)) == 1, f"state size changed: {sorted(set(spy.nbytes))}"
    assert gen.state.nbytes == spy.nbytes[0] and gen.new_tokens == n and gen.prompt_tokens == T


def test_zero_new_tokens_does_no_work():
    spy = Spy(tiny())
    assert list(generate(spy, prompt(5), 0)) == []
    assert spy.calls == []


# ---- sampling ----------------------------------------------------------------------------------

def test_same_seed_same_ids_different_seed_different_ids():
    model, ids = tiny(), prompt(9)
    kw = dict(temperature=1.5, top_k=0, top_p=1.0)
    a = list(generate(model, ids, 30, seed=1, **kw))
    b = list(generate(model, ids, 30, seed=1, **kw))
    c = list(generate(model, ids, 30, seed=2, **kw))
    assert a == b, first_difference(a, b)
    assert a != c, "seeds 1 and 2 gave the same 30 tokens"


def test_top_k_one_is_greedy():
    model, ids = tiny(), prompt(20)
    greedy = list(generate(model, ids, 20, temperature=0))
    top1 = list(generate(model, ids, 20, temperature=1.0, top_k=1, top_p=1.0, seed=5))
    assert top1 == greedy, first_difference(top1, greedy)


PROBS = [0.5, 0.3, 0.15, 0.05]
TOP_P = [(0.01, {0}), (0.5, {0}), (0.51, {0, 1}), (0.8, {0, 1}), (0.81, {0, 1, 2}),
         (0.95, {0, 1, 2}), (0.96, {0, 1, 2, 3}), (1.0, {0, 1, 2, 3})]


@pytest.mark.parametrize("top_p,kept", TOP_P, ids=[f"p{p}" for p, _ in TOP_P])
def test_top_p_keeps_the_smallest_set_reaching_p(top_p, kept):
    probs = torch.tensor([PROBS])
    log_probs = filter_logits(probs.log(), temperature=1.0, top_k=0, top_p=top_p)
    finite = set(torch.isfinite(log_probs[0]).nonzero().flatten().tolist())
    assert finite == kept, f"top_p={top_p} kept {sorted(finite)}, expected {sorted(kept)}"
    ids = sorted(kept)
    want = probs[0, ids] / probs[0, ids].sum()
    assert torch.allclose(log_probs[0, ids].exp(), want, atol=1e-6), "not renormalised"
    # 2,000 draws: every kept id shows up (p >= 0.05), no other one does.
    g = torch.Generator().manual_seed(0)
    drawn = sample_next(probs.log().expand(2000, -1), temperature=1.0, top_k=0, top_p=top_p,
                        generator=g)
    assert set(drawn.tolist()) == kept


def test_top_k_keeps_exactly_k_ids_and_ties_keep_the_first():
    logits = torch.tensor([[1.0, 5.0, 3.0, 5.0, 2.0]])
    kept = {k: set(torch.isfinite(filter_logits(logits, 1.0, k, 1.0)[0]).nonzero()
                   .flatten().tolist()) for k in (1, 2, 3, 5, 9)}
    assert len(kept[1]) == 1 and kept[1] <= {1, 3}
    assert kept[2] == {1, 3} and kept[3] == {1, 2, 3}
    assert kept[5] == kept[9] == set(range(5)), "top_k >= V must keep everything"


def test_temperature_scales_and_zero_is_one_hot_argmax():
    logits = torch.randn(3, 11, generator=torch.Generator().manual_seed(0))
    got = filter_logits(logits, temperature=2.0)
    assert torch.allclose(got, (logits / 2).log_softmax(-1), atol=1e-6)
    greedy = filter_logits(logits, temperature=0)
    assert torch.equal(greedy.exp(), nn.functional.one_hot(logits.argmax(-1), 11).float())
    assert torch.equal(sample_next(logits, temperature=0), logits.argmax(-1))


def test_banned_ids_are_never_sampled():
    logits = torch.zeros(1000, 6)
    logits[:, 0] = 20.0
    logits[:, 4] = 19.0
    g = torch.Generator().manual_seed(0)
    drawn = sample_next(logits, temperature=1.0, generator=g, banned_ids=[0, 4])
    assert not {0, 4} & set(drawn.tolist())
    assert sample_next(logits[:1], temperature=0, banned_ids=[0]).tolist() == [4]


def test_generate_bans_control_ids_by_default():
    logits = torch.zeros(VOCAB)
    logits[:NUM_CONTROL] = 10.0
    model = FixedLogits(logits)
    plain = list(generate(model, [20, 21], 50, temperature=1.0, top_k=0, top_p=1.0))
    assert min(plain) >= NUM_CONTROL, f"sampled control ids {[i for i in plain if i < 9]}"
    free = list(generate(model, [20, 21], 50, temperature=1.0, top_k=0, top_p=1.0,
                         banned_ids=()))
    assert min(free) < NUM_CONTROL, "banned_ids=() must allow the control ids"


def test_stop_id_ends_the_generation_and_is_not_returned():
    script = [*TOK.encode("abc"), IM_END, *TOK.encode("zz")]
    model = Scripted(script)
    gen = generate(model, [20, 21], 50, temperature=0, stop_ids=[IM_END])
    assert list(gen) == TOK.encode("abc")
    assert gen.stopped_by == IM_END and gen.new_tokens == 3
    assert next(gen, None) is None, "a stopped generation must stay stopped"
    # without the stop id, the same script runs on to the token limit
    assert len(list(generate(Scripted(script), [20, 21], 10, temperature=0))) == 10
    stopped_at_once = generate(Scripted([IM_END]), [20], 5, temperature=0, stop_ids=[IM_END])
    assert list(stopped_at_once) == [] and stopped_at_once.stopped_by == IM_END


BAD_SAMPLING = [
    (dict(temperature=-0.5), "sampling.temperature must be a number in [0, inf); got -0.5"),
    (dict(temperature=math.nan), "sampling.temperature"),
    (dict(top_k=-1), "sampling.top_k must be an integer >= 0; got -1"),
    (dict(top_k=2.5), "sampling.top_k must be an integer >= 0; got 2.5"),
    (dict(top_k=True), "sampling.top_k"),
    (dict(top_p=0), "sampling.top_p must be a number in (0, 1]; got 0"),
    (dict(top_p=1.5), "sampling.top_p must be a number in (0, 1]; got 1.5"),
    (dict(banned_ids=[6]), "banned id 6 is outside the vocabulary [0, 5)"),
    (dict(banned_ids=range(5)), "banned ids cover the whole vocabulary of 5"),
]


@pytest.mark.parametrize("kwargs,message", BAD_SAMPLING,
                         ids=[f"{next(iter(k))}={next(iter(k.values()))}" for k, _ in BAD_SAMPLING])
def test_bad_sampling_arguments_name_value_and_range(kwargs, message):
    args = dict(temperature=1.0, top_k=0, top_p=1.0) | kwargs
    for fn in (filter_logits, sample_next):
        with pytest.raises(ValueError) as err:
            fn(torch.zeros(2, 5), **args)
        assert message in str(err.value), f"{fn.__name__}: {err.value}"


BAD_GENERATE = [
    pytest.param(dict(prompt_ids=[]), "the prompt is empty", id="empty-prompt"),
    pytest.param(dict(prompt_ids=[3, -1]), "prompt ids must be integers >= 0; got -1",
                 id="negative-prompt-id"),
    pytest.param(dict(max_new_tokens=-1),
                 "generate.max_new_tokens must be an integer >= 0; got -1", id="max_new_tokens"),
    pytest.param(dict(prefill_chunk=0), "generate.prefill_chunk must be an integer >= 1; got 0",
                 id="prefill_chunk"),
    pytest.param(dict(seed=-3), "generate.seed must be an integer >= 0; got -3", id="seed"),
    pytest.param(dict(top_p=0.0), "sampling.top_p", id="top_p"),
    pytest.param(dict(stop_ids=[-1]), "stop ids must be integers >= 0; got -1", id="stop_ids"),
]


@pytest.mark.parametrize("kwargs,message", BAD_GENERATE)
def test_generate_rejects_bad_arguments_at_the_call(kwargs, message):
    args = dict(model=tiny(), prompt_ids=[10, 11], max_new_tokens=3) | kwargs
    # raised by the call itself, before any next()
    with pytest.raises(ValueError) as err:
        generate(**args)
    assert message in str(err.value)


# ---- StreamDecoder -----------------------------------------------------------------------------

TEXT = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=40)


@settings(max_examples=300, deadline=None)
@given(TEXT)
def test_stream_decoder_rebuilds_any_text_and_holds_back_only_partial_characters(text):
    tok = ByteTokenizer()
    ids = tok.encode(text)
    decoder, emitted = StreamDecoder(tok), ""
    for k, token_id in enumerate(ids, start=1):
        emitted += decoder.push(token_id)
        # everything but an incomplete last character is out already
        complete = bytes(i - NUM_CONTROL for i in ids[:k]).decode("utf-8", errors="ignore")
        assert emitted == complete, f"after {k} bytes: {emitted!r} vs {complete!r}"
    assert emitted + decoder.flush() == text


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, VOCAB - 1), max_size=30), st.booleans())
def test_stream_decoder_equals_decode_on_any_ids(ids, skip_control):
    # invalid UTF-8, control and chat ids included: the same U+FFFD and names as decode()
    tok = ByteTokenizer()
    decoder = StreamDecoder(tok, skip_control=skip_control)
    streamed = "".join(decoder.push(i) for i in ids) + decoder.flush()
    assert streamed == tok.decode(ids, skip_control=skip_control)


def test_stream_decoder_with_bpe_tokens_that_split_characters():
    text = "日本語のテキスト😀 naïve café, 日本の😀😀 " * 4
    tok = BPETokenizer.train([text], vocab_size=300, min_frequency=1)
    ids = tok.encode(text)

    def partial(token_id: int) -> bool:
        try:
            tok.token_bytes(token_id).decode("utf-8")
        except UnicodeDecodeError:
            return True
        return False

    assert any(partial(i) and len(tok.token_bytes(i)) > 1 for i in ids), "no split to test"
    decoder = StreamDecoder(tok)
    pieces = [decoder.push(i) for i in ids]
    assert "".join(pieces) + decoder.flush() == text
    assert "\ufffd" not in "".join(pieces)
