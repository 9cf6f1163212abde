"""(c) Latent drift of a weight-tied dynamics block on a chaotic system, and re-grounding.

    python -m assoclm.bench.depth drift                  # logistic map, H = 8, to 32·H
    python -m assoclm.bench.depth drift --quick          # seconds

The model is the recurrent-depth idea with depth = time: an encoder maps an observation to a
latent z₀ = Enc(x₀); one weight-tied block advances the latent one time step,
z_{t+1} = z_t + SwiGLU(RMSNorm(z_t)); a decoder reads x̂_t = Dec(z_t) at every step. It is
trained on windows of H steps (loss: mean squared error of x̂_t, t = 0 .. H, in units of the
attractor's standard deviation) and then rolled out to 32·H steps:

- free-running: the block is applied 32·H times to Enc(x₀);
- re-grounded every k steps: at t = k, 2k, ... the latent is replaced by Enc(x_t), the
  encoding of the observed state (the observed input is injected again).

Reported against t: the prediction error (RMS over trajectories and dimensions, in attractor
standard deviations), the latent's RMS norm, and its drift off the encoder's manifold,
‖z_t − Enc(Dec(z_t))‖ / ‖Enc(Dec(z_t))‖ (zero while the latent is the code of some state;
chaos alone moves a latent along that manifold, not off it). The valid-prediction horizon of
a trajectory is the first t whose error exceeds ``--tol`` standard deviations; the result
gives its median, and the same horizon for the true map iterated in float32 from a float32
copy of x₀: the limit that chaos puts on any float32 model.
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from assoclm.bench.common import apply_quick, int_list, require_positive, write_result
from assoclm.bench.render import machine_line
from assoclm.data.dynamics import (
    LOGISTIC_LYAPUNOV_R39,
    LORENZ_LYAPUNOV,
    logistic_map,
    lorenz,
    lorenz_rk4_step,
)
from assoclm.io import provenance, save_figure_atomic
from assoclm.layers.mlp import MLP
from assoclm.train.schedule import learning_rate, param_groups

DEFAULT_OUT = "benchmarks/results/depth-drift-cpu.json"
SYSTEMS = ("logistic", "lorenz")
# Lorenz: one observation every STRIDE RK4 steps of DT
LORENZ_DT, LORENZ_STRIDE = 0.01, 5


def trajectories(system: str, num: int, steps: int, seed: int) -> np.ndarray:
    """[N, steps, obs_dim] float64 observations of `system`."""
    if system == "logistic":
        return logistic_map(num, steps, r=3.9, seed=seed)[..., None]
    return lorenz(num, steps, dt=LORENZ_DT, stride=LORENZ_STRIDE, seed=seed)


def lyapunov_per_step(system: str) -> float:
    return LOGISTIC_LYAPUNOV_R39 if system == "logistic" else (
        LORENZ_LYAPUNOV * LORENZ_DT * LORENZ_STRIDE)


class LatentDynamics(nn.Module):
    """Enc: x [..., obs] -> z [..., D]; one tied block z -> z (one time step); Dec: z -> x."""

    def __init__(self, obs_dim: int, latent: int, mlp_multiplier: float):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(obs_dim, latent), nn.SiLU(),
                                     nn.Linear(latent, latent))
        self.norm = nn.RMSNorm(latent, eps=1e-6)
        self.block = MLP(latent, mlp_multiplier, "swiglu")
        self.decoder = nn.Sequential(nn.Linear(latent, latent), nn.SiLU(),
                                     nn.Linear(latent, obs_dim))

    def advance(self, z: torch.Tensor) -> torch.Tensor:
        """One time step: z [..., D] -> [..., D]."""
        return z + self.block(self.norm(z))

    def rollout(self, x: torch.Tensor, steps: int, reground_every: int = 0
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """x [B, ≥ 1, obs] (observations; only x[:, 0] is used without re-grounding) ->
        (predictions [B, steps + 1, obs], latents [B, steps + 1, D]) for t = 0 .. steps.
        With ``reground_every = k > 0`` the latent is replaced by Enc(x_t) at t = k, 2k, ..."""
        z = self.encoder(x[:, 0])
        latents = [z]
        for t in range(1, steps + 1):
            z = self.encoder(x[:, t]) if reground_every and t % reground_every == 0 else \
                self.advance(z)
            latents.append(z)
        zs = torch.stack(latents, 1)
        return self.decoder(zs), zs


def train(model: LatentDynamics, data: torch.Tensor, args: argparse.Namespace) -> list[dict]:
    """AdamW on random windows of H + 1 steps from `data` [N, T, obs] (normalised)."""
    opt = torch.optim.AdamW(param_groups(model, 0.01), lr=args.lr, betas=(0.9, 0.95))
    gen = torch.Generator().manual_seed(args.seed)
    N, T, _ = data.shape
    H = args.horizon
    history, start = [], time.perf_counter()
    for step in range(1, args.steps + 1):
        for g in opt.param_groups:
            g["lr"] = learning_rate(step - 1, step / args.steps, args.lr, args.warmup, 0.1)
        rows = torch.randint(0, N, (args.batch,), generator=gen)
        offset = torch.randint(0, T - H, (args.batch,), generator=gen)
        window = data[rows[:, None], offset[:, None] + torch.arange(H + 1)]
        pred, _ = model.rollout(window, H)
        loss = F.mse_loss(pred, window)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % args.eval_every == 0 or step == args.steps:
            history.append({"step": step, "loss": loss.item(),
                            "elapsed_s": time.perf_counter() - start})
            if args.verbose:
                print(f"drift step {step}: loss {loss.item():.3e}", flush=True)
    return history


def valid_horizon(errors: torch.Tensor, tol: float) -> torch.Tensor:
    """errors [B, T+1] -> [B] long: first t with error > tol, or T + 1 if none."""
    over = errors > tol
    first = over.float().argmax(1)
    return torch.where(over.any(1), first, torch.full_like(first, errors.shape[1]))


@torch.no_grad()
def measure(model: LatentDynamics, x: torch.Tensor, steps: int, reground_every: int,
            tol: float) -> dict:
    """Error, latent norm and manifold drift against t for one rollout mode; x normalised."""
    pred, z = model.rollout(x, steps, reground_every)
    errors = (pred - x[:, :steps + 1]).pow(2).mean(-1).sqrt()
    on_manifold = model.encoder(pred)
    drift = (z - on_manifold).norm(dim=-1) / on_manifold.norm(dim=-1).clamp_min(1e-12)
    horizon = valid_horizon(errors, tol)
    return {
        "reground_every": reground_every,
        "error": errors.pow(2).mean(0).sqrt().tolist(),
        "latent_rms": z.pow(2).mean(-1).sqrt().mean(0).tolist(),
        "manifold_drift": drift.mean(0).tolist(),
        "valid_horizon_median": float(horizon.float().median()),
        "valid_horizon_never_exceeded": float((horizon > steps).float().mean()),
        "max_error": float(errors.pow(2).mean(0).sqrt().max()),
    }


def float32_chaos_floor(system: str, x: np.ndarray, steps: int, scale: np.ndarray,
                        tol: float) -> dict:
    """The true dynamics iterated in float32 from float32(x₀): [N, T, obs] float64 truth."""
    if system == "logistic":
        r = np.float32(3.9)
        y = x[:, 0].astype(np.float32)
        out = [y]
        for _ in range(steps):
            y = r * y * (np.float32(1) - y)
            out.append(y)
    else:

        y = x[:, 0].astype(np.float32)
        out = [y]
        for _ in range(steps):
            for _ in range(LORENZ_STRIDE):
                y = lorenz_rk4_step(y, np.float32(LORENZ_DT)).astype(np.float32)
            out.append(y)
    y = np.stack(out, 1).astype(np.float64)
    errors = torch.from_numpy(np.sqrt((((y - x[:, :steps + 1]) / scale) ** 2).mean(-1)))
    horizon = valid_horizon(errors, tol)
    return {"error": errors.pow(2).mean(0).sqrt().tolist(),
            "valid_horizon_median": float(horizon.float().median()),
            "valid_horizon_never_exceeded": float((horizon > steps).float().mean())}


def run(args: argparse.Namespace, argv: list[str]) -> dict:
    prov = provenance("assoclm.bench.depth", ["drift", *argv], args.device)
    torch.manual_seed(args.seed)
    H, long = args.horizon, args.horizon * args.extrapolate
    raw_train = trajectories(args.system, args.train_trajectories, args.train_length,
                             args.seed)
    raw_test = trajectories(args.system, args.test_trajectories, long + 1, args.seed + 1)
    # normalise by the attractor's statistics, measured on the training data
    mean = raw_train.reshape(-1, raw_train.shape[-1]).mean(0)
    scale = raw_train.reshape(-1, raw_train.shape[-1]).std(0)
    data = torch.from_numpy((raw_train - mean) / scale).float().to(args.device)
    test = torch.from_numpy((raw_test - mean) / scale).float().to(args.device)
    model = LatentDynamics(data.shape[-1], args.latent, args.mlp_multiplier).to(args.device)
    parameters = sum(p.numel() for p in model.parameters())
    start = time.perf_counter()
    history = train(model, data, args)
    train_s = time.perf_counter() - start
    model.eval()
    rows = [{"mode": "free-running", **measure(model, test, long, 0, args.tol)}]
    for k in args.reground_every:
        rows.append({"mode": f"re-grounded every {k}", **measure(model, test, long, k, args.tol)})
    in_horizon = measure(model, test, H, 0, args.tol)
    floor = float32_chaos_floor(args.system, raw_test, long, scale, args.tol)
    return {
        "suite": "depth-drift",
        "provenance": prov,
        "config": {k: v for k, v in vars(args).items() if k not in ("verbose",)},
        "system": args.system,
        "lyapunov_per_step": lyapunov_per_step(args.system),
        "parameters": parameters,
        "train_s": train_s,
        "history": history,
        "train_horizon": H,
        "rollout_steps": long,
        "error_within_train_horizon": in_horizon["max_error"],
        "float32_true_map": floor,
        "rows": rows,
        "elapsed_s": time.perf_counter() - start,
    }


def plot(result: dict, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(14, 3.6))
    H = result["train_horizon"]
    for row in result["rows"]:
        t = np.arange(len(row["error"]))
        axes[0].plot(t, row["error"], label=row["mode"], lw=1)
        axes[1].plot(t, row["latent_rms"], label=row["mode"], lw=1)
        axes[2].plot(t, row["manifold_drift"], label=row["mode"], lw=1)
    floor = result["float32_true_map"]["error"]
    axes[0].plot(np.arange(len(floor)), floor, "k:", lw=1, label="true map in float32")
    axes[0].axhline(result["config"]["tol"], color="grey", lw=0.5)
    titles = ("prediction error (attractor std)", "latent RMS", "drift off the encoder manifold")
    for ax, title in zip(axes, titles):
        ax.axvline(H, color="grey", ls="--", lw=0.8)
        ax.set_xlabel(f"step t (trained horizon H = {H}, dashed)")
        ax.set_title(title, fontsize=10)
        ax.set_xscale("symlog", linthresh=H)
        ax.set_xlim(0, result["rollout_steps"])
        ax.grid(alpha=0.3)
    axes[2].set_yscale("log")
    axes[0].legend(fontsize=7)
    fig.suptitle(f"depth drift: {result['system']} @ "
                 f"{result['provenance']['git_commit'][:12]}", fontsize=9)
    fig.tight_layout()
    save_figure_atomic(fig, path)
    plt.close(fig)


def render(result: dict) -> str:
    """Markdown table of a drift result."""
    H, long = result["train_horizon"], result["rollout_steps"]
    head = ["rollout", "valid horizon (median steps)", f"mean error, t ≤ {H}",
            f"mean error, {H} < t ≤ {long}", "worst error", f"latent RMS @ t={long}",
            f"mean drift, {H} < t ≤ {long}"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def errors(curve: list[float]) -> list[str]:
        inside, beyond = curve[1:H + 1], curve[H + 1:]
        return [f"{sum(inside) / len(inside):.3f}", f"{sum(beyond) / len(beyond):.3f}",
                f"{max(curve):.3f}"]

    def horizon(row: dict) -> str:
        never = row["valid_horizon_never_exceeded"]
        if row["valid_horizon_median"] > long:
            return f"> {long} ({never:.0%} never exceed)"
        return f"{row['valid_horizon_median']:.0f}" + (
            f" ({never:.0%} never exceed)" if never else "")

    for row in result["rows"]:
        drift = row["manifold_drift"][H + 1:]
        cells = [row["mode"], horizon(row)] + errors(row["error"])
        cells += [f"{row['latent_rms'][-1]:.2f}", f"{sum(drift) / len(drift):.3f}"]
        lines.append("| " + " | ".join(cells) + " |")
    floor = result["float32_true_map"]
    cells = ["true map in float32", horizon(floor)]
    cells += errors(floor["error"]) + ["–", "–"]
    lines.append("| " + " | ".join(cells) + " |")
    cfg = result["config"]
    params = "r = 3.9" if result["system"] == "logistic" else "σ = 10, ρ = 28, β = 8/3"
    lines.append("")
    lines.append(
        f"{result['system']} ({params}"
        f", Lyapunov exponent ≈ {result['lyapunov_per_step']:.2f} per step), trained on "
        f"horizon H = {H} for {cfg['steps']:,} steps of {cfg['batch']} windows "
        f"({result['parameters']:,} parameters, latent {cfg['latent']}, "
        f"{result['train_s']:.0f} s); rolled out to {long} steps = {cfg['extrapolate']}·H on "
        f"{cfg['test_trajectories']} held-out trajectories. Errors are RMS in attractor "
        f"standard deviations (predicting the mean scores about 1); the valid horizon is the "
        f"first step whose error exceeds {cfg['tol']}. Largest error within the trained "
        f"horizon: {result['error_within_train_horizon']:.3f}. "
        f"{machine_line(result['provenance'])}.")
    return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m assoclm.bench.depth drift", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--system", choices=SYSTEMS, default="logistic")
    p.add_argument("--horizon", type=int, default=8, help="trained horizon H (default 8)")
    p.add_argument("--extrapolate", type=int, default=32,
                   help="roll out to this many times H (default 32)")
    p.add_argument("--reground-every", type=int_list, default=[4, 8, 16],
                   help="re-grounding periods k to compare (default 4,8,16)")
    p.add_argument("--tol", type=float, default=0.4,
                   help="valid-horizon threshold, in attractor standard deviations")
    p.add_argument("--latent", type=int, default=64)
    p.add_argument("--mlp-multiplier", type=float, default=4.0)
    p.add_argument("--steps", type=int, default=4000)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--eval-every", type=int, default=500)
    p.add_argument("--train-trajectories", type=int, default=2048)
    p.add_argument("--train-length", type=int, default=256,
                   help="steps per training trajectory; windows of H + 1 are drawn from them")
    p.add_argument("--test-trajectories", type=int, default=512)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--quick", action="store_true", help="a tiny run (seconds)")
    p.add_argument("--out", default=DEFAULT_OUT, help="JSON path; the PNG goes beside it")
    p.add_argument("--no-plot", action="store_true")
    p.add_argument("--verbose", action=argparse.BooleanOptionalAction, default=True)
    return p


def main(argv: list[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.quick:
        apply_quick(args, argv, horizon=4, extrapolate=8, reground_every=[2, 4], latent=16,
                    steps=30, batch=32, eval_every=10, warmup=5, train_trajectories=64,
                    train_length=32, test_trajectories=16)
    require_positive(parser, args, ("horizon", "extrapolate", "latent", "steps", "batch",
                                    "eval_every", "train_trajectories", "test_trajectories",
                                    "threads"))
    if args.train_length < args.horizon + 2:
        parser.error(f"--train-length must be >= --horizon + 2 = {args.horizon + 2}; "
                     f"got {args.train_length}")
    if not (math.isfinite(args.tol) and args.tol > 0):
        parser.error(f"--tol must be a positive number; got {args.tol}")
    torch.set_num_threads(args.threads)
    result = run(args, argv)
    write_result(result, args.out, None if args.no_plot else plot)
    return 0
