"""``lamb-edu train``: train a model on its task (MNIST digits, or tiny-Shakespeare characters for ``--model
tiny-bert``) with one optimizer, write its run folder, resume it."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import lamb_edu
from lamb_edu.cli.registry import (
    MODEL_FLAGS,
    MODELS,
    OPTIMIZER_FLAGS,
    OPTIMIZERS,
    applies_to,
    build_model,
    build_optimizer,
)
from lamb_edu.cli.run_folder import prepare_out_dir, read_summary
from lamb_edu.cli.values import CommandError, decay_rate, non_negative_float, non_negative_int, positive_int

__all__ = ["add_train_command", "add_optimizer_arguments", "check_applicable", "train_settings", "run_train"]

LOG_EVERY = 10  # steps between rows of metrics.jsonl and trust.npz
RUN_DEFAULTS = {"model": "mlp", "batch_size": 512, "epochs": 5, "accumulate": 1, "lookahead": None, "warmup_steps": 0,
                "seed": 0, "train_size": None, "checkpoint_every": None}
# What an optimizer flag means; its "for ..." and default per optimizer come from the registry.
OPTIMIZER_HELP = {
    "lr": (non_negative_float, "learning rate"),
    "weight_decay": (non_negative_float, "weight decay: L2 for sgd/adagrad/rmsprop/adam, decoupled for adamw/lamb, "
                                         "in the gradient and the trust ratio for lars"),
    "momentum": (non_negative_float, "momentum"),
    "nesterov": (None, "Nesterov momentum"),
    "beta1": (decay_rate, "decay of the gradient average m"),
    "beta2": (decay_rate, "decay of the squared-gradient average v (rmsprop's alpha)"),
    "eps": (non_negative_float, "added to the denominator"),
    "no_bias_correction": (None, "use m and v without dividing by 1 - beta^t"),
    "no_trust_ratio": (None, "compute and record the trust ratio but step with 1 (the article's 'Adam' baseline)"),
}
# Flags that do not change what a run computes (data parallelism: up to float32 rounding), so --resume may take them.
ENVIRONMENT_FLAGS = ("data_dir", "backend", "resume", "handler", "command", "data_parallel", "shard_optimizer")


def _optimizer_flag_help(setting: str, stem: str) -> str:
    names = applies_to(setting)
    defaults = {name: OPTIMIZERS[name].defaults[setting] for name in names}
    if len(names) == len(OPTIMIZERS):
        return f"{stem} (default: {', '.join(f'{name} {value:g}' for name, value in defaults.items())})"
    shown = "" if all(value is False for value in defaults.values()) else (
        " (default: " + ", ".join(f"{name} {value:g}" for name, value in defaults.items()) + ")")
    return f"{stem}, for {'/'.join(names)}{shown}"


def add_optimizer_arguments(parser: argparse.ArgumentParser, skip: tuple[str, ...] = ()) -> None:
    """``--optimizer`` and a flag for every optimizer setting of the registry (but those in ``skip``)."""
    parser.add_argument("--optimizer", choices=list(OPTIMIZERS), help="optimizer (default: lamb)")
    for setting in OPTIMIZER_FLAGS:
        kind, stem = OPTIMIZER_HELP[setting]
        flag = "--" + setting.replace("_", "-")
        if setting in skip:
            parser.set_defaults(**{setting: None})  # train_settings fills the registry's default
        elif kind is None:
            parser.add_argument(flag, action="store_true", help=_optimizer_flag_help(setting, stem))
        else:
            parser.add_argument(flag, type=kind, help=_optimizer_flag_help(setting, stem))


def add_train_command(subparsers: Any) -> None:
    """``lamb-edu train``: the flags of every optimizer and model in the registry, and the run's own."""
    parser = subparsers.add_parser(
        "train", help="train a model on MNIST (or tiny Shakespeare) with one optimizer",
        description="Train on MNIST (--model tiny-bert: a masked-character model of tiny Shakespeare) and write summary.json, metrics.jsonl, trust.npz, curves.png and a checkpoint "
                    "to --out. Ctrl-C stops after the current step and saves a checkpoint; --resume DIR continues.",
        epilog="Defaults follow the article's runs and the PyTorch defaults: LAMB lr 0.01, betas 0.9/0.999, eps 1e-6 "
               "(the pytorch-lamb code the article used); LARS momentum 0.9 (trust coefficient 0.001, so its lr is "
               "large); AdamW weight decay 0.01, others 0.")
    add_optimizer_arguments(parser)
    parser.add_argument("--lookahead", type=positive_int, metavar="K", help="wrap the optimizer in Lookahead with k=K, alpha=0.5")
    parser.add_argument("--warmup-steps", type=non_negative_int,
                        help="linear warm-up: step s (from 0) uses lr·(s+1)/N for the first N steps (default: 0, none)")
    parser.add_argument("--model", choices=list(MODELS),
                        help="network: " + "; ".join(f"{name}: {entry.description}" for name, entry in MODELS.items())
                        + " (default: mlp)")
    parser.add_argument("--hidden", type=positive_int, nargs="+", metavar="WIDTH",
                        help="hidden layer widths, for mlp (default: 256 256)")
    add_tiny_bert_arguments(parser)
    parser.add_argument("--batch-size", type=positive_int, help="examples per optimizer step, the global batch (default: 512)")
    parser.add_argument("--accumulate", type=positive_int, metavar="K",
                        help="compute each batch as K micro-batches and average their gradients into one step (default: 1)")
    parser.add_argument("--epochs", type=positive_int, help="passes over the training set (default: 5)")
    parser.add_argument("--seed", type=non_negative_int, help="seed of the weights and the shuffles (default: 0)")
    parser.add_argument("--train-size", type=positive_int,
                        help="use only the first N training examples (default: all 60000; tiny-bert: windows, all)")
    parser.add_argument("--checkpoint-every", type=positive_int, metavar="N",
                        help="also save a checkpoint every N steps (one is always saved at each epoch's end and on Ctrl-C)")
    parser.add_argument("--data-dir", type=Path, help="directory with the MNIST IDX files, or tiny-bert's input.txt "
                                                      "(else LAMB_EDU_DATA, the cache, a download)")
    parser.add_argument("--backend", choices=("numpy", "cupy"), default="numpy", help="array backend (default: numpy)")
    parser.add_argument("--out", type=Path, metavar="DIR",
                        help="output directory, which must be empty (default: runs/<optimizer>-lr<lr>-bs<batch>-<date>-<time>)")
    parser.add_argument("--overwrite", action="store_true", help="delete the run already in --out and start again")
    parser.add_argument("--resume", type=Path, metavar="DIR",
                        help="continue the interrupted run in DIR from its checkpoint, with its settings")
    from lamb_edu.cli.train_parallel import add_data_parallel_flags  # noqa: PLC0415

    add_data_parallel_flags(parser)
    parser.set_defaults(handler=run_train)


