"""Tests for assoclm.tokenizer: control and chat ids reserved, exact round trip, ChatML,
save/load (old files included), compression."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from assoclm import tokenizer as tokmod
from assoclm.tokenizer import (
    CHAT_TOKENS,
    CONTROL_TOKENS,
    NUM_CHAT,
    NUM_CONTROL,
    BaseTokenizer,
    BPETokenizer,
    ByteTokenizer,
    load_tokenizer,
)

BPE_VOCAB = 512

_WORDS = (
    "the of and to a in is it you that he was for on are with as his they be at one have "
    "this from or had by word but what some we can out other were all there when up use "
    "your how said an each she which do their time if will way about many then them write "
    "would like so these her long make thing see him two has look more day could go come "
    "did number sound no most people my over know water than call first who may down side "
    "been now find any new work part take get place made live where after back little only "
    "round man year came show every good me give our under name very through just form "
    "sentence great think say help low line differ turn cause much mean before move right "
    "boy old too same tell does set three want air well also play small end put home read "
    "hand port large spell add even land here must big high such follow act why ask men"
).split()


def english_like(n_sentences: int, seed: int) -> str:
    """Sentences of common English words drawn with Zipf-like frequencies, one per line."""
    rng = random.Random(seed)
    weights = [1.0 / (rank + 1) for rank in range(len(_WORDS))]
    lines = []
    for _ in range(n_sentences):
        words = rng.choices(_WORDS, weights, k=rng.randint(4, 16))
        lines.append(" ".join(words).capitalize() + rng.choice(".,;!?") + "\n")
    return "".join(lines)


def training_corpus() -> list[str]:
    """English-like lines plus some non-ASCII text, so merges span multi-byte characters."""
    unicode_lines = [
        "café naïve façade résumé — «déjà vu»\n",
        "日本語のテキストと中文文本\n",
        "emoji: 🙂🚀 and ünïcödé ✓ ∑ ∫ π\n",
    ] * 20
    return english_like(2000, seed=0).splitlines(keepends=True) + unicode_lines


@pytest.fixture(scope="module")
def bpe() -> BPETokenizer:
    return BPETokenizer.train(training_corpus(), vocab_size=BPE_VOCAB, min_frequency=2)


@pytest.fixture(scope="module", params=["byte", "bpe"])
def any_tok(request, bpe) -> BaseTokenizer:
    return ByteTokenizer() if request.param == "byte" else bpe


# Valid Unicode text only: lone surrogates have no UTF-8 form (documented, tested below).
_chars = st.characters(codec="utf-8")
_plain_text = st.text(_chars, max_size=80)
# Literal control and chat names and fragments of them, to be mixed into ordinary text.
_control_like = st.sampled_from(
    [*CONTROL_TOKENS, "[", "]", "[USER", "USER]", "[[PAD]]", "[user]", "[ MODEL ]",
     *CHAT_TOKENS, "<|", "|>", "<|im_end", "<think", "<</think>>", "<|IM_START|>"]
)
_text_with_controls = st.lists(st.one_of(_plain_text, _control_like), max_size=12).map("".join)

_PROPERTY = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


def _assert_no_control(tok: BaseTokenizer, text: str, ids: list[int]) -> None:
    special = [i for i in ids if tok.is_control(i) or tok.is_chat(i)]
    assert not special, f"encoding {text!r} produced control or chat ids {special}"


def _assert_round_trip(tok: BaseTokenizer, text: str) -> None:
    ids = tok.encode(text)
    _assert_no_control(tok, text, ids)
    assert all(0 <= i < tok.vocab_size for i in ids), f"id out of range in {ids}"
    back = tok.decode(ids)
    assert back == text, f"round trip changed {text!r} into {back!r} (ids {ids})"


@_PROPERTY
@given(text=_plain_text)
def test_round_trip_plain_text(any_tok, text):
    _assert_round_trip(any_tok, text)


@_PROPERTY
@given(text=_text_with_controls)
def test_literal_control_names_encode_as_text(any_tok, text):
    _assert_round_trip(any_tok, text)


@pytest.mark.parametrize(
    "text",
    [
        "",
        " ",
        "  leading and trailing  ",
        "\n\n\t\r\n",
        "[USER]",
        "[PAD][SESSION][SESSION_END]",
        "hello [USER] world",
        "日本語 🙂 café",
        "\x00\x7f\u0080\uffff\U0010ffff",
        "a" * 1000,
    ],
    ids=[
        "empty",
        "space",
        "edge-spaces",
        "newlines",
        "control-name",
        "control-names",
        "control-in-text",
        "multibyte",
        "extreme-codepoints",
        "long-run",
    ],
)
def test_round_trip_examples(any_tok, text):
    _assert_round_trip(any_tok, text)


def test_literal_control_name_is_not_a_single_control_id(any_tok):
    for name in CONTROL_TOKENS:
        ids = any_tok.encode(name)
        assert ids != [any_tok.control_id(name)], f"{name} encoded to its control id"
        _assert_no_control(any_tok, name, ids)


def test_control_ids_in_order(any_tok):
    assert CONTROL_TOKENS == (
        "[PAD]",
        "[SESSION]",
        "[USER]",
        "[LISTEN]",
        "[USER_END]",
        "[MODEL]",
        "[USER_INTERRUPT]",
        "[MODEL_END]",
        "[SESSION_END]",
    )
    assert [any_tok.control_id(name) for name in CONTROL_TOKENS] == list(range(9))
    assert any_tok.pad_id == 0
    assert [any_tok.is_control(i) for i in range(-1, 11)] == [False] + [True] * 9 + [False] * 2


@pytest.mark.parametrize("name", ["USER", "[user]", "", "[UNK]", None], ids=repr)
def test_control_id_rejects_unknown_name(any_tok, name):
    with pytest.raises(ValueError, match=r"unknown control token") as info:
        any_tok.control_id(name)
    for allowed in CONTROL_TOKENS:
        assert allowed in str(info.value), f"error message does not list {allowed}"


def test_decode_renders_or_skips_control_ids(any_tok):
    user, model_end = any_tok.control_id("[USER]"), any_tok.control_id("[MODEL_END]")
    ids = [user, *any_tok.encode("hi there"), model_end, any_tok.pad_id]
    assert any_tok.decode(ids) == "[USER]hi there[MODEL_END][PAD]"
    assert any_tok.decode(ids, skip_control=True) == "hi there"


def test_decode_accepts_tensor(any_tok):
    torch = pytest.importorskip("torch")
    ids = [any_tok.control_id("[MODEL]"), *any_tok.encode("tensor ids ü")]
    assert any_tok.decode(torch.tensor(ids)) == "[MODEL]tensor ids ü"


def test_decode_split_multibyte_character_does_not_crash(any_tok):
    text = "日本語🙂"
    ids = any_tok.encode(text)
    for cut in range(len(ids) + 1):
        prefix = any_tok.decode(ids[:cut])
        assert text.startswith(prefix.rstrip("\ufffd")), f"cut {cut}: {prefix!r}"


def test_control_id_inside_multibyte_character_gives_replacement():
    tok = ByteTokenizer()
    first, second = tok.encode("é")
    assert tok.decode([first, tok.control_id("[USER]"), second]) == "\ufffd[USER]\ufffd"


@pytest.mark.parametrize("bad", [-1, "vocab", "vocab+1", 10**9], ids=str)
def test_decode_rejects_out_of_range(any_tok, bad):
    bad_id = {"vocab": any_tok.vocab_size, "vocab+1": any_tok.vocab_size + 1}.get(bad, bad)
    with pytest.raises(ValueError, match=rf"id {bad_id}\b.*\[0, {any_tok.vocab_size}\)"):
        any_tok.decode([NUM_CONTROL, bad_id])


def test_encode_rejects_lone_surrogate(any_tok):
    with pytest.raises(ValueError, match=r"U\+D800 at index 1"):
        any_tok.encode("a\ud800b")


def test_encode_batch_matches_encode(any_tok):
    texts = ["", "hello world", "[USER] literal", "日本語 🙂", english_like(5, seed=3)]
    assert any_tok.encode_batch(texts) == [any_tok.encode(t) for t in texts]


def test_byte_tokenizer_layout():
    tok = ByteTokenizer()
    assert tok.vocab_size == NUM_CONTROL + 256 + NUM_CHAT == 269
    assert tok.encode("A\x00é") == [65 + 9, 0 + 9, 0xC3 + 9, 0xA9 + 9]
    assert tok.decode(list(range(9, 265)), skip_control=True) == bytes(range(256)).decode(
        "utf-8", errors="replace"
    )
    assert [tok.chat_id(name) for name in CHAT_TOKENS] == [265, 266, 267, 268]


def test_bpe_vocab_size_and_bytes(bpe):
    hf_size = bpe.hf_tokenizer.get_vocab_size()
    assert bpe.vocab_size == BPE_VOCAB == NUM_CONTROL + hf_size + NUM_CHAT
    text_ids = range(NUM_CONTROL, NUM_CONTROL + hf_size)
    single_bytes = sorted(b[0] for i in text_ids if len(b := bpe.token_bytes(i)) == 1)
    assert single_bytes == list(range(256)), "not every byte has its own id"
    assert all(bpe.token_bytes(i) is None for i in range(NUM_CONTROL))
    assert [bpe.chat_id(name) for name in CHAT_TOKENS] == list(range(BPE_VOCAB - 4, BPE_VOCAB))


def test_bpe_minimum_vocab_is_bytes_and_special_ids():
    tok = BPETokenizer.train(["abab abab abab"], vocab_size=269)
    assert tok.vocab_size == 269 and tok.hf_tokenizer.get_vocab_size() == 256
    assert tok.chat_id("<|im_start|>") == 265
    _assert_round_trip(tok, "abab <|im_end|> xyz")


# ---- chat tokens -------------------------------------------------------------------------------


def test_chat_ids_come_after_every_text_id(any_tok):
    vocab = any_tok.vocab_size
    assert any_tok.has_chat and any_tok.chat_tokens == CHAT_TOKENS
    chat_ids = [any_tok.chat_id(name) for name in CHAT_TOKENS]
    assert chat_ids == list(range(vocab - NUM_CHAT, vocab)), f"chat ids {chat_ids}"
    assert [any_tok.control_id(name) for name in CONTROL_TOKENS] == list(range(NUM_CONTROL))
    assert any_tok.special_ids == (*range(NUM_CONTROL), *chat_ids)
    assert [i for i in range(-1, vocab + 1) if any_tok.is_chat(i)] == chat_ids
    assert not any(any_tok.is_control(i) for i in chat_ids)
    # no bytes: bits per byte count them as zero bytes, like the control ids
    assert [any_tok.token_bytes(i) for i in chat_ids] == [None] * NUM_CHAT
    assert all(any_tok.token_bytes(i) for i in range(NUM_CONTROL, vocab - NUM_CHAT))


@pytest.mark.parametrize("name", CHAT_TOKENS)
def test_literal_chat_name_encodes_as_text(any_tok, name):
    for text in (name, f"user typed {name} here", name * 3):
        ids = any_tok.encode(text)
        assert any_tok.chat_id(name) not in ids, f"{text!r} encoded to the id of {name}"
        _assert_round_trip(any_tok, text)


@pytest.mark.parametrize(
    "name", ["<|im_end", "im_end", "<THINK>", "[USER]", "", None], ids=repr
)
def test_chat_id_rejects_unknown_name(any_tok, name):
    with pytest.raises(ValueError, match=r"unknown chat token") as info:
        any_tok.chat_id(name)
    for allowed in CHAT_TOKENS:
        assert allowed in str(info.value), f"error message does not list {allowed}"


def test_decode_renders_or_skips_chat_ids(any_tok):
    think, end = any_tok.chat_id("<think>"), any_tok.chat_id("</think>")
    user = any_tok.control_id("[USER]")
    ids = [think, *any_tok.encode("hmm é"), end, user, *any_tok.encode("ok")]
    assert any_tok.decode(ids) == "<think>hmm é</think>[USER]ok"
    assert any_tok.decode(ids, skip_control=True) == "hmm éok"
    # a chat id between the two bytes of é ends the first one, like a control id
    e1, e2 = ByteTokenizer().encode("é")
    assert ByteTokenizer().decode([e1, 267, e2]) == "\ufffd<think>\ufffd"


CONVERSATION = [
    {"role": "system", "content": "Answer briefly."},
    {"role": "user", "content": "Hello <|im_end|> there\n日本語 🙂"},
    {"role": "assistant", "content": "<think>easy</think>Hi."},
    {"role": "user", "content": ""},
]


def test_encode_chat_is_chatml_and_round_trips(any_tok):
    ids = any_tok.encode_chat(CONVERSATION)
    expected = "".join(
        f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in CONVERSATION
    ) + "<|im_start|>assistant\n"
    assert any_tok.decode(ids) == expected
    start, end = any_tok.chat_id("<|im_start|>"), any_tok.chat_id("<|im_end|>")
    # only the format's own tokens are special ids: the literal ones in the contents are text
    special = [i for i in ids if any_tok.is_chat(i) or any_tok.is_control(i)]
    assert special == [start, end] * 4 + [start], f"special ids {special}"
    header = [start, *any_tok.encode("assistant\n")]
    assert ids[-len(header):] == header
    without = any_tok.encode_chat(CONVERSATION, add_generation_prompt=False)
    assert without == ids[:-len(header)]
    assert any_tok.decode(without) == expected.removesuffix("<|im_start|>assistant\n")


def test_encode_chat_encodes_each_span_between_chat_tokens_as_text(any_tok):
    ids = any_tok.encode_chat([{"role": "user", "content": "Hello"}])
    start, end = any_tok.chat_id("<|im_start|>"), any_tok.chat_id("<|im_end|>")
    assert ids == [start, *any_tok.encode("user\nHello"), end, *any_tok.encode("\n"),
                   start, *any_tok.encode("assistant\n")]
    assert any_tok.encode_chat([]) == [start, *any_tok.encode("assistant\n")]


BAD_MESSAGES = [
    pytest.param("hello", TypeError, "messages must be a list", id="a-string"),
    pytest.param({"role": "user", "content": "x"}, TypeError, "messages must be a list",
                 id="one-dict"),
    pytest.param(["hello"], TypeError, r"messages\[0\] must be a dict", id="str-message"),
    pytest.param([{"content": "x"}], ValueError, r"messages\[0\] has no 'role'", id="no-role"),
    pytest.param([{"role": "user", "content": "a"}, {"role": "user"}], ValueError,
                 r"messages\[1\] has no 'content'", id="no-content"),
    pytest.param([{"role": "user", "content": "x", "name": "bob"}], ValueError,
                 r"messages\[0\] has unknown keys \['name'\]", id="extra-key"),
    pytest.param([{"role": "tool", "content": "x"}], ValueError,
                 r"messages\[0\]: unknown role 'tool'; allowed: system, user, assistant",
                 id="bad-role"),
    pytest.param([{"role": "User", "content": "x"}], ValueError, "unknown role 'User'",
                 id="role-case"),
    pytest.param([{"role": "user", "content": 3}], TypeError,
                 r"messages\[0\]: content must be a str; got int", id="int-content"),
    pytest.param([{"role": "user", "content": "a\ud800"}], ValueError, "lone surrogate",
                 id="surrogate"),
]


@pytest.mark.parametrize(("messages", "error", "message"), BAD_MESSAGES)
def test_encode_chat_rejects_bad_messages(any_tok, messages, error, message):
    with pytest.raises(error, match=message):
        any_tok.encode_chat(messages)


def _version_1_payload(tok: BaseTokenizer) -> dict:
    """The file a tokenizer was saved as before the chat tokens: version 1, no chat ids."""
    payload = {
        "format": "assoclm-tokenizer",
        "version": 1,
        "kind": tok.kind,
        "control_tokens": list(CONTROL_TOKENS),
        "vocab_size": tok.vocab_size - NUM_CHAT,
    }
    if isinstance(tok, BPETokenizer):
        payload["hf_tokenizer"] = json.loads(tok.hf_tokenizer.to_str())
    return payload


def test_version_1_file_loads_without_chat_tokens(any_tok, tmp_path):
    path = tmp_path / "tokenizer.json"
    path.write_text(json.dumps(_version_1_payload(any_tok)), encoding="utf-8")
    old = load_tokenizer(path)
    assert type(old) is type(any_tok)
    assert old.vocab_size == any_tok.vocab_size - NUM_CHAT
    if old.kind == "byte":
        assert old.vocab_size == 265
    assert not old.has_chat and old.chat_tokens == ()
    assert old.special_ids == tuple(range(NUM_CONTROL))
    assert not any(old.is_chat(i) for i in range(-1, old.vocab_size + 1))
    # every text id keeps its value
    for text in _SAMPLES:
        assert old.encode(text) == any_tok.encode(text)
    ids = list(range(old.vocab_size))
    assert old.decode(ids) == any_tok.decode(ids)
    with pytest.raises(ValueError, match="no chat tokens"):
        old.encode_chat([{"role": "user", "content": "hi"}])
    with pytest.raises(ValueError, match="no chat tokens"):
        old.chat_id("<|im_end|>")
    with pytest.raises(ValueError, match=rf"outside the vocabulary \[0, {old.vocab_size}\)"):
        old.decode([old.vocab_size])
    # saved again, it stays without chat tokens, so its ids never move
    again = load_tokenizer(old.save(tmp_path / "again.json"))
    assert not again.has_chat and again.vocab_size == old.vocab_size


def test_bpe_control_names_not_registered_with_hf(bpe):
    hf_json = json.loads(bpe.hf_tokenizer.to_str())
    assert hf_json["added_tokens"] == []
    assert bpe.hf_tokenizer.get_added_tokens_decoder() == {}


def test_bpe_small_corpus_gives_smaller_vocab():
    tok = BPETokenizer.train(["abab abab abab"], vocab_size=4096)
    assert NUM_CONTROL + 256 < tok.vocab_size < 4096
    _assert_round_trip(tok, "abab [USER] xyz")


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"vocab_size": 268}, ValueError, r"vocab_size must be >= 269 \(9 control ids "
         r"\+ 256 bytes \+ 4 chat ids\), got 268"),
        ({"vocab_size": 512.0}, TypeError, "vocab_size must be an int"),
        ({"min_frequency": 0}, ValueError, "min_frequency must be >= 1"),
    ],
    ids=["vocab-too-small", "vocab-float", "min-freq-zero"],
)
def test_bpe_train_validates_arguments(kwargs, error, message):
    with pytest.raises(error, match=message):
        BPETokenizer.train(["some text"], **kwargs)


def test_bpe_compresses_english(bpe):
    held_out = english_like(300, seed=1)
    n_bytes = len(held_out.encode("utf-8"))
    n_tokens = len(bpe.encode(held_out))
    ratio = n_tokens / n_bytes
    assert ratio < 0.6, f"{n_tokens} tokens for {n_bytes} bytes: {ratio:.3f} tokens/byte >= 0.6"


_SAMPLES = ["", "hello [USER] world", "日本語 🙂 café", english_like(20, seed=2)]


def test_save_load_round_trip(any_tok, tmp_path):
    written = any_tok.save(tmp_path)
    assert written == tmp_path / "tokenizer.json"
    assert os.listdir(tmp_path) == ["tokenizer.json"], "save left temporary files behind"
    saved = json.loads(written.read_text(encoding="utf-8"))
    assert saved["kind"] == any_tok.kind and saved["version"] == 2
    assert saved["control_tokens"] == list(CONTROL_TOKENS)
    assert saved["chat_tokens"] == list(CHAT_TOKENS)

    loaded = load_tokenizer(tmp_path)
    assert type(loaded) is type(any_tok)
    assert loaded.vocab_size == any_tok.vocab_size and loaded.has_chat
    assert loaded.encode_chat(CONVERSATION) == any_tok.encode_chat(CONVERSATION)
    for text in _SAMPLES:
        assert loaded.encode(text) == any_tok.encode(text), f"encodings differ for {text!r}"
    assert load_tokenizer(written).encode(_SAMPLES[-1]) == any_tok.encode(_SAMPLES[-1])


def test_save_overwrites_and_failed_save_keeps_old_file(bpe, tmp_path, monkeypatch):
    target = tmp_path / "tok.json"
    ByteTokenizer().save(target)
    bpe.save(target)
    assert isinstance(load_tokenizer(target), BPETokenizer)
    before = target.read_bytes()

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(tokmod.os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        ByteTokenizer().save(target)
    assert target.read_bytes() == before, "failed save changed the existing file"
    assert os.listdir(tmp_path) == ["tok.json"], "failed save left temporary files behind"


def _valid_payload(kind: str, bpe: BPETokenizer, tmp_path: Path) -> dict:
    tok = bpe if kind == "bpe" else ByteTokenizer()
    return json.loads(tok.save(tmp_path / f"valid-{kind}.json").read_text(encoding="utf-8"))


_CORRUPTIONS = {
    "not-json": (None, lambda p: "{this is not json", "not valid JSON"),
    "truncated": ("bpe", lambda p: json.dumps(p)[:200], "not valid JSON"),
    "json-list": (None, lambda p: "[1, 2]", "expected a JSON object"),
    "wrong-format": ("byte", lambda p: json.dumps({**p, "format": "x"}), "not an assoclm"),
    "no-kind": (
        "byte",
        lambda p: json.dumps({k: v for k, v in p.items() if k != "kind"}),
        "unknown tokenizer kind None",
    ),
    "bad-kind": (
        "byte",
        lambda p: json.dumps({**p, "kind": "wordpiece"}),
        "unknown tokenizer kind 'wordpiece'",
    ),
    "control-order": (
        "byte",
        lambda p: json.dumps({**p, "control_tokens": list(reversed(CONTROL_TOKENS))}),
        "control tokens",
    ),
    "chat-order": (
        "byte",
        lambda p: json.dumps({**p, "chat_tokens": list(reversed(CHAT_TOKENS))}),
        "chat tokens",
    ),
    "chat-missing-v2": (
        "bpe",
        lambda p: json.dumps({k: v for k, v in p.items() if k != "chat_tokens"}),
        "chat tokens None differ",
    ),
    "version-3": ("byte", lambda p: json.dumps({**p, "version": 3}), "versions 1 and 2"),
    "version-1-chat-size": (
        "byte",
        lambda p: json.dumps({**p, "version": 1}),
        "file says vocab_size 269 but the tokenizer it holds has 265",
    ),
    "vocab-mismatch": ("bpe", lambda p: json.dumps({**p, "vocab_size": 4096}), "vocab_size"),
    "no-hf": ("bpe", lambda p: json.dumps({**p, "hf_tokenizer": None}), "no 'hf_tokenizer'"),
    "hf-garbage": (
        "bpe",
        lambda p: json.dumps({**p, "hf_tokenizer": {"model": 3}}),
        "not a valid HF tokenizer",
    ),
    "hf-added-tokens": (
        "bpe",
        lambda p: json.dumps(
            {
                **p,
                "hf_tokenizer": {
                    **p["hf_tokenizer"],
                    "added_tokens": [
                        {
                            "id": 0,
                            "content": "[USER]",
                            "single_word": False,
                            "lstrip": False,
                            "rstrip": False,
                            "normalized": False,
                            "special": True,
                        }
                    ],
                },
            }
        ),
        "added/special tokens",
    ),
}


@pytest.mark.parametrize("case", list(_CORRUPTIONS))
def test_load_corrupt_file_errors_clearly(case, bpe, tmp_path):
    kind, corrupt, message = _CORRUPTIONS[case]
    payload = _valid_payload(kind, bpe, tmp_path) if kind else {}
    path = tmp_path / "tokenizer.json"
    path.write_text(corrupt(payload), encoding="utf-8")
    with pytest.raises(ValueError, match=message) as info:
        load_tokenizer(path)
    assert str(path) in str(info.value), f"error does not name the file: {info.value}"


def test_load_missing_file_names_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="tokenizer file not found") as info:
        load_tokenizer(tmp_path / "nope.json")
    assert str(tmp_path / "nope.json") in str(info.value)
    with pytest.raises(FileNotFoundError, match="tokenizer.json"):
        load_tokenizer(tmp_path)
