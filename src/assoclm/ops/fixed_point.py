"""Fixed-point solver with Jacobian-free or implicit backpropagation.

Solves ``z = f(z)`` by iteration from a given start ``z0``, where ``f`` closes over the
input it injects (a deep-equilibrium layer, Bai, Kolter & Koltun 2019, "Deep Equilibrium
Models", arXiv 1909.01377). Three ways to iterate:

- plain: ``z_{i+1} = f(z_i)``;
- damped: ``z_{i+1} = damping·z_i + (1 − damping)·f(z_i)``;
- Anderson acceleration with memory m (Walker & Ni 2011, "Anderson acceleration for
  fixed-point iterations"): ``z_{i+1}`` mixes the last m values of f so that the mixed
  residual ``Σ_j α_j (f(z_j) − z_j)`` is smallest, ``Σ_j α_j = 1``, solved per example.

The residual at step i is ``‖f(z_i) − z_i‖ / ‖z_i‖`` over the whole batch; for plain
iteration it is ``‖z_{i+1} − z_i‖ / ‖z_i‖``. From a zero start the first one divides by
``‖f(z_0)‖`` instead, so it is 1. The solve stops when it falls below ``tol``
or after ``max_steps``.

Gradients (``backward``):

- ``"jfb"``, Jacobian-free backprop (Fung et al. 2022, "JFB: Jacobian-Free Backpropagation
  for Implicit Networks", arXiv 2103.12803): the solve runs without autograd and only the
  last ``grad_tail`` plain iterations are recorded, so training memory is that of
  ``grad_tail`` applications of f whatever the solver depth. With ``grad_tail = 1`` the
  gradient is ``(∂f/∂θ)ᵀ g``: the implicit gradient with ``(I − J)⁻¹`` replaced by ``I``.
- ``"implicit"``: the exact gradient by the implicit function theorem. With
  ``z* = f(z*)`` and ``J = ∂f/∂z`` at ``z*``, ``dL/dθ = (∂f/∂θ)ᵀ u`` where
  ``u = gᵀ(I − J)⁻¹`` solves the backward fixed point ``u = Jᵀu + g``, iterated with
  vector-Jacobian products until ``‖u_{k+1} − u_k‖ / ‖u_k‖ < backward_tol``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

BACKWARD_MODES = ("jfb", "implicit")


@dataclass
class FixedPointResult:
    """The solution and how the solve went.

    Attributes:
        z: the last iterate, same shape as ``z0``; carries gradient as ``backward`` says.
        residuals: ``‖f(z_i) − z_i‖ / ‖z_i‖`` for every step taken, first to last.
        steps: number of applications of f (the length of ``residuals``).
        converged: whether a residual fell below ``tol``.
        backward_residuals: filled during ``backward()`` in ``"implicit"`` mode: the
            relative change of the backward iterate per step.
    """

    z: torch.Tensor
    residuals: list[float]
    steps: int
    converged: bool
    backward_residuals: list[float] = field(default_factory=list)


def _relative(diff: torch.Tensor, ref: torch.Tensor, fallback: torch.Tensor) -> float:
    """‖diff‖ / ‖ref‖, or ‖diff‖ / ‖fallback‖ when ref is zero (a zero start z_0)."""
    ref_norm = ref.norm()
    denom = torch.where(ref_norm > 0, ref_norm, fallback.norm())
    return (diff.norm() / denom.clamp_min(1e-30)).item()


def _check(z0: torch.Tensor, max_steps: int, tol: float, damping: float, anderson: int,
           grad_tail: int, backward: str) -> None:
    if not isinstance(z0, torch.Tensor) or not z0.is_floating_point():
        raise ValueError(f"z0 must be a floating-point tensor; got {type(z0).__name__}"
                         + (f" of dtype {z0.dtype}" if isinstance(z0, torch.Tensor) else ""))
    if z0.dim() < 1 or z0.shape[0] < 1:
        raise ValueError(f"z0 needs a leading batch axis; got shape {tuple(z0.shape)}")
    for name, value, low in (("max_steps", max_steps, 1), ("grad_tail", grad_tail, 1),
                             ("anderson", anderson, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}; got {value!r}")
    if anderson == 1:
        raise ValueError("anderson is the memory of the acceleration: 0 (off) or >= 2; got 1")
    if not 0.0 <= damping < 1.0:
        raise ValueError(f"damping must be in [0, 1); got {damping!r}")
    if not tol >= 0.0:
        raise ValueError(f"tol must be >= 0; got {tol!r}")
    if backward not in BACKWARD_MODES:
        raise ValueError(f"backward must be one of {BACKWARD_MODES}; got {backward!r}")


def _anderson_mix(xs: list[torch.Tensor], fs: list[torch.Tensor], beta: float,
                  reg: float = 1e-8) -> torch.Tensor:
    """The Anderson iterate from histories xs, fs (each entry [B, N]) -> [B, N].

    Minimises ‖Σ α_j g_j‖² + reg‖α‖² with Σ α_j = 1, g_j = f_j − x_j, per example, through
    the bordered (KKT) system [[0, 1ᵀ], [1, GGᵀ + reg·I]] [λ; α] = [1; 0].
    """
    X, F = torch.stack(xs, 1), torch.stack(fs, 1)  # [B, m, N]
    G = F - X
    B, m, _ = G.shape
    gram = G @ G.transpose(1, 2)  # [B, m, m]
    scale = gram.diagonal(dim1=1, dim2=2).mean(-1).clamp_min(1e-12)  # [B]
    system = torch.zeros(B, m + 1, m + 1, dtype=G.dtype, device=G.device)
    system[:, 0, 1:] = 1.0
    system[:, 1:, 0] = 1.0
    eye = torch.eye(m, dtype=G.dtype, device=G.device)
    system[:, 1:, 1:] = gram / scale[:, None, None] + reg * eye
    rhs = torch.zeros(B, m + 1, 1, dtype=G.dtype, device=G.device)
    rhs[:, 0] = 1.0
    alpha = torch.linalg.solve(system, rhs)[:, 1:]  # [B, m, 1]
    mixed_f = (alpha * F).sum(1)
    mixed_x = (alpha * X).sum(1)
    return beta * mixed_f + (1.0 - beta) * mixed_x


def _solve(f: Callable[[torch.Tensor], torch.Tensor], z: torch.Tensor, steps: int, tol: float,
           damping: float, anderson: int, residuals: list[float],
           callback: Callable[[int, torch.Tensor], None] | None) -> tuple[torch.Tensor, bool]:
    """Up to `steps` iterations without autograd; appends to residuals. -> (z, converged)."""
    B = z.shape[0]
    xs: list[torch.Tensor] = []
    fs: list[torch.Tensor] = []
    # the least-squares mix needs float32 at least; float64 problems stay float64
    wide = torch.promote_types(z.dtype, torch.float32)
    with torch.no_grad():
        for _ in range(steps):
            fz = f(z)
            residuals.append(_relative(fz - z, z, fz))
            if callback is not None:
                callback(len(residuals), fz)
            if residuals[-1] < tol:
                return fz, True
            if anderson:
                xs.append(z.reshape(B, -1).to(wide))
                fs.append(fz.reshape(B, -1).to(wide))
                del xs[:-anderson], fs[:-anderson]
                z = _anderson_mix(xs, fs, 1.0 - damping).reshape(z.shape).to(z.dtype)
            else:
                z = fz if damping == 0.0 else damping * z + (1.0 - damping) * fz
    return z, False


def fixed_point(
    f: Callable[[torch.Tensor], torch.Tensor],
    z0: torch.Tensor,
    *,
    max_steps: int = 30,
    tol: float = 1e-4,
    damping: float = 0.0,
    anderson: int = 0,
    grad_tail: int = 1,
    backward: str = "jfb",
    backward_max_steps: int | None = None,
    backward_tol: float | None = None,
    callback: Callable[[int, torch.Tensor], None] | None = None,
) -> FixedPointResult:
    """Solve ``z = f(z)`` from ``z0``; see the module docstring for the methods.

    Args:
        f: maps a tensor shaped like z0 to one of the same shape (closing over its input
            and parameters); it must not change its arguments in place.
        z0: the start, ``[B, ...]``; Anderson mixes per example along the leading axis.
        max_steps: most applications of f in all (>= 1).
        tol: stop once the relative residual ``‖f(z) − z‖ / ‖z‖`` is below it.
        damping: in [0, 1): the weight of the old iterate in each update.
        anderson: 0 for plain or damped iteration, else the memory (>= 2).
        grad_tail: ``"jfb"`` only: how many final plain iterations carry gradient. The
            tail runs even after convergence, so a trained model always sees it.
        backward: ``"jfb"`` or ``"implicit"``. When autograd is off (``torch.no_grad()``)
            every step is a solver step and the mode does not matter.
        backward_max_steps, backward_tol: the implicit backward solve's limits (default
            ``max_steps`` and ``tol``).
        callback: called as ``callback(step, z)`` (no autograd) with every new iterate,
            step counted from 1; for diagnostics such as an energy per step.

    Returns:
        FixedPointResult.
    """
    _check(z0, max_steps, tol, damping, anderson, grad_tail, backward)
    residuals: list[float] = []
    z = z0.detach()
    grads = torch.is_grad_enabled()
    if not grads:
        z, converged = _solve(f, z, max_steps, tol, damping, anderson, residuals, callback)
        return FixedPointResult(z, residuals, len(residuals), converged)

    if backward == "jfb":
        tail = min(grad_tail, max_steps)
        z, converged = _solve(f, z, max_steps - tail, tol, damping, anderson, residuals,
                              callback)
        for _ in range(tail):
            fz = f(z)
            with torch.no_grad():
                residuals.append(_relative(fz - z, z, fz))
                if callback is not None:
                    callback(len(residuals), fz.detach())
            z = fz if damping == 0.0 else damping * z + (1.0 - damping) * fz
        converged = converged or residuals[-1] < tol
        return FixedPointResult(z, residuals, len(residuals), converged)

    z, converged = _solve(f, z, max_steps, tol, damping, anderson, residuals, callback)
    result = FixedPointResult(z, residuals, len(residuals), converged)
    # One differentiable application at the solution carries the gradient to f's inputs and
    # parameters; a hook on its output swaps the incoming g for u = (I − Jᵀ)⁻¹ g.
    z_star = z.detach()
    out = f(z_star)
    if out.requires_grad:
        probe = z_star.clone().requires_grad_()
        f_probe = f(probe)
        limit = backward_max_steps or max_steps
        btol = tol if backward_tol is None else backward_tol

        def solve_backward(g: torch.Tensor) -> torch.Tensor:
            u = g
            for _ in range(limit):
                (vjp,) = torch.autograd.grad(f_probe, probe, u, retain_graph=True)
                u_next = vjp + g
                result.backward_residuals.append(_relative(u_next - u, u_next, u))
                u = u_next
                if result.backward_residuals[-1] < btol:
                    break
            return u

        out.register_hook(solve_backward)
    result.z = out
    return result


__all__ = ["BACKWARD_MODES", "FixedPointResult", "fixed_point"]
