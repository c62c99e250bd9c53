"""The ``lamb-edu`` command line (also ``python -m lamb_edu``).

Each sub-command is added by its own ``add_<name>_command(subparsers)`` function, which sets
``handler`` to the function that runs it. ``main`` turns the errors a user can cause (a bad value,
missing data, no GPU) into one line on stderr and an exit code: 2 for a bad flag or value, as
argparse does, 1 for everything else; never a traceback.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import lamb_edu

OPTIMIZERS = ("sgd", "adagrad", "rmsprop", "adam", "adamw", "lars", "lamb")

# Defaults per optimizer. LAMB follows the article's MNIST runs (lr 0.01) and the code it used
# (cybertronai/pytorch-lamb: betas 0.9, 0.999, eps 1e-6); the others follow torch.optim, with learning
# rates that train this MLP well in a few epochs.
DEFAULT_LR = {"sgd": 0.1, "adagrad": 0.01, "rmsprop": 0.001, "adam": 0.001, "adamw": 0.001, "lars": 5.0, "lamb": 0.01}
DEFAULT_EPS = {"adagrad": 1e-10, "rmsprop": 1e-8, "adam": 1e-8, "adamw": 1e-8, "lars": 1e-8, "lamb": 1e-6}
DEFAULT_WEIGHT_DECAY = {"adamw": 0.01}
DEFAULT_MOMENTUM = {"sgd": 0.0, "rmsprop": 0.0, "lars": 0.9}

# Which optimizer takes which flag (a flag given to one that ignores it is an error, not a silent no-op).
APPLIES_TO = {
    "momentum": ("sgd", "rmsprop", "lars"),
    "nesterov": ("sgd", "lars"),
    "beta1": ("adam", "adamw", "lamb"),
    "beta2": ("rmsprop", "adam", "adamw", "lamb"),
    "eps": ("adagrad", "rmsprop", "adam", "adamw", "lars", "lamb"),
    "no_bias_correction": ("adam", "adamw", "lamb"),
    "no_trust_ratio": ("lars", "lamb"),
}

LOG_EVERY = 10  # steps between rows of metrics.jsonl and trust.npz


class CommandError(Exception):
    """A user error found after parsing; ``exit_code`` 2 for a bad value, 1 otherwise."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


# ------------------------------------------------------------------------------ value types
def _number(kind: Callable[[str], Any], low: float, low_inclusive: bool, high: float | None = None) -> Callable[[str], Any]:
    """An argparse ``type`` that parses with ``kind`` and checks the range, with a one-line message."""
    bounds = f"{'>=' if low_inclusive else '>'} {low}" + (f" and < {high}" if high is not None else "")

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a{'n integer' if kind is int else ' number'}") from None
        finite = math.isfinite(value)
        above = value >= low if low_inclusive else value > low
        if not (finite and above and (high is None or value < high)):
            raise argparse.ArgumentTypeError(f"must be {bounds}, got {text}")
        return value

    return parse


non_negative_float = _number(float, 0, True)
positive_float = _number(float, 0, False)
decay_rate = _number(float, 0, True, 1.0)
positive_int = _number(int, 1, True)
non_negative_int = _number(int, 0, True)


