"""Byte-level BPE's alphabet: how it spells each byte as a character, and the exact bytes
of every entry of a Hugging Face byte-level BPE vocabulary (``assoclm.tokenizer`` builds its
id -> bytes table from it)."""

from __future__ import annotations

import json

from tokenizers import Tokenizer


def byte_level_alphabet() -> dict[str, int]:
    """Return the byte-level BPE character -> byte map (GPT-2's ``bytes_to_unicode``, inverted).

    Byte-level BPE spells each byte as one printable character so that merges operate on
    strings: bytes that are already printable Latin-1 stand for themselves, the remaining 68
    are moved, in order, to U+0100 and up. HF ``tokenizers`` uses the same table; we need it
    to turn a vocabulary entry back into its exact bytes.

    Returns:
        dict of 256 entries, one-character ``str`` -> byte value in ``[0, 256)``.
    """
    printable = {
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    }
    alphabet: dict[str, int] = {}
    shifted = 0
    for byte in range(256):
        if byte in printable:
            alphabet[chr(byte)] = byte
        else:
            alphabet[chr(256 + shifted)] = byte
            shifted += 1
    return alphabet


BYTE_LEVEL_ALPHABET = byte_level_alphabet()


def hf_id_bytes(hf: Tokenizer) -> list[bytes]:
    """Bytes of every HF id ``0 .. n-1`` of a byte-level BPE, checking it keeps our guarantees.

    Returns:
        list of n non-empty ``bytes``; entry i is what HF id i stands for.
    """
    hf_json = json.loads(hf.to_str())
    if hf_json.get("added_tokens"):
        names = [t.get("content") for t in hf_json["added_tokens"]]
        raise ValueError(
            f"HF tokenizer has added/special tokens {names}; they would match literal text, "
            "so control tokens must not be registered with HF"
        )
    if hf_json.get("normalizer") is not None:
        raise ValueError("HF tokenizer has a normalizer; it would break decode(encode(s)) == s")
    pre = hf_json.get("pre_tokenizer") or {}
    if pre.get("type") != "ByteLevel" or pre.get("add_prefix_space"):
        raise ValueError(
            f"HF tokenizer must use a ByteLevel pre-tokenizer without add_prefix_space, got {pre}"
        )
    vocab: dict[str, int] = hf.get_vocab(with_added_tokens=False)
    n = len(vocab)
    pieces: list[bytes | None] = [None] * n
    for token, hf_id in vocab.items():
        if not 0 <= hf_id < n or pieces[hf_id] is not None:
            raise ValueError(f"HF vocabulary ids are not 0..{n - 1} without gaps (id {hf_id})")
        try:
            pieces[hf_id] = bytes(BYTE_LEVEL_ALPHABET[c] for c in token)
        except KeyError:
            raise ValueError(
                f"HF vocabulary entry {token!r} is not spelled in the byte-level alphabet"
            ) from None
    single = {p[0] for p in pieces if p is not None and len(p) == 1}
    if len(single) != 256:
        missing = sorted(set(range(256)) - single)
        raise ValueError(
            f"HF vocabulary lacks {len(missing)} of the 256 bytes (first: {missing[:8]}); "
            "some strings could not be encoded"
        )
    return pieces  # type: ignore[return-value]
