"""What the loop measures besides the loss: test loss and accuracy, and per-parameter norms.

``evaluate`` scores a model without building a graph. ``StepLogger`` records, every ``log_every``
steps and at step 1, the weight norm ‖w‖ each parameter had before the step and, for optimizers that
compute them (LAMB, LARS, also through Lookahead), the update norm and trust ratio they recorded in
``optimizer.state[p]``; it also hands each logged step to the user's callback.
"""

from __future__ import annotations

from typing import Any, Callable

from lamb_edu import backend
from lamb_edu.autograd import Tensor, no_grad
from lamb_edu.nn import Module, cross_entropy
from lamb_edu.optim.functional import TRUST_KEYS, norm
from lamb_edu.train.history import History

np = backend.np

__all__ = ["evaluate", "evaluation_batch_size", "trust_statistics", "StepLogger"]

Callback = Callable[[dict[str, Any]], Any]


def evaluation_batch_size(model: Module) -> int:
    """Examples ``evaluate`` scores at a time: 2000, or 500 for a model with convolutions (4-D weights).

    A convolution's im2col copies each image about kernel-area times (2000 images cost the CNN about
    370 MB); fully connected models keep 2000, so their test losses stay bit for bit what they were
    (a matrix product's rounding depends on how many rows it multiplies at once).
    """
    return 500 if any(p.ndim == 4 for p in model.parameters()) else 2000


def evaluate(model: Module, x: Any, y: Any, batch_size: int | None = None) -> tuple[float, float]:
    """Mean cross-entropy and accuracy (a fraction) of ``model`` on ``(x, y)``, without building a graph.

    ``batch_size`` examples are scored at a time (default: ``evaluation_batch_size(model)``).
    """
    batch_size = batch_size or evaluation_batch_size(model)
    total_loss, correct = 0.0, 0
    with no_grad(), np.errstate(over="ignore", invalid="ignore"):
        for begin in range(0, len(x), batch_size):
            xb, yb = x[begin : begin + batch_size], y[begin : begin + batch_size]
            logits = model(Tensor(xb))
            total_loss += cross_entropy(logits, yb).item() * len(xb)
            correct += int((logits.data.argmax(axis=1) == yb).sum())
    return total_loss / len(x), correct / len(x)


def _innermost(optimizer: Any) -> Any:
    """The optimizer that keeps per-parameter state: Lookahead and similar wrappers are looked through."""
    while getattr(optimizer, "optimizer", None) is not None:
        optimizer = optimizer.optimizer
    return optimizer


def trust_statistics(optimizer: Any, parameters: list[Tensor]) -> dict[str, list[float]] | None:
    """Per parameter, the ``weight_norm``, ``ratio_denominator`` and ``trust_ratio`` the last step recorded.

    None when the optimizer (or the one a wrapper holds) keeps no such entries, as Adam or SGD.
    """
    state = getattr(_innermost(optimizer), "state", {})
    entries = [state.get(p) for p in parameters]
    if not all(entry is not None and all(key in entry for key in TRUST_KEYS) for entry in entries):
        return None
    return {key: [float(entry[key]) for entry in entries] for key in TRUST_KEYS}


class StepLogger:
    """Decides which steps are logged and records them in the history (and the callback)."""

    def __init__(self, history: History, optimizer: Any, parameters: list[Tensor], log_every: int,
                 callback: Callback | None) -> None:
        self.history, self.optimizer, self.parameters = history, optimizer, parameters
        self.log_every, self.callback = log_every, callback
        self._norms_before: list[float] = []
        self._lr = 0.0

    def logs(self, step: int) -> bool:
        """True for step 1 and every ``log_every``-th step."""
        return step == 1 or step % self.log_every == 0

    def before_step(self, step: int) -> None:
        """Note the lr this step uses and, when the optimizer will not record it, ‖w‖ before the step."""
        if not self.logs(step):
            return
        self._lr = float(self.optimizer.param_groups[0]["lr"])  # a scheduler changes it after the step
        # LAMB and LARS compute ‖w‖ themselves; for the others it costs one dot product per parameter.
        self._norms_before = [] if self.history.records_trust else [norm(p.data) for p in self.parameters]

    def after_step(self, step: int, epoch: int) -> None:
        """Record the row of a logged step and call back with its mean loss since the last logged step."""
        if not self.logs(step):
            return
        recorded = trust_statistics(self.optimizer, self.parameters)
        # Prefer the optimizer's own ‖w‖ (what its trust ratio used); both are the norm before the step.
        self.history.append_log(step, self._lr, recorded["weight_norm"] if recorded else self._norms_before, recorded)
        if self.callback is None:
            return
        previous = self.history.log_steps[-2] if len(self.history.log_steps) > 1 else 0
        event = self._loss_event(step, epoch, previous=previous)
        event["lr"] = self._lr
        for key in TRUST_KEYS:
            table = getattr(self.history, key)
            if len(table) == len(self.history.log_steps):
                event[key] = dict(zip(self.history.parameter_names, table[-1].tolist()))
        self.callback(event)

    def last_good_step(self, epoch: int) -> None:
        """Before a diverged run stops, report the loss up to its last good step (curves show the blow-up)."""
        last_logged = int(self.history.log_steps[-1]) if len(self.history.log_steps) else 0
        if self.callback is not None and self.history.steps > last_logged:
            self.callback(self._loss_event(self.history.steps, epoch, previous=last_logged))

    def _loss_event(self, step: int, epoch: int, previous: int) -> dict[str, Any]:
        losses = self.history.step_loss
        return {"type": "step", "step": step, "epoch": epoch + 1, "loss": float(losses[step - 1]),
                "loss_avg": float(losses[previous:step].mean())}
