"""Float64 NumPy re-implementations of every optimizer's equations, shared by the optimizer tests.

Written straight from the papers, one step at a time, sharing no code with ``lamb_edu.optim``:
``test_optim_reference`` runs the optimizers against the multi-step forms (``sgd``, ``adam``,
``lamb``...: initial weights and per-step gradients in, final weights out), ``test_fast_paths`` and
``test_gpu`` run the fused steps against the one-tensor steps (``adam_step``, ``lamb_step``) that the
multi-step forms are made of. Each trust-ratio reference also returns, per parameter, the
``(weight_norm, ratio_denominator, trust_ratio)`` the optimizer must record at the last step.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np


def l2(x: Any) -> float:
    """‖x‖₂ in float64."""
    return float(np.sqrt(np.sum(np.asarray(x, dtype=np.float64) ** 2)))


def assert_close_to_float32_rounding(actual: Any, expected: Any) -> None:
    """Equal up to a few float32 roundings of the array's own scale (25 steps of sums accumulate them)."""
    expected = np.asarray(expected, dtype=np.float64)
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-6 * np.abs(expected).max())


# ------------------------------------------------------------------------------ one tensor, one step
def adam_step(w, g, m, v, t, lr, beta1, beta2, eps, weight_decay, decoupled, bias_correction=True, v_max=None):
    """Adam (L2 decay on g) or AdamW (``decoupled``: w shrinks by lr·λ·w) step t; returns (w, m, v, v_max).

    With ``v_max`` (AMSGrad) v̂ uses the running maximum of v.
    """
    if decoupled:
        w = w - lr * weight_decay * w
    else:
        g = g + weight_decay * w
    m = beta1 * m + (1 - beta1) * g
    v = beta2 * v + (1 - beta2) * g * g
    second = v
    if v_max is not None:
        v_max = second = np.maximum(v_max, v)
    m_hat = m / (1 - beta1**t) if bias_correction else m
    v_hat = second / (1 - beta2**t) if bias_correction else second
    return w - lr * m_hat / (np.sqrt(v_hat) + eps), m, v, v_max


def lamb_step(w, g, m, v, t, lr, beta1, beta2, eps, weight_decay, clamp_value, grad_scale=1.0,
              grad_averaging=True, trust_clip=False, use_trust_ratio=True, bias_correction=True):
    """LAMB (You et al., 2019, Algorithm 2) step t; returns (w, m, v, (‖w‖, ‖u‖, trust_ratio))."""
    g = g * grad_scale
    m = beta1 * m + ((1 - beta1) if grad_averaging else 1.0) * g
    v = beta2 * v + (1 - beta2) * g * g
    m_hat = m / (1 - beta1**t) if bias_correction else m
    v_hat = v / (1 - beta2**t) if bias_correction else v
    u = m_hat / (np.sqrt(v_hat) + eps) + weight_decay * w
    weight_norm, update_norm = l2(w), l2(u)
    ratio = 1.0
    if weight_norm > 0 and update_norm > 0:
        ratio = (min(weight_norm, clamp_value) if clamp_value is not None else weight_norm) / update_norm
        ratio = min(ratio, 1.0) if trust_clip else ratio
    step_ratio = ratio if use_trust_ratio else 1.0
    return w - lr * step_ratio * u, m, v, (weight_norm, update_norm, ratio)


# ------------------------------------------------------------------------------ many tensors, many steps
def sgd(w, grads, lr, momentum=0.0, dampening=0.0, nesterov=False, weight_decay=0.0):
    """SGD as ``torch.optim.SGD``: the buffer starts at the first gradient."""
    w = [x.copy() for x in w]
    buffers = [None] * len(w)
    for step_grads in grads:
        for i, g in enumerate(step_grads):
            g = g + weight_decay * w[i]
            if momentum != 0:
                buffers[i] = g.copy() if buffers[i] is None else momentum * buffers[i] + (1 - dampening) * g
                d = g + momentum * buffers[i] if nesterov else buffers[i]
            else:
                d = g
            w[i] = w[i] - lr * d
    return w