def add_tiny_bert_arguments(parser: argparse.ArgumentParser) -> None:
    """The size of ``--model tiny-bert``: ``--context``, ``--d-model``, ``--layers``, ``--heads``."""
    defaults = MODELS["tiny-bert"].defaults
    for setting, stem in (("context", "characters per window"), ("d_model", "width of the model"),
                          ("layers", "encoder layers"), ("heads", "attention heads (must divide --d-model)")):
        parser.add_argument("--" + setting.replace("_", "-"), type=positive_int,
                            help=f"{stem}, for tiny-bert (default: {defaults[setting]})")


def check_applicable(args: argparse.Namespace) -> None:
    """A flag given to an optimizer or model that ignores it is an error, not a silent no-op."""
    optimizer, model = args.optimizer or "lamb", args.model or "mlp"
    for setting in OPTIMIZER_FLAGS:
        if getattr(args, setting) not in (None, False) and optimizer not in applies_to(setting):
            flag = "--" + setting.replace("_", "-")
            raise CommandError(f"argument {flag}: does not apply to {optimizer} (only to {', '.join(applies_to(setting))})", 2)
    for setting in MODEL_FLAGS:
        if getattr(args, setting) is not None and setting not in MODELS[model].defaults:
            flag = "--" + setting.replace("_", "-")
            raise CommandError(f"argument {flag}: does not apply to the {model} model", 2)
    momentum = args.momentum if args.momentum is not None else OPTIMIZERS[optimizer].defaults.get("momentum", 0)
    if args.nesterov and not momentum:
        raise CommandError("argument --nesterov: needs --momentum > 0", 2)