# ------------------------------------------------------------------------------ train
def add_train_command(subparsers: Any) -> None:
    """``lamb-edu train``: train an MLP on MNIST with one optimizer and write its results."""
    defaults = ", ".join(f"{name} {lr}" for name, lr in DEFAULT_LR.items())
    parser = subparsers.add_parser(
        "train",
        help="train an MLP on MNIST with one optimizer",
        description="Train an MLP on MNIST and write summary.json, metrics.jsonl, trust.npz and curves.png to --out.",
        epilog="Defaults follow the article's runs and the PyTorch defaults: LAMB lr 0.01, betas 0.9/0.999, "
        "eps 1e-6 (the pytorch-lamb code the article used); Adam/AdamW eps 1e-8; LARS momentum 0.9 "
        "(trust coefficient 0.001, so its lr is large); AdamW weight decay 0.01, others 0.",
    )
    parser.add_argument("--optimizer", choices=OPTIMIZERS, default="lamb", help="optimizer (default: lamb)")
    parser.add_argument("--lr", type=non_negative_float, help=f"learning rate (default per optimizer: {defaults})")
    parser.add_argument("--batch-size", type=positive_int, default=512, help="examples per step (default: 512)")
    parser.add_argument("--epochs", type=positive_int, default=5, help="passes over the training set (default: 5)")
    parser.add_argument("--weight-decay", type=non_negative_float,
                        help="weight decay (default: 0.01 for adamw, 0 for the others); L2 for sgd/adagrad/rmsprop/adam, "
                        "decoupled for adamw/lamb, in the gradient and the trust ratio for lars")
    parser.add_argument("--momentum", type=non_negative_float,
                        help="momentum, for sgd, rmsprop, lars (default: 0.9 for lars, 0 for sgd and rmsprop)")
    parser.add_argument("--nesterov", action="store_true", help="Nesterov momentum, for sgd and lars")
    parser.add_argument("--beta1", type=decay_rate, help="decay of the gradient average m, for adam/adamw/lamb (default: 0.9)")
    parser.add_argument("--beta2", type=decay_rate,
                        help="decay of the squared-gradient average v, for adam/adamw/lamb, and rmsprop's alpha "
                        "(default: 0.999; rmsprop 0.99)")
    parser.add_argument("--eps", type=non_negative_float,
                        help="added to the denominator (default: lamb 1e-6, adagrad 1e-10, others 1e-8)")
    parser.add_argument("--no-bias-correction", action="store_true",
                        help="use m and v without dividing by 1 - beta^t (adam, adamw, lamb)")
    parser.add_argument("--no-trust-ratio", action="store_true",
                        help="lamb/lars compute and record the trust ratio but step with 1 (the article's 'Adam' baseline)")
    parser.add_argument("--lookahead", type=positive_int, metavar="K", help="wrap the optimizer in Lookahead with k=K, alpha=0.5")
    parser.add_argument("--warmup-steps", type=non_negative_int, default=0,
                        help="linear warm-up: step s (from 0) uses lr·(s+1)/N for the first N steps (default: 0, none)")
    parser.add_argument("--hidden", type=positive_int, nargs="+", default=[256, 256], metavar="WIDTH",
                        help="hidden layer widths of the MLP (default: 256 256)")
    parser.add_argument("--seed", type=non_negative_int, default=0, help="seed of the weights and the shuffles (default: 0)")
    parser.add_argument("--train-size", type=positive_int, help="use only the first N training examples (default: all 60000)")
    parser.add_argument("--data-dir", type=Path, help="directory with the MNIST IDX files (else LAMB_EDU_DATA, the cache, a download)")
    parser.add_argument("--backend", choices=("numpy", "cupy"), default="numpy", help="array backend (default: numpy)")
    parser.add_argument("--out", type=Path, metavar="DIR",
                        help="output directory (default: runs/<optimizer>-lr<lr>-bs<batch>-<date>-<time>)")
    parser.set_defaults(handler=run_train)


def _check_applicable(args: argparse.Namespace) -> None:
    for option, optimizers in APPLIES_TO.items():
        value = getattr(args, option)
        if value not in (None, False) and args.optimizer not in optimizers:
            flag = "--" + option.replace("_", "-")
            raise CommandError(f"argument {flag}: does not apply to {args.optimizer} (only to {', '.join(optimizers)})", 2)
    if args.nesterov and not (args.momentum if args.momentum is not None else DEFAULT_MOMENTUM.get(args.optimizer, 0)):
        raise CommandError("argument --nesterov: needs --momentum > 0", 2)


def train_settings(args: argparse.Namespace) -> dict[str, Any]:
    """Every setting of the run, with each default filled in (what summary.json records)."""
    name = args.optimizer
    return {
        "optimizer": name,
        "lr": args.lr if args.lr is not None else DEFAULT_LR[name],
        "batch_size": args.batch_size,
        "epochs": args.epochs,
        "weight_decay": args.weight_decay if args.weight_decay is not None else DEFAULT_WEIGHT_DECAY.get(name, 0.0),
        "momentum": args.momentum if args.momentum is not None else DEFAULT_MOMENTUM.get(name),
        "nesterov": args.nesterov,
        "beta1": args.beta1 if args.beta1 is not None else (0.9 if name in APPLIES_TO["beta1"] else None),
        "beta2": args.beta2 if args.beta2 is not None else {"rmsprop": 0.99}.get(name, 0.999 if name in APPLIES_TO["beta2"] else None),
        "eps": args.eps if args.eps is not None else DEFAULT_EPS.get(name),
        "no_bias_correction": args.no_bias_correction,
        "no_trust_ratio": args.no_trust_ratio,
        "lookahead": args.lookahead,
        "warmup_steps": args.warmup_steps,
        "hidden": list(args.hidden),
        "seed": args.seed,
        "train_size": args.train_size,
        "data_dir": str(args.data_dir) if args.data_dir is not None else None,
        "backend": args.backend,
        "log_every": LOG_EVERY,
        "version": lamb_edu.__version__,
    }