def adam(w, grads, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False, bias_correction=True,
         decoupled=False):
    """Adam / AdamW over all steps (``adam_step`` per tensor)."""
    w = [x.copy() for x in w]
    m, v = [np.zeros_like(x) for x in w], [np.zeros_like(x) for x in w]
    v_max = [np.zeros_like(x) if amsgrad else None for x in w]
    for t, step_grads in enumerate(grads, start=1):
        for i, g in enumerate(step_grads):
            w[i], m[i], v[i], v_max[i] = adam_step(w[i], g, m[i], v[i], t, lr, *betas, eps, weight_decay, decoupled,
                                                   bias_correction, v_max[i])
    return w


def lamb(w, grads, lr=1e-3, betas=(0.9, 0.999), eps=1e-6, weight_decay=0.0, bias_correction=True,
         clamp_value=10.0, trust_clip=False, use_trust_ratio=True, grad_averaging=True, max_grad_norm=None):
    """LAMB over all steps (``lamb_step`` per tensor, after the global-norm clip); returns (weights, records)."""
    w = [x.copy() for x in w]
    m, v = [np.zeros_like(x) for x in w], [np.zeros_like(x) for x in w]
    records = [None] * len(w)
    for t, step_grads in enumerate(grads, start=1):
        grad_scale = 1.0
        if max_grad_norm is not None:
            global_norm = np.sqrt(sum(np.sum(g * g) for g in step_grads))
            if global_norm > max_grad_norm:
                grad_scale = max_grad_norm / global_norm
        for i, g in enumerate(step_grads):
            w[i], m[i], v[i], records[i] = lamb_step(
                w[i], g, m[i], v[i], t, lr, *betas, eps, weight_decay, clamp_value, grad_scale=grad_scale,
                grad_averaging=grad_averaging, trust_clip=trust_clip, use_trust_ratio=use_trust_ratio,
                bias_correction=bias_correction)
    return w, records


def article_lamb(w, grads, lr=1e-3, betas=(0.9, 0.999), eps=1e-6, weight_decay=0.0, adam=False):
    """The rule of cybertronai/pytorch-lamb (the article's code), transcribed line by line."""
    beta1, beta2 = betas
    w = [x.copy() for x in w]
    exp_avg = [np.zeros_like(x) for x in w]
    exp_avg_sq = [np.zeros_like(x) for x in w]
    for step_grads in grads:
        for i, grad in enumerate(step_grads):
            exp_avg[i] = exp_avg[i] * beta1 + (1 - beta1) * grad
            exp_avg_sq[i] = exp_avg_sq[i] * beta2 + (1 - beta2) * grad * grad
            step_size = lr
            weight_norm = np.clip(np.sqrt(np.sum(w[i] ** 2)), 0, 10)
            adam_step = exp_avg[i] / (np.sqrt(exp_avg_sq[i]) + eps)
            if weight_decay != 0:
                adam_step = adam_step + weight_decay * w[i]
            adam_norm = np.sqrt(np.sum(adam_step**2))
            trust_ratio = 1 if weight_norm == 0 or adam_norm == 0 else weight_norm / adam_norm
            if adam:
                trust_ratio = 1
            w[i] = w[i] + (-step_size * trust_ratio) * adam_step
    return w


def adagrad(w, grads, lr=1e-2, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0, eps=1e-10):
    w = [x.copy() for x in w]
    G = [np.full_like(x, initial_accumulator_value) for x in w]
    for t, step_grads in enumerate(grads, start=1):
        for i, g in enumerate(step_grads):
            g = g + weight_decay * w[i]
            lr_t = lr / (1 + (t - 1) * lr_decay)
            G[i] = G[i] + g * g
            w[i] = w[i] - lr_t * g / (np.sqrt(G[i]) + eps)
    return w


