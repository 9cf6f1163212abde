"""flash-linear-attention (fla-core) as a peer: its references and kernels, loaded guarded.

`import fla.ops` needs triton, which a CPU machine may lack, so the pure-PyTorch references
are loaded from the installed package by file path. Nothing in the core imports this module.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

_naive: ModuleType | None = None


def fla_naive() -> ModuleType:
    """fla's `ops/gated_delta_rule/naive.py` (naive_recurrent_/naive_chunk_gated_delta_rule).

    Raises ImportError naming the package to install when fla-core is missing.
    """
    global _naive
    if _naive is None:
        spec = importlib.util.find_spec("fla")
        if spec is None or not spec.submodule_search_locations:
            raise ImportError(
                "fla-core is not installed; `pip install fla-core==0.6.0` (it is in the dev extras)"
            )
        path = Path(next(iter(spec.submodule_search_locations))) / "ops/gated_delta_rule/naive.py"
        module_spec = importlib.util.spec_from_file_location("_assoclm_fla_naive", path)
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
        _naive = module
    return _naive


def fla_chunk_kernel():
    """fla's Triton `chunk_gated_delta_rule`, or None when triton/CUDA are unavailable."""
    try:
        from fla.ops.gated_delta_rule import chunk_gated_delta_rule
    except Exception:  # noqa: BLE001 - any import failure means "no kernel here"
        return None
    return chunk_gated_delta_rule