def build_optimizer(settings: dict[str, Any], named_parameters: list[tuple[str, Any]]) -> Any:
    """The optimizer the settings describe, over all parameters (biases included, as in the article's code)."""
    from lamb_edu import optim  # noqa: PLC0415  (keeps `lamb-edu --help` fast)

    name, lr, decay = settings["optimizer"], settings["lr"], settings["weight_decay"]
    params = list(named_parameters)
    betas = (settings["beta1"], settings["beta2"])
    bias_correction = not settings["no_bias_correction"]
    if name == "sgd":
        optimizer = optim.SGD(params, lr=lr, momentum=settings["momentum"], nesterov=settings["nesterov"], weight_decay=decay)
    elif name == "adagrad":
        optimizer = optim.Adagrad(params, lr=lr, weight_decay=decay, eps=settings["eps"])
    elif name == "rmsprop":
        optimizer = optim.RMSprop(params, lr=lr, alpha=settings["beta2"], eps=settings["eps"], weight_decay=decay,
                                  momentum=settings["momentum"])
    elif name == "adam":
        optimizer = optim.Adam(params, lr=lr, betas=betas, eps=settings["eps"], weight_decay=decay,
                               bias_correction=bias_correction)
    elif name == "adamw":
        optimizer = optim.AdamW(params, lr=lr, betas=betas, eps=settings["eps"], weight_decay=decay,
                                bias_correction=bias_correction)
    elif name == "lars":
        optimizer = optim.LARS(params, lr=lr, momentum=settings["momentum"], weight_decay=decay, eps=settings["eps"],
                               nesterov=settings["nesterov"], use_trust_ratio=not settings["no_trust_ratio"])
    else:
        optimizer = optim.LAMB(params, lr=lr, betas=betas, eps=settings["eps"], weight_decay=decay,
                               bias_correction=bias_correction, use_trust_ratio=not settings["no_trust_ratio"])
    if settings["lookahead"]:
        optimizer = optim.Lookahead(optimizer, k=settings["lookahead"], alpha=0.5)
    return optimizer


def build_scheduler(settings: dict[str, Any], optimizer: Any) -> Any:
    """Linear warm-up: lr·(s + 1)/warmup_steps for the first steps, then lr (None without warm-up)."""
    if not settings["warmup_steps"]:
        return None
    from lamb_edu.optim import schedules  # noqa: PLC0415

    return schedules.LRScheduler(optimizer, schedules.LinearWarmup(settings["warmup_steps"]))


