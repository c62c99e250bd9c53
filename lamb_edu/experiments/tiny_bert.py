"""Why LAMB and not LARS: a tiny BERT on tiny Shakespeare, the network the layer-wise rule was made for.

LAMB (You et al. 2019) was built to train BERT at huge batches, where LARS, which trains ResNets
there, fails; Nado et al. (2021) answer that a well-tuned AdamW matches LAMB on BERT too. This study
asks both questions of a post-LN ``nn.TinyBERT`` learning masked characters (BERT's 15 % masking):

- AdamW, LARS, LAMB and SGD with Nesterov momentum at batch sizes from ``batch_sizes[0]`` to
  ``batch_sizes[-1]`` windows of ``context`` characters, all for one fixed budget of training
  tokens (a larger batch takes fewer steps), with a linear warm-up over 10 % of the steps and a
  linear decay to zero;
- every (optimizer, batch size) tuned with the same budget of ``trials`` learning rates, drawn
  quasi-randomly (``tuning.tune``) from a range centred on the optimizer's lr at the smallest batch,
  scaled by its rule (square root for AdamW and LAMB, linear for SGD and LARS); the trial with the
  lowest validation loss wins and is trained again from seeds 1 and 2 (the trials ran from seed 0);
- for LAMB and LARS, the trust ratio, ‖w‖ and ‖u‖ of every tensor over the training of the chosen
  run at the smallest batch, grouped by kind (``nn.group_by_kind``): the figure the LAMB paper's
  argument rests on.

Scores are on a fixed validation subset of the last 10 % of the text (masked once, with a fixed seed):
masked-character accuracy and loss. Choosing and reporting use that same subset; the report seeds are
fresh, so the reported mean is not the luck of the selection seed, but the subset is shared.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from typing import Any

from lamb_edu import backend, data, nn, train
from lamb_edu.experiments.large_batch import StudyOptimizer
from lamb_edu.experiments.tuning import Dimension, SearchSpace, tune, warmup_steps
from lamb_edu.optim import schedules
from lamb_edu.text_data import IGNORE

np = backend.np

__all__ = ["TINY_BERT_OPTIMIZERS", "TinyBertSettings", "FULL", "QUICK", "TinyBertRun", "run_tiny_bert", "tune_cell",
           "TinyBertResult", "tiny_bert", "trust_by_kind", "unigram_accuracy"]

# lr at the smallest batch each range is centred on, and
# decoupled weight decay 0.01 for AdamW and LAMB as in the LAMB paper, none for SGD and LARS (as in
# the large-batch study). LARS's lr multiplies its trust coefficient 0.001: a step is lr/1000 of ‖w‖.
# The centres come from single hand runs at batch 16, context 32, 1M tokens: AdamW 0.003 crossed the
# plateau (0.005 not yet at 0.66M tokens); LAMB 0.01 and 0.02 and LARS 4 and 8 stayed on it, LAMB 0.03
# and LARS 15 fell below it; SGD 1.0 diverged at once. AdamW's centre was found with more runs than
# the others': a bias towards AdamW that the trials (the same number for all) only partly correct.
TINY_BERT_OPTIMIZERS = (
    StudyOptimizer("adamw", "AdamW", "AdamW", "sqrt", (0.003,), {"weight_decay": 0.01, "eps": 1e-6}),
    StudyOptimizer("lars", "LARS", "LARS", "linear", (6.0,), {"momentum": 0.9}),
    StudyOptimizer("lamb", "LAMB", "LAMB", "sqrt", (0.015,), {"weight_decay": 0.01, "eps": 1e-6}),
    StudyOptimizer("sgd", "SGD + Nesterov momentum", "SGD", "linear", (0.3,), {"momentum": 0.9, "nesterov": True}),
)


@dataclass(frozen=True)
class TinyBertSettings:
    """The study's size: model, data, budget, batch sizes and the tuning budget."""

    context: int = 32
    d_model: int = 64
    layers: int = 2
    heads: int = 4
    token_budget: int = 1_200_000  # training tokens of every run, whatever its batch
    batch_sizes: tuple[int, ...] = (16, 128, 512, 2048)
    optimizers: tuple[str, ...] = ("adamw", "lars", "lamb", "sgd")
    trials: int = 2  # learning rates tried per (optimizer, batch size), from seed 0
    lr_range: float = 2.5  # the range is centre/lr_range .. centre*lr_range, log-uniform
    report_seeds: tuple[int, ...] = (1, 2)
    warmup_share: float = 0.1
    validation_windows: int = 256
    evaluations: int = 8  # validation scores along each run (for the curves), the last at its end
    log_every: int = 5  # steps between the trust-ratio rows of a LAMB or LARS run
    micro_batch: int = 32  # windows per forward pass: a larger batch is accumulated (same step, cache-sized)

    def passes(self, available: int) -> tuple[int, int]:
        """``(epochs, windows)``: the token budget as ``epochs`` passes over the first ``windows`` training windows.

        One pass when the budget fits in the ``available`` windows; otherwise the fewest passes that
        hold it, over as many windows as make it up (each pass masks them afresh).
        """
        wanted = self.token_budget // self.context
        epochs = max(1, math.ceil(wanted / available))
        return epochs, wanted // epochs

    def steps(self, batch_size: int, available: int) -> int:
        """Optimizer steps of a run at ``batch_size`` (the last batch of each pass may be smaller)."""
        epochs, windows = self.passes(available)
        return epochs * math.ceil(windows / batch_size)


