"""AdamW: Adam with decoupled weight decay (Loshchilov & Hutter, 2019), as ``torch.optim.AdamW``::

    w ← w − lr·weight_decay·w             decay the weights directly, not through the gradient
    m ← β1·m + (1 − β1)·g,  v ← β2·v + (1 − β2)·g²
    w ← w − lr·m̂ / (√v̂ + eps)

With Adam's L2 term the decay is divided by √v̂ like the rest of the gradient, so weights with large
gradients are barely decayed; decoupling makes every weight decay at the same rate. LAMB uses this
form of decay inside its update.
"""

from __future__ import annotations

from typing import Any, Iterable

from lamb_edu.optim.adam import Adam

__all__ = ["AdamW"]


class AdamW(Adam):
    """``AdamW(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False, bias_correction=True,
    fused=True)``."""

    decoupled_weight_decay = True

    def __init__(
        self, params: Iterable[Any], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
        weight_decay: float = 1e-2, amsgrad: bool = False, bias_correction: bool = True, fused: bool = True,
    ) -> None:
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                         bias_correction=bias_correction, fused=fused)