def default_out_dir(settings: dict[str, Any]) -> Path:
    """``runs/<optimizer>-lr<lr>-bs<batch>-<date>-<time>``, the output directory when ``--out`` is not given."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{settings['optimizer']}-lr{settings['lr']:g}-bs{settings['batch_size']}-{stamp}"


def _epoch_line(record: dict[str, Any], epochs: int) -> str:
    line = (f"epoch {record['epoch']}/{epochs}  train loss {record['train_loss']:.4f}  test loss {record['test_loss']:.4f}  "
            f"test accuracy {100 * record['test_accuracy']:.2f}%  {record['seconds']:.1f} s")
    if record.get("diverged"):
        line += f"  DIVERGED at step {record['diverged']} (non-finite loss): training stopped"
    return line


def run_train(args: argparse.Namespace) -> int:
    """Train, print one line per epoch, and write summary.json, metrics.jsonl, trust.npz, curves.png."""
    _check_applicable(args)
    settings = train_settings(args)
    from lamb_edu import backend  # noqa: PLC0415

    try:
        backend.use(args.backend)
    except backend.BackendUnavailableError as error:
        raise CommandError(str(error), 1) from None

    from lamb_edu import nn, plots  # noqa: PLC0415
    from lamb_edu.data import load_mnist  # noqa: PLC0415
    from lamb_edu.experiments import detect_divergence  # noqa: PLC0415
    from lamb_edu.train import fit, json_safe, write_atomically  # noqa: PLC0415

    data = load_mnist(args.data_dir)
    if args.train_size is not None and args.train_size > len(data.train_images):
        raise CommandError(f"argument --train-size: at most {len(data.train_images)}, got {args.train_size}", 2)
    model = nn.MLP([784, *args.hidden, 10], seed=args.seed)
    try:
        optimizer = build_optimizer(settings, list(model.named_parameters()))
    except ValueError as error:
        raise CommandError(str(error), 2) from None
    scheduler = build_scheduler(settings, optimizer)

    out = args.out if args.out is not None else default_out_dir(settings)
    out.mkdir(parents=True, exist_ok=True)
    print(f"training {settings['optimizer']} lr={settings['lr']:g} on MNIST; results in {out}", flush=True)
    from tqdm.auto import tqdm  # noqa: PLC0415

    started = time.perf_counter()
    with open(out / "metrics.jsonl", "w", encoding="utf-8") as metrics:

        def record(event: dict[str, Any]) -> None:
            metrics.write(json.dumps(json_safe(event)) + "\n")
            metrics.flush()
            if event["type"] == "epoch":
                tqdm.write(_epoch_line(event, args.epochs), file=sys.stdout)

        history = fit(model, optimizer, data, args.epochs, args.batch_size, seed=args.seed, train_size=args.train_size,
                      log_every=LOG_EVERY, scheduler=scheduler, progress=True, callback=record)
    seconds = time.perf_counter() - started

    # Divergence need not mean NaN: the loss can climb back to chance level while weights explode.
    verdict = detect_divergence(history.step_loss, history.weight_norm, history.log_steps, history.diverged)
    final = history.final()
    summary = {"settings": settings, "final": final, "diverged": history.diverged,
               "verdict": verdict.as_dict(), "seconds": seconds,
               "steps": history.steps, "epochs": history.epochs, "parameter_names": history.parameter_names}
    text = json.dumps(json_safe(summary), indent=2) + "\n"
    write_atomically(out / "summary.json", lambda handle: handle.write(text.encode("utf-8")))
    write_atomically(out / "trust.npz", lambda handle: backend.np.savez(handle, **history.trust_arrays()))
    label = plots.settings_labels([settings])[0]
    figure = plots.plot_training_curves([plots.history_run(history, label)], title=f"MNIST, MLP {settings['hidden']}: {label}")
    save_figure(figure, out / "curves.png", dpi=120)
    if history.diverged:
        print(f"diverged at step {history.diverged}; wrote {out}")
    elif verdict.status == "diverged":
        print(f"learned, then diverged at step {verdict.step}: {verdict.reasons[0]}")
        print(f"final test accuracy {100 * final['test_accuracy']:.2f}% in {seconds:.1f} s; wrote {out}")
    else:
        print(f"final test accuracy {100 * final['test_accuracy']:.2f}% in {seconds:.1f} s; wrote {out}")
    return 0


# ------------------------------------------------------------------------------ plot
def add_plot_command(subparsers: Any) -> None:
    """``lamb-edu plot``: overlay the curves of several ``train`` runs in one figure."""
    parser = subparsers.add_parser("plot", help="overlay the curves of several runs",
                                   description="Overlay training loss and test accuracy of runs written by `lamb-edu train`.")
    parser.add_argument("runs", nargs="+", type=Path, metavar="DIR", help="output directories of `lamb-edu train`")
    parser.add_argument("--out", type=Path, default=Path("comparison.png"), metavar="FILE",
                        help="image to write (default: comparison.png)")
    parser.set_defaults(handler=run_plot)


def run_plot(args: argparse.Namespace) -> int:
    """Read every run directory, label each run by the settings that differ, and save one figure."""
    from lamb_edu import plots  # noqa: PLC0415

    try:
        runs = [plots.load_run(directory) for directory in args.runs]
    except (FileNotFoundError, ValueError) as error:  # ValueError: a damaged JSON file
        raise CommandError(str(error), 1) from None
    for run, label in zip(runs, plots.settings_labels([run["settings"] for run in runs])):
        run["label"] = label
    image_format = args.out.suffix.lstrip(".").lower() or "png"
    figure = plots.plot_training_curves(runs, title="MNIST runs")
    if image_format not in figure.canvas.get_supported_filetypes():
        raise CommandError(f"argument --out: cannot write .{image_format} images (use .png, .pdf or .svg)", 2)
    if args.out.parent != Path(""):
        args.out.parent.mkdir(parents=True, exist_ok=True)
    save_figure(figure, args.out, dpi=120, image_format=image_format)
    print(f"wrote {args.out} ({len(runs)} runs)")
    return 0


# ------------------------------------------------------------------------------ reproduce
def add_reproduce_command(subparsers: Any) -> None:
    """``lamb-edu reproduce NAME|all``: run the article's experiments and write their figures."""
    from lamb_edu.experiments import EXPERIMENTS  # noqa: PLC0415

    parser = subparsers.add_parser(
        "reproduce", help="run the article's experiments; write figures and results.json",
        description="Run the experiments of 'An intuitive understanding of the LAMB optimizer' and write their "
                    "figures (PNG) and numbers (results.json) to --out.",
    )
    parser.add_argument("name", choices=[*EXPERIMENTS, "all"], metavar="NAME",
                        help=f"one of: {', '.join(EXPERIMENTS)}, or all")
    parser.add_argument("--quick", action="store_true",
                        help="small subsets and few steps (about a minute in all), as CI and the notebooks' quick mode")
    parser.add_argument("--out", type=Path, default=Path("figures"), metavar="DIR", help="output directory (default: figures)")
    parser.add_argument("--data-dir", type=Path, default=None, metavar="DIR", help="folder with the MNIST files")
    parser.set_defaults(handler=run_reproduce)


