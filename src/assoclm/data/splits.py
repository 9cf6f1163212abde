"""The held-out split a training run scores on: by document (or dialogue) name.

Every task (language modelling, duplex dialogue) holds out whole documents, chosen by a hash
of their names (:func:`assoclm.data.text.split_documents`), so the split agrees across
machines and never depends on ``--seed``: runs with different seeds score on the same text.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from assoclm.data.corpora import DataError
from assoclm.data.text import Document, split_documents

# A single document (one big text file) is cut into this many parts at line breaks, so that
# whole parts can be held out.
PARTS_OF_ONE_DOCUMENT = 100
# The seed of everything random in held-out data (e.g. the synthetic interrupts of duplex
# dialogues): held-out data do not depend on --seed, so every run is scored alike.
VAL_SEED = 1_000_003


def split_for_validation(docs: Sequence[Any], val_fraction: float
                         ) -> tuple[list[Any], list[Any], str]:
    """(train, held-out, note) by document name; a single text document is first cut into
    :data:`PARTS_OF_ONE_DOCUMENT` parts at line breaks (the note says so).

    Args:
        docs: documents or dialogues; anything with a unique ``name``.
        val_fraction: the share held out, in (0, 1).

    Raises:
        DataError: fewer than two documents (or one with fewer than two lines).
    """
    docs = list(docs)
    note = ""
    if len(docs) == 1 and isinstance(docs[0], Document):
        lines = docs[0].text.splitlines(keepends=True)
        per = max(1, math.ceil(len(lines) / PARTS_OF_ONE_DOCUMENT))
        parts = ["".join(lines[i : i + per]) for i in range(0, len(lines), per)]
        docs = [Document(f"{docs[0].name}#part{i:03d}", t) for i, t in enumerate(parts)]
        note = f"one document: cut into {len(docs)} parts at line breaks, held out by part"
    if len(docs) < 2:
        raise DataError("need at least two documents (or one with two lines) to hold one out")
    train, val = split_documents(docs, val_fraction=val_fraction, seed=0)
    return train, val, note