def rmsprop(w, grads, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False):
    w = [x.copy() for x in w]
    v = [np.zeros_like(x) for x in w]
    g_bar = [np.zeros_like(x) for x in w]
    b = [np.zeros_like(x) for x in w]
    for step_grads in grads:
        for i, g in enumerate(step_grads):
            g = g + weight_decay * w[i]
            v[i] = alpha * v[i] + (1 - alpha) * g * g
            if centered:
                g_bar[i] = alpha * g_bar[i] + (1 - alpha) * g
                s = np.sqrt(v[i] - g_bar[i] ** 2) + eps
            else:
                s = np.sqrt(v[i]) + eps
            if momentum > 0:
                b[i] = momentum * b[i] + g / s
                w[i] = w[i] - lr * b[i]
            else:
                w[i] = w[i] - lr * g / s
    return w


def lars(w, grads, lr, momentum=0.9, weight_decay=0.0, trust_coefficient=1e-3, eps=1e-8, nesterov=False,
         use_trust_ratio=True):
    """LARS (You, Gitman & Ginsburg, 2017); returns (weights, records), the denominator being ‖g‖ + λ‖w‖."""
    w = [x.copy() for x in w]
    v = [np.zeros_like(x) for x in w]
    records = [None] * len(w)
    for step_grads in grads:
        for i, g in enumerate(step_grads):
            weight_norm, grad_norm = l2(w[i]), l2(g)
            if weight_norm == 0 or grad_norm == 0:
                local_lr = 1.0
            else:
                local_lr = trust_coefficient * weight_norm / (grad_norm + weight_decay * weight_norm + eps)
            records[i] = (weight_norm, grad_norm + weight_decay * weight_norm, local_lr)
            used = local_lr if use_trust_ratio else 1.0
            step = lr * used * (g + weight_decay * w[i])
            v[i] = momentum * v[i] + step
            w[i] = w[i] - (momentum * v[i] + step if nesterov else v[i])
    return w, records


def lookahead(w, grads, inner_step: Callable, k, alpha):
    """``inner_step(weights, step_grads, state)`` is one step of the inner rule; slow weights every k."""
    fast = [x.copy() for x in w]
    slow = [x.copy() for x in w]
    state: dict[str, Any] = {}
    for t, step_grads in enumerate(grads, start=1):
        fast = inner_step(fast, step_grads, state)
        if t % k == 0:
            slow = [s + alpha * (f - s) for s, f in zip(slow, fast)]
            fast = [s.copy() for s in slow]
    return fast


def heavy_ball_step(lr, momentum):
    """One step of SGD with momentum (b ← momentum·b + g, w ← w − lr·b) for ``lookahead``."""
    def step(weights, step_grads, state):
        buffers = state.setdefault("b", [None] * len(weights))
        for i, g in enumerate(step_grads):
            buffers[i] = g.copy() if buffers[i] is None else momentum * buffers[i] + g
        return [x - lr * b for x, b in zip(weights, buffers)]
    return step


def reference_lamb2019(weights, grads, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, adam=False):
    """Weights after every step, and per step and parameter the (r, r1, r2) of pytorch-lamb ff2245e."""
    beta1, beta2 = betas
    w = [x.copy() for x in weights]
    m = [np.zeros_like(x) for x in w]
    v = [np.zeros_like(x) for x in w]
    records = []
    for t, step_grads in enumerate(grads, start=1):
        row = []
        for i, grad in enumerate(step_grads):
            g = grad + weight_decay * w[i]
            m[i] = beta1 * m[i] + (1 - beta1) * g
            v[i] = beta2 * v[i] + (1 - beta2) * g * g
            adam_step = m[i] / (np.sqrt(v[i]) + eps)
            step_size = lr * np.sqrt(1 - beta2**t) / (1 - beta1**t)
            r1 = np.sqrt(np.mean(w[i] ** 2))
            r2 = np.sqrt(np.mean(adam_step**2))
            r = 1.0 if r1 == 0 or r2 == 0 else min(r1 / r2, 10.0)
            row.append((r, r1, r2))
            w[i] = w[i] - step_size * (1.0 if adam else r) * adam_step
        records.append(row)
    return w, records
