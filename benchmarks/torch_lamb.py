"""The PyTorch LAMBs the benchmarks time lamb-edu against: one written here, and timm's ``Lamb``.

``torch_lamb_step`` is ``lamb_edu.optim.LAMB``'s rule (bias correction, decoupled weight decay, the
trust ratio φ(‖w‖)/‖u‖ with φ clamping at ``clamp_value``) in torch foreach operations, one
multi-tensor call per operation; ``tests/test_torch_lamb.py`` checks it against ``optim.LAMB``.
timm's ``Lamb`` (``timm.optim.Lamb``, the LAMB most PyTorch users run) differs in two settings that
the benchmarks switch off or note: it clips the global gradient norm at 1 by default (here
``max_grad_norm=None``) and it does not clamp ‖w‖ (lamb-edu's ``clamp_value=None``).

``lamb_stepper(library, params, ...)`` gives a no-argument step for either ("torch" or "timm").
Imported only by the benchmarks and their test, never by the library; torch and timm are optional.
"""

from __future__ import annotations

import importlib.util
from typing import Any, Callable


def have(module: str) -> bool:
    """True when ``module`` (torch, timm) can be imported here."""
    return importlib.util.find_spec(module) is not None


def torch_lamb_step(params, grads, ms, vs, step, lr, betas, weight_decay, eps=1e-6, clamp_value=10.0) -> None:
    """One LAMB step at step t = ``step`` (1 at the first), in place on params, ms and vs (lists of tensors)."""
    import torch

    beta1, beta2 = betas
    torch._foreach_mul_(ms, beta1)
    torch._foreach_add_(ms, grads, alpha=1 - beta1)
    torch._foreach_mul_(vs, beta2)
    torch._foreach_addcmul_(vs, grads, grads, value=1 - beta2)
    bias_correction1, bias_correction2 = 1 - beta1**step, 1 - beta2**step
    denominators = torch._foreach_sqrt(vs)
    torch._foreach_div_(denominators, bias_correction2**0.5)
    torch._foreach_add_(denominators, eps)
    updates = torch._foreach_div(ms, denominators)
    torch._foreach_div_(updates, bias_correction1)
    if weight_decay:
        torch._foreach_add_(updates, params, alpha=weight_decay)
    weight_norms = torch.stack(torch._foreach_norm(params))
    update_norms = torch.stack(torch._foreach_norm(updates))
    clipped = weight_norms.clamp(max=clamp_value) if clamp_value is not None else weight_norms
    ratios = torch.where((weight_norms > 0) & (update_norms > 0), clipped / update_norms, torch.ones_like(weight_norms))
    torch._foreach_mul_(updates, [-lr * r for r in ratios.tolist()])
    torch._foreach_add_(params, updates)


def lamb_stepper(library: str, params: list[Any], lr: float, betas: tuple[float, float], weight_decay: float,
                 eps: float = 1e-6) -> Callable[[], None]:
    """A no-argument LAMB step over ``params`` (their ``.grad``): "torch" (``torch_lamb_step``) or "timm"."""
    import torch

    if library == "timm":
        from timm.optim import Lamb

        return Lamb(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, max_grad_norm=None).step
    if library != "torch":
        raise ValueError(f"library must be 'torch' or 'timm', got {library!r}")
    ms, vs = [torch.zeros_like(p) for p in params], [torch.zeros_like(p) for p in params]
    counter = [0]

    def step() -> None:
        counter[0] += 1
        with torch.no_grad():
            torch_lamb_step(params, [p.grad for p in params], ms, vs, counter[0], lr, betas, weight_decay, eps)

    return step