def run_reproduce(args: argparse.Namespace) -> int:
    """Run each experiment, save its figures, and merge its numbers into ``results.json`` after each."""
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")  # files only, never a window

    from lamb_edu import experiments, plots  # noqa: PLC0415
    from lamb_edu.train import json_safe, write_atomically  # noqa: PLC0415

    names = list(experiments.EXPERIMENTS) if args.name == "all" else [args.name]
    if args.out.exists() and not args.out.is_dir():
        raise CommandError(f"argument --out: {args.out} exists and is not a directory", 2)
    args.out.mkdir(parents=True, exist_ok=True)
    results_path = args.out / "results.json"
    try:
        results = json.loads(results_path.read_text(encoding="utf-8")) if results_path.is_file() else {}
    except ValueError:
        raise CommandError(f"{results_path} is not valid JSON; move it away and run again", 1) from None
    mode = "quick" if args.quick else "full"
    started = time.perf_counter()
    for name in names:
        began = time.perf_counter()
        result = experiments.run_experiment(name, quick=args.quick, data_dir=args.data_dir, progress=True)
        figures = plots.experiment_figures(name, result)
        for filename, figure in figures.items():
            save_figure(figure, args.out / filename, dpi=110)
        results[name] = {"mode": mode, **result.summary()}
        text = json.dumps(json_safe(results), indent=1, sort_keys=True) + "\n"
        write_atomically(results_path, lambda handle: handle.write(text.encode("utf-8")))
        print(f"{name}: {', '.join(figures)} ({time.perf_counter() - began:.0f} s)", flush=True)
    print(f"reproduced {len(names)} experiment(s) in {mode} mode in {time.perf_counter() - started:.0f} s; "
          f"wrote {args.out}", flush=True)
    return 0


# ------------------------------------------------------------------------------ main
def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every sub-command."""
    parser = argparse.ArgumentParser(prog="lamb-edu", description="Deep-learning optimizers from scratch, centred on LAMB.")
    parser.add_argument("--version", action="version", version=f"lamb-edu {lamb_edu.__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    add_train_command(subparsers)
    add_plot_command(subparsers)
    add_reproduce_command(subparsers)
    return parser



def save_figure(figure: Any, path: Path, dpi: int, image_format: str = "png") -> None:
    """Write ``figure`` to ``path`` atomically (no half-written image) and close it to free its memory."""
    import matplotlib.pyplot as plt  # noqa: PLC0415
    from lamb_edu.train import write_atomically  # noqa: PLC0415

    write_atomically(path, lambda handle: figure.savefig(handle, dpi=dpi, format=image_format))
    plt.close(figure)

def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (2 for bad flags, 1 for other errors, 0 for success)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return args.handler(args)
    except CommandError as error:
        print(f"lamb-edu {args.command}: error: {error}", file=sys.stderr)
        return error.exit_code
    except OSError as error:  # missing MNIST (MNISTError is a FileNotFoundError), an unwritable output directory
        print(f"lamb-edu {args.command}: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"lamb-edu {args.command}: interrupted", file=sys.stderr)
        return 130
