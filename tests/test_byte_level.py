"""The byte-level alphabet is Hugging Face's, and covers every byte once."""

from __future__ import annotations

from tokenizers import pre_tokenizers

from assoclm.byte_level import BYTE_LEVEL_ALPHABET


def test_bpe_byte_alphabet_matches_hf():
    assert set(BYTE_LEVEL_ALPHABET) == set(pre_tokenizers.ByteLevel.alphabet())
    assert sorted(BYTE_LEVEL_ALPHABET.values()) == list(range(256))