FULL = TinyBertSettings()
QUICK = TinyBertSettings(context=32, d_model=32, heads=2, token_budget=200_000, batch_sizes=(16, 2048), trials=1,
                         lr_range=1.5, report_seeds=(), validation_windows=128, evaluations=4)


@dataclass
class TinyBertRun:
    """One training run: the ``results.json`` row plus its validation curve and, for LAMB/LARS, trust by kind."""

    optimizer: str
    batch_size: int
    tokens_per_step: int
    lr: float
    seed: int
    steps: int
    final_val_loss: float  # nats per masked character
    final_val_bits_per_char: float
    final_val_masked_accuracy: float
    diverged: bool
    role: str  # "trial" (seed 0, one of the lrs tried) or "report" (the chosen lr, another seed)
    seconds: float
    curve_steps: list[int] = field(default_factory=list)
    curve_accuracy: list[float] = field(default_factory=list)
    trust: dict[str, Any] | None = None

    def row(self) -> dict[str, Any]:
        """The run as plain JSON values, the per-kind trust record left out (it goes to ``trust``)."""
        return {key: value for key, value in asdict(self).items() if key != "trust"}


def _schedule(settings: TinyBertSettings, steps: int) -> schedules.Schedule:
    warmup = warmup_steps(steps, steps, settings.warmup_share) if steps > 1 else 0
    return schedules.WarmupPolynomialDecay(warmup, max(steps, warmup + 1))


