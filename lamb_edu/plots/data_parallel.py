"""Data-parallel training: measured step times by world size, the all-reduce against message size with
its latency + bytes/bandwidth fit, and the predicted efficiency of a large model over many workers."""

from __future__ import annotations

from typing import Any, Sequence

import matplotlib.pyplot as plt

from lamb_edu.backend import np

__all__ = ["plot_scaling", "plot_allreduce_fit", "plot_predicted_scaling"]

PARTS = (("compute_seconds", "compute (forward + backward of the rank's slice)", "tab:blue"),
         ("exposed_communication_seconds", "communication backward did not hide", "tab:red"),
         ("optimizer_seconds", "optimizer step", "tab:green"))


def plot_scaling(runs: Sequence[dict[str, Any]], title: str = "Data-parallel step, fixed global batch") -> Any:
    """Left: each run's step split into compute, exposed communication and optimizer (ms). Right: images/s.

    ``runs`` are ``runs`` of ``benchmarks/bench_data_parallel.py``'s JSON for one model (``ranks``,
    ``mode``, the three ``*_seconds`` and ``images_per_second``); one bar per run, one line per mode,
    each from the one-process reference (mode "single" when present).
    """
    figure, (split, throughput) = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)
    figure.suptitle(title)
    positions = np.arange(len(runs))
    bottom = np.zeros(len(runs))
    for key, label, color in PARTS:
        values = np.asarray([1e3 * run.get(key, 0.0) for run in runs])
        split.bar(positions, values, bottom=bottom, color=color, label=label)
        bottom += values
    split.set_xticks(positions, [f"{run['ranks']}\n{run.get('mode', 'plain')}" for run in runs], fontsize=8)
    split.set_xlabel("ranks (processes), mode")
    split.set_ylabel("time per step (ms), slowest rank")
    split.set_ylim(top=1.35 * bottom.max())  # room for the legend above the bars
    split.legend(fontsize=8, loc="upper left")
    # the reference: one process without DataParallel ("single") when measured, else plain on 1 rank
    one = next((run for run in runs if run.get("mode") == "single"),
               next((run for run in runs if run["ranks"] == 1), runs[0]))
    for mode, style in (("plain", "o-"), ("sharded", "s--")):
        shown = [one] + sorted((run for run in runs if run.get("mode", "plain") == mode and run["ranks"] > 1),
                               key=lambda run: run["ranks"])
        if len(shown) > 1:
            throughput.plot([run["ranks"] for run in shown], [run["images_per_second"] for run in shown], style,
                            label=f"measured, {mode}")
    ranks = sorted({run["ranks"] for run in runs})
    throughput.plot(ranks, [one["images_per_second"] * r / one["ranks"] for r in ranks], ":", color="0.4",
                    label="perfect scaling")
    throughput.set_xlabel("ranks (processes)")
    throughput.set_ylabel("images per second")
    throughput.set_xticks(ranks)
    throughput.legend(fontsize=8)
    for axis in (split, throughput):
        axis.grid(alpha=0.3)
    return figure


def plot_allreduce_fit(points: Sequence[dict[str, Any]], latency: float, bandwidth: float, ranks: int) -> Any:
    """Measured all-reduce time against message size (log-log) and the fitted ``latency + bytes/bandwidth``
    (a fit of the relative error, so the small messages weigh as much as the large)."""
    figure, axis = plt.subplots(figsize=(6.5, 4.2), constrained_layout=True)
    sizes = np.asarray([point["bytes"] for point in points], dtype=float)
    seconds = np.asarray([point["seconds"] for point in points], dtype=float)
    axis.loglog(sizes, 1e6 * seconds, "o", color="tab:red", label=f"measured, {ranks} ranks")
    grid = np.geomspace(sizes.min(), sizes.max(), 100)
    axis.loglog(grid, 1e6 * (latency + grid / bandwidth), "-", color="0.3",
                label=f"fit: {1e6 * latency:.0f} µs + bytes / ({bandwidth / 1e9:.2f} GB/s)")
    axis.set_xlabel("message size (bytes)")
    axis.set_ylabel("all-reduce time (µs)")
    axis.set_title("Cost of one all-reduce: latency, then bandwidth")
    axis.grid(alpha=0.3, which="both")
    axis.legend(fontsize=8)
    return figure


def plot_predicted_scaling(workers: Sequence[int], batches: Sequence[int],
                           predictions: dict[tuple[int, int], dict[str, float]], examples_per_epoch: float,
                           title: str) -> Any:
    """Left: efficiency (compute / step) against workers, one line per global batch. Right: hours per epoch.

    ``predictions[(workers, batch)]`` is ``distributed.predict_data_parallel_step``'s dict; missing
    pairs (a batch smaller than the workers) are left out of the lines.
    """
    figure, (efficiency, hours) = plt.subplots(1, 2, figsize=(11.5, 4.3), constrained_layout=True)
    figure.suptitle(title)
    colors = plt.cm.viridis(np.linspace(0.0, 0.9, len(batches)))
    for batch, color in zip(batches, colors):
        shown = [p for p in workers if (p, batch) in predictions]
        label = f"batch {batch // 1024}K" if batch >= 1024 else f"batch {batch}"
        efficiency.plot(shown, [100 * predictions[(p, batch)]["efficiency"] for p in shown], "o-", color=color,
                        label=label)
        steps = examples_per_epoch / batch  # fewer steps, so fewer all-reduces, per epoch
        hours.plot(shown, [steps * predictions[(p, batch)]["step_seconds"] / 3600 for p in shown], "o-",
                   color=color, label=label)
    efficiency.set_ylabel("efficiency (%): compute / step time")
    efficiency.set_ylim(0, 100)
    hours.set_ylabel("hours per epoch")
    hours.set_yscale("log")
    for axis in (efficiency, hours):
        axis.set_xscale("log", base=2)
        axis.set_xlabel("workers (GPUs)")
        axis.grid(alpha=0.3, which="both")
        axis.legend(fontsize=8)
    return figure
