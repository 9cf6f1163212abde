"""Positronic: a transformer whose every MLP is a QuazimotoBlock of Kuramoto oscillators,
with multi-token draft heads and optional traits (model card and equations in
:mod:`assoclm.models.positronic.model`).

Modules, each importing only those listed before it:

    config.py       PositronicConfig and the trait names (TRAITS, POST_STACK_TRAITS,
                    RING_TRAITS)
    state.py        PositronicState: the KV cache plus the traits' per-lane memories
    ring_traits.py  the traits inside each layer's QuazimotoBlock (RingTraits)
    post_traits.py  the traits after the last block (PostStackTraits)
    model.py        the blocks, the draft heads and PositronicLM
"""

from assoclm.models.positronic.config import (
    POST_STACK_TRAITS,
    RING_TRAITS,
    TRAITS,
    PositronicConfig,
)
from assoclm.models.positronic.model import DraftHead, PositronicBlock, PositronicLM
from assoclm.models.positronic.state import PositronicState

__all__ = ["POST_STACK_TRAITS", "RING_TRAITS", "TRAITS", "DraftHead", "PositronicBlock",
           "PositronicConfig", "PositronicLM", "PositronicState"]