def train_settings(args: argparse.Namespace) -> dict[str, Any]:
    """Every setting of the run, each default filled in (what summary.json records).

    An optimizer setting the chosen optimizer does not take is None (False for a switch), as is a
    model setting the model does not take.
    """
    optimizer = args.optimizer or "lamb"
    model = args.model or "mlp"
    settings: dict[str, Any] = {"optimizer": optimizer}
    for setting in OPTIMIZER_FLAGS:
        given = getattr(args, setting)
        fallback = OPTIMIZERS[optimizer].defaults.get(setting, False if OPTIMIZER_HELP[setting][0] is None else None)
        settings[setting] = given if given not in (None, False) else fallback
    for key, default in RUN_DEFAULTS.items():
        given = getattr(args, key)
        settings[key] = given if given is not None else default
    for setting in MODEL_FLAGS:
        given = getattr(args, setting)
        settings[setting] = given if given is not None else MODELS[model].defaults.get(setting)
    settings["hidden"] = list(settings["hidden"]) if settings["hidden"] is not None else None
    settings.update(data_dir=str(args.data_dir) if args.data_dir is not None else None, backend=args.backend,
                    log_every=LOG_EVERY, version=lamb_edu.__version__)
    return settings


def _given_run_flags(args: argparse.Namespace, parser_defaults: dict[str, Any]) -> list[str]:
    return ["--" + key.replace("_", "-") for key, value in vars(args).items()
            if key not in ENVIRONMENT_FLAGS and value != parser_defaults.get(key)]


def default_out_dir(settings: dict[str, Any]) -> Path:
    """``runs/<optimizer>-lr<lr>-bs<batch>-<date>-<time>``, the output directory when ``--out`` is not given."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{settings['optimizer']}-lr{settings['lr']:g}-bs{settings['batch_size']}-{stamp}"


def _settings_to_resume(args: argparse.Namespace) -> tuple[Path, dict[str, Any]]:
    """The folder and settings of the run ``--resume`` names; other run flags are refused (exit 2)."""
    from lamb_edu.cli import build_parser  # noqa: PLC0415  (the defaults of every flag)

    defaults = vars(build_parser().parse_args(["train"]))
    given = _given_run_flags(args, defaults)
    if given:
        raise CommandError(f"argument --resume: takes the settings of the run it continues; drop {', '.join(given)}", 2)
    summary = read_summary(args.resume)
    if summary.get("status") == "finished":
        raise CommandError(f"argument --resume: the run in {args.resume} has finished; nothing to resume", 2)
    settings = {**RUN_DEFAULTS, **summary["settings"], "backend": args.backend,
                "data_dir": str(args.data_dir) if args.data_dir is not None else summary["settings"].get("data_dir")}
    return args.resume, settings


RUN_TYPES = {"batch_size": positive_int, "epochs": positive_int, "accumulate": positive_int, "seed": non_negative_int,
             "warmup_steps": non_negative_int, "lookahead": positive_int, "train_size": positive_int,
             "checkpoint_every": positive_int}


def check_settings(settings: Any, path: Path) -> None:
    """Check saved settings with the flags' own types; RunFileError naming ``path`` and the setting."""
    from lamb_edu.train.files import require  # noqa: PLC0415

    require(settings.get("optimizer") in OPTIMIZERS and settings.get("model", "mlp") in MODELS, path,
            "settings.optimizer or settings.model is not one lamb-edu knows")
    checks = [(key, kind) for key, (kind, _) in OPTIMIZER_HELP.items() if key in OPTIMIZERS[settings["optimizer"]].defaults]
    checks += [(key, kind) for key, kind in RUN_TYPES.items() if settings.get(key) is not None or key in ("batch_size", "epochs")]
    checks += [(key, positive_int) for key in MODEL_FLAGS[1:] if key in MODELS[settings.get("model", "mlp")].defaults]
    for key, kind in checks:
        value = settings.get(key)
        if kind is None:
            require(isinstance(value, bool), path, f"settings.{key} must be true or false, got {value!r}")
            continue
        try:
            ok = not isinstance(value, bool) and kind(str(value)) == value
        except (argparse.ArgumentTypeError, TypeError):
            ok = False
        require(ok, path, f"settings.{key} = {value!r} is not a valid value")
    hidden = settings.get("hidden")
    if "hidden" in MODELS[settings.get("model", "mlp")].defaults:
        require(isinstance(hidden, list) and hidden and all(isinstance(w, int) and not isinstance(w, bool) and w >= 1
                                                             for w in hidden), path, "settings.hidden must be a list of widths >= 1")


