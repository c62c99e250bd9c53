"""The progress bar of one epoch: steps done and a running mean of the loss (tqdm, only when asked)."""

from __future__ import annotations

from typing import Any

__all__ = ["EpochProgress"]


class EpochProgress:
    """A tqdm bar over an epoch's steps, or nothing at all when ``enabled`` is false."""

    def __init__(self, enabled: bool, total: int, initial: int, description: str) -> None:
        self._bar: Any = None
        self._running_loss: float | None = None
        if enabled:
            from tqdm.auto import tqdm  # noqa: PLC0415  (only when a bar is shown)

            self._bar = tqdm(total=total, initial=initial, desc=description, unit="step", leave=False,
                             dynamic_ncols=True)

    def update(self, step: int, loss: float) -> None:
        """One more step; every tenth step the bar shows the exponential mean of the loss."""
        running = self._running_loss
        self._running_loss = loss if running is None else 0.9 * running + 0.1 * loss
        if self._bar is not None:
            self._bar.update(1)
            if step % 10 == 0:
                self._bar.set_postfix(loss=f"{self._running_loss:.4f}", refresh=False)

    def close(self) -> None:
        """Remove the bar (it is not left on screen)."""
        if self._bar is not None:
            self._bar.close()

    def __enter__(self) -> EpochProgress:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()
