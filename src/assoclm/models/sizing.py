"""Size models to a parameter count, so that comparisons are made at equal parameters.

    count_parameters("transformer", {"hidden_size": 256, "num_layers": 4})
    size_to_params("transformer", {"num_layers": 4, "num_heads": 4}, target=3_610_000)

Models are built on PyTorch's ``meta`` device: no memory is allocated and no weights are
initialised, so sizing a large model is instant.
"""

from __future__ import annotations

from typing import Any

import torch

from assoclm.config import Config
from assoclm.models.registry import build_model, model_spec

# The width each model can take: hidden_size must be a multiple of this (for attention,
# 2·num_heads so that every head has an even size for RoPE).
_DEFAULT_MULTIPLE = 8


def count_parameters(name: str, config: dict[str, Any] | Config) -> int:
    """Number of parameters of model `name` built from `config` (tied weights counted once)."""
    with torch.device("meta"):
        model = build_model(name, config)
    return sum(p.numel() for p in model.parameters())


def width_multiple(name: str, config: dict[str, Any]) -> int:
    """The step in hidden_size that keeps `config` valid for model `name`."""
    heads = config.get("num_heads")
    if heads is None:
        heads = getattr(model_spec(name).config, "num_heads", None)
    return 2 * int(heads) if heads is not None else _DEFAULT_MULTIPLE


def size_to_params(name: str, config: dict[str, Any], target: int,
                   field: str = "hidden_size", multiple: int | None = None,
                   low: int | None = None, high: int = 8192) -> dict[str, Any]:
    """`config` with `field` set so that the model's parameter count is closest to `target`.

    Parameters grow monotonically with the width, so a bisection over the multiples of
    `multiple` (default: what the model needs, see ``width_multiple``) finds the two widths
    around the target and the closer one is returned. Raises ValueError when even the
    smallest or largest width in [low, high] misses the target by more than 25%.
    """
    if not isinstance(target, int) or target < 1:
        raise ValueError(f"target must be a positive number of parameters; got {target!r}")
    step = multiple or width_multiple(name, config)
    lo = max(1, (low or step) // step)
    hi = high // step
    if hi < lo:
        raise ValueError(f"no width in [{lo * step}, {high}] is a multiple of {step}")

    def params(units: int) -> int:
        return count_parameters(name, {**config, field: units * step})

    while lo < hi:  # smallest width whose count reaches the target
        mid = (lo + hi) // 2
        if params(mid) < target:
            lo = mid + 1
        else:
            hi = mid
    candidates = [u for u in (lo - 1, lo) if u >= max(1, (low or step) // step)]
    best = min(candidates, key=lambda u: abs(params(u) - target))
    got = params(best)
    if abs(got - target) > 0.25 * target:
        raise ValueError(
            f"{name}: no {field} in [{(low or step)}, {high}] (multiples of {step}) comes within "
            f"25% of {target:,} parameters (closest: {best * step} with {got:,}); change the "
            "other settings (e.g. num_layers) or the target"
        )
    return {**config, field: best * step}


def matched_configs(width: int, num_layers: int, vocab_size: int, max_context: int,
                    models: tuple[str, ...] = ("propagator", "hebbian", "transformer"),
                    **propagator: Any) -> dict[str, dict[str, Any]]:
    """Configs of the model families at equal parameters, for a side-by-side comparison.

    The Propagator is built at ``hidden_size=width`` with a K = V = width memory (one head)
    and the given ``propagator`` overrides; ``hebbian`` is the same block with additive
    writes (exactly the same parameters); the transformer gets ``num_layers`` layers, heads
    of size 64 (at least one), the same MLP multiplier, and the hidden size that brings it
    closest to the Propagator's parameter count (``size_to_params``).
    """
    base = {"vocab_size": vocab_size, "hidden_size": width, "num_layers": num_layers,
            "memory_key_size": width, "memory_value_size": width, **propagator}
    configs: dict[str, dict[str, Any]] = {}
    if "propagator" in models:
        configs["propagator"] = dict(base)
    if "hebbian" in models:
        configs["hebbian"] = dict(base)
    if "transformer" in models:
        target = count_parameters("propagator", base)
        heads = max(1, width // 64)
        shared = {k: base[k] for k in ("mlp_multiplier",) if k in base}
        configs["transformer"] = size_to_params(
            "transformer", {"vocab_size": vocab_size, "num_layers": num_layers,
                            "num_heads": heads, "max_context": max_context, **shared}, target)
    unknown = sorted(set(models) - set(configs))
    if unknown:
        raise ValueError(f"unknown model(s) {unknown}; choose from propagator, hebbian, "
                         "transformer")
    return configs