def _prepare(args: argparse.Namespace) -> tuple[Path, dict[str, Any], bool]:
    """The run's folder and settings: a new run (its folder made ready) or the one --resume names."""
    if args.resume is not None:
        out, settings = _settings_to_resume(args)
        check_settings(settings, out / "summary.json")
        return out, settings, True
    if args.overwrite and args.out is None:
        raise CommandError("argument --overwrite: needs --out DIR", 2)
    check_applicable(args)
    settings = train_settings(args)
    if settings["heads"] is not None and settings["d_model"] % settings["heads"]:
        raise CommandError(f"argument --heads: must divide --d-model ({settings['d_model']}), got {settings['heads']}", 2)
    if settings["accumulate"] > settings["batch_size"]:
        raise CommandError(f"argument --accumulate: at most --batch-size ({settings['batch_size']}), "
                           f"got {settings['accumulate']}", 2)
    out = args.out if args.out is not None else default_out_dir(settings)
    return out, settings, False


def run_train(args: argparse.Namespace) -> int:
    """Train, print one line per epoch, and write the run folder (see ``run_folder``)."""
    if args.data_parallel or args.shard_optimizer:
        from lamb_edu.cli.train_parallel import run_data_parallel  # noqa: PLC0415

        return run_data_parallel(args)
    out, settings, resuming, data = prepare_run(args)
    model, optimizer, scheduler = build_training(settings)
    if not resuming:
        prepare_out_dir(out, args.overwrite)
    from lamb_edu.cli.train_outputs import train_and_write  # noqa: PLC0415

    return train_and_write(out, settings, data, model, optimizer, scheduler, resuming)


def prepare_run(args: argparse.Namespace) -> tuple[Path, dict[str, Any], bool, Any]:
    """The run's folder, settings, whether it resumes, and its data, all checked; nothing is written."""
    out, settings, resuming = _prepare(args)
    from lamb_edu import backend  # noqa: PLC0415

    try:
        backend.use(settings["backend"])
    except backend.BackendUnavailableError as error:
        raise CommandError(str(error), 1) from None
    data = load_task(settings)
    size = data.size if MODELS[settings["model"]].task == "masked-lm" else len(data.train_images)
    available = settings["train_size"] or size
    if available > size:
        raise CommandError(f"argument --train-size: at most {size}, got {available}", 2)
    if settings["batch_size"] > available:
        raise CommandError(f"argument --batch-size: at most the {available} training examples, got {settings['batch_size']}", 2)
    return out, settings, resuming, data


def load_task(settings: dict[str, Any]) -> Any:
    """What the model trains on: MNIST, or for a masked-LM model the tiny-Shakespeare task of its context."""
    from lamb_edu import data  # noqa: PLC0415

    if MODELS[settings["model"]].task == "mnist":
        return data.load_mnist(settings["data_dir"])
    from lamb_edu.train import MaskedLM  # noqa: PLC0415

    return MaskedLM(data.load_tiny_shakespeare(settings["data_dir"]), settings["context"])


def build_training(settings: dict[str, Any]) -> tuple[Any, Any, Any]:
    """The model, optimizer and learning-rate scheduler the settings describe (exit 2 for a bad hyperparameter)."""
    model = build_model(settings)
    try:
        optimizer = build_optimizer(settings, list(model.named_parameters()))
    except ValueError as error:
        raise CommandError(str(error), 2) from None
    return model, optimizer, build_scheduler(settings, optimizer)


def build_scheduler(settings: dict[str, Any], optimizer: Any) -> Any:
    """Linear warm-up: lr·(s + 1)/warmup_steps for the first steps, then lr (None without warm-up)."""
    if not settings["warmup_steps"]:
        return None
    from lamb_edu.optim import schedules  # noqa: PLC0415

    return schedules.LRScheduler(optimizer, schedules.LinearWarmup(settings["warmup_steps"]))