def run_tiny_bert(task: train.MaskedLM, settings: TinyBertSettings, optimizer: StudyOptimizer, batch_size: int,
                  lr: float, seed: int, role: str = "trial") -> TinyBertRun:
    """Train one TinyBERT for the token budget and score it on the validation subset."""
    model = nn.TinyBERT(task.text.vocab_size, settings.context, d_model=settings.d_model, n_layers=settings.layers,
                        n_heads=settings.heads, d_ff=4 * settings.d_model, seed=seed)
    named = list(model.named_parameters())
    made = optimizer.make(named, lr)
    epochs, windows = settings.passes(task.size)
    steps = settings.steps(batch_size, task.size)
    scheduler = schedules.LRScheduler(made, _schedule(settings, steps))
    # the callback hears of every log_every-th step: score the curve at a multiple of it
    every = max(1, steps // settings.evaluations // settings.log_every) * settings.log_every
    curve: tuple[list[int], list[float]] = ([], [])

    def score(event: dict[str, Any]) -> None:
        if event["type"] == "step" and event["step"] % every == 0 and event["step"] < steps:
            curve[0].append(event["step"])
            curve[1].append(task.evaluate(model)["test_accuracy"])

    records_trust = optimizer.name in ("lamb", "lars")
    history = train.fit(model, made, task, epochs=epochs, batch_size=batch_size, seed=seed, train_size=windows,
                        scheduler=scheduler, progress=False, callback=score, log_every=settings.log_every,
                        accumulate=max(1, batch_size // settings.micro_batch))
    final = history.epochs[-1] if history.epochs else {}
    loss = float(final.get("test_loss", math.nan))
    diverged = history.nonfinite_step is not None or not math.isfinite(loss)
    curve[0].append(history.steps)
    curve[1].append(float(final.get("test_accuracy", math.nan)))
    return TinyBertRun(optimizer.name, batch_size, batch_size * settings.context, lr, seed, history.steps, loss,
                       loss / math.log(2), float(final.get("test_accuracy", math.nan)), diverged, role,
                       history.seconds, curve[0], curve[1], trust_by_kind(history) if records_trust else None)


def trust_by_kind(history: train.History) -> dict[str, Any]:
    """Per kind of tensor (``nn.group_by_kind``) and logged step: the median trust ratio, ‖w‖ and ratio
    denominator of its tensors.

    Also the smallest and largest trust ratio of each kind over the run's logged steps, so a table
    can say by how many orders of magnitude the kinds differ.
    """
    groups = nn.group_by_kind(history.parameter_names)
    columns = {name: index for index, name in enumerate(history.parameter_names)}
    record: dict[str, Any] = {"steps": [int(step) for step in history.log_steps], "kinds": {}}
    for kind, names in groups.items():
        picked = [columns[name] for name in names]
        entry = {key: np.median(getattr(history, key)[:, picked], axis=1).tolist()
                 for key in ("trust_ratio", "weight_norm", "ratio_denominator") if len(getattr(history, key))}
        ratios = history.trust_ratio[:, picked] if len(history.trust_ratio) else np.zeros((0, 1))
        entry["tensors"] = names
        entry["trust_ratio_range"] = [float(ratios.min()), float(ratios.max())] if ratios.size else None
        record["kinds"][kind] = entry
    return record


@dataclass
class TinyBertResult:
    """The study: its settings, every run (trials and reports), the tuning records and the wall time."""

    settings: TinyBertSettings
    runs: list[TinyBertRun]
    tunings: list[dict[str, Any]]
    seconds: float
    unigram_accuracy: float  # guessing the most frequent character at every masked validation position

    def chosen(self, optimizer: str, batch_size: int) -> list[TinyBertRun]:
        """The runs of the chosen lr at this cell, seed 0 first (its winning trial), then the report seeds."""
        tuning = next(t for t in self.tunings if t["optimizer"] == optimizer and t["batch_size"] == batch_size)
        lr = tuning["best"]["settings"]["lr"]
        cell = [run for run in self.runs
                if run.optimizer == optimizer and run.batch_size == batch_size and run.lr == lr]
        return sorted(cell, key=lambda run: run.seed)

    def table(self) -> list[dict[str, Any]]:
        """One row per (optimizer, batch size): the chosen lr and the mean and each seed of its accuracy and loss."""
        rows = []
        for optimizer in self.settings.optimizers:
            for batch_size in self.settings.batch_sizes:
                runs = self.chosen(optimizer, batch_size)
                accuracy = [run.final_val_masked_accuracy for run in runs]
                rows.append({"optimizer": optimizer, "batch_size": batch_size,
                             "tokens_per_step": runs[0].tokens_per_step, "steps": runs[0].steps, "lr": runs[0].lr,
                             "seeds": [run.seed for run in runs],
                             "accuracy": accuracy, "mean_accuracy": float(np.mean(accuracy)),
                             "bits_per_char": [run.final_val_bits_per_char for run in runs],
                             "diverged": sum(run.diverged for run in runs)})
        return rows

    def best_at(self, batch_size: int) -> dict[str, Any]:
        """The row with the highest mean accuracy at ``batch_size``."""
        rows = [row for row in self.table() if row["batch_size"] == batch_size]
        return max(rows, key=lambda row: row["mean_accuracy"])

    def trust(self) -> dict[str, Any]:
        """Per optimizer (LAMB, LARS): the per-kind trust record of its chosen seed-0 run at the smallest batch."""
        smallest = self.settings.batch_sizes[0]
        return {name: self.chosen(name, smallest)[0].trust
                for name in ("lamb", "lars") if name in self.settings.optimizers}

    def trust_spread(self) -> dict[str, dict[str, Any]]:
        """Per optimizer (LAMB, LARS): each kind's median trust ratio over its run, and the largest/smallest ratio."""
        spread = {}
        for name, record in self.trust().items():
            medians = {kind: float(np.median(entry["trust_ratio"])) for kind, entry in record["kinds"].items()
                       if entry.get("trust_ratio")}
            high, low = max(medians, key=medians.get), min(medians, key=medians.get)
            spread[name] = {"medians": medians, "highest": high, "lowest": low,
                            "orders_of_magnitude": math.log10(medians[high] / medians[low])}
        return spread

    def verdict(self) -> list[str]:
        """The study's answers as sentences built from its numbers (what the notebook prints)."""
        smallest, rows = self.settings.batch_sizes[0], self.table()
        best = self.best_at(smallest)
        lines = [f"Smallest batch ({smallest}): best is {best['optimizer']} at lr {best['lr']:.3g}, validation masked "
                 f"accuracy {_percent(best['accuracy'])} (seeds {best['seeds']}); always guessing a space scores "
                 f"{100 * self.unigram_accuracy:.1f} %."]
        mean = {(row["optimizer"], row["batch_size"]): row["mean_accuracy"] for row in rows}
        steps = {b: max(row["steps"] for row in rows if row["batch_size"] == b) for b in self.settings.batch_sizes}
        for batch_size in self.settings.batch_sizes:
            cells = ", ".join(f"{name} {100 * mean[name, batch_size]:.1f}" for name in self.settings.optimizers)
            lines.append(f"batch {batch_size} ({batch_size * self.settings.context} tokens/step, "
                         f"{steps[batch_size]} steps): mean accuracy % {cells}")
        for name, entry in self.trust_spread().items():
            lines.append(f"{name}: median trust ratio per kind from {entry['medians'][entry['lowest']]:.3g} "
                         f"({entry['lowest']}) to {entry['medians'][entry['highest']]:.3g} ({entry['highest']}), "
                         f"{entry['orders_of_magnitude']:.1f} orders of magnitude")
        return lines

    @classmethod
    def from_summary(cls, summary: dict[str, Any]) -> TinyBertResult:
        """The result back from its ``summary()`` (``results.json["tiny_bert"]``), without training anything."""
        values = {key: tuple(value) if isinstance(value, list) else value for key, value in summary["settings"].items()}
        settings = TinyBertSettings(**values)
        # results.json writes a NaN (a run that diverged) as null: it comes back as NaN
        runs = [TinyBertRun(**{key: math.nan if value is None and key.startswith("final") else value
                               for key, value in row.items()}) for row in summary["runs"]]
        result = cls(settings, runs, summary["tunings"], summary["seconds"], summary["unigram_accuracy"])
        for name, record in summary["trust"].items():
            result.chosen(name, settings.batch_sizes[0])[0].trust = record
        return result

    def summary(self) -> dict[str, Any]:
        """What ``results.json["tiny_bert"]`` holds."""
        smallest = self.settings.batch_sizes[0]
        return {"settings": asdict(self.settings), "seconds": self.seconds, "unigram_accuracy": self.unigram_accuracy,
                "runs": [run.row() for run in self.runs], "table": self.table(), "tunings": self.tunings,
                "best_at_smallest_batch": self.best_at(smallest), "trust": self.trust()}


def unigram_accuracy(task: train.MaskedLM) -> float:
    """Accuracy of always guessing the training split's most frequent character on the masked validation positions."""
    counts = np.bincount(task.train_windows.reshape(-1), minlength=task.text.vocab_size)
    targets = task.validation[1]
    return float((targets[targets != IGNORE] == counts.argmax()).mean())


def _percent(values: list[float]) -> str:
    return f"{100 * float(np.mean(values)):.1f} % (" + ", ".join(f"{100 * v:.1f}" for v in values) + ")"


def tune_cell(task: train.MaskedLM, settings: TinyBertSettings, name: str,
              batch_size: int) -> tuple[list[TinyBertRun], dict[str, Any]]:
    """Tune one (optimizer, batch size): its trials from seed 0, then the chosen lr from the report seeds."""
    optimizer = next(entry for entry in TINY_BERT_OPTIMIZERS if entry.name == name)
    centre = optimizer.scale(optimizer.grid[0], batch_size, settings.batch_sizes[0])
    space = SearchSpace((Dimension("lr", centre / settings.lr_range, centre * settings.lr_range),))
    runs: list[TinyBertRun] = []

    def one(chosen: dict[str, Any], seed: int) -> TinyBertRun:
        role = "trial" if seed == 0 else "report"
        runs.append(run_tiny_bert(task, settings, optimizer, batch_size, chosen["lr"], seed, role))
        return runs[-1]

    tuning = tune(one, space, settings.trials, report_seeds=settings.report_seeds,
                  score=lambda run: math.nan if run.diverged else -run.final_val_loss)
    return runs, {"optimizer": name, "batch_size": batch_size, **tuning.summary()}


_WORKER_TASK: list[train.MaskedLM] = []  # the task a worker process inherits from its parent (fork)


def _worker_cell(settings: TinyBertSettings, name: str, batch_size: int) -> tuple[list[TinyBertRun], dict[str, Any]]:
    return tune_cell(_WORKER_TASK[0], settings, name, batch_size)


def tiny_bert(quick: bool = False, data_dir: Any = None, progress: bool = False,
              settings: TinyBertSettings | None = None, workers: int | None = None) -> TinyBertResult:
    """Run the study (``QUICK`` or ``FULL`` settings unless ``settings`` is given); see the module's docstring.

    With ``workers`` > 1 the (optimizer, batch size) cells are tuned in that many processes at once
    (forked, where the platform allows it); every cell computes the same numbers either way. The
    default is one process in quick mode and two (the cores of the machine it was sized for) in full.
    """
    settings = settings or (QUICK if quick else FULL)
    workers = workers if workers is not None else (1 if quick else min(2, os.cpu_count() or 1))
    task = train.MaskedLM(data.load_tiny_shakespeare(data_dir), settings.context, settings.validation_windows)
    started = time.perf_counter()
    cells = [(name, batch_size) for name in settings.optimizers for batch_size in settings.batch_sizes]
    bar = _progress(progress, len(cells))
    if workers > 1 and "fork" in multiprocessing.get_all_start_methods():
        _WORKER_TASK[:] = [task]
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
            futures = [pool.submit(_worker_cell, settings, name, batch_size) for name, batch_size in cells]
            for future in as_completed(futures):
                bar.update(1)
            done = [future.result() for future in futures]
        _WORKER_TASK.clear()
    else:
        done = []
        for name, batch_size in cells:
            done.append(tune_cell(task, settings, name, batch_size))
            bar.update(1)
    bar.close()
    runs = [run for cell_runs, _ in done for run in cell_runs]
    return TinyBertResult(settings, runs, [tuning for _, tuning in done], time.perf_counter() - started,
                          unigram_accuracy(task))


def _progress(show: bool, total: int) -> Any:
    from tqdm.auto import tqdm  # noqa: PLC0415  (only for the command line)

    return tqdm(total=total, desc="tiny_bert (optimizer, batch size) cells", unit="cell", disable=not show)
