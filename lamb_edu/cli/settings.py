"""A run's settings: the optimizer flags, what the user gave, and every default filled in one place.

"Not given" is ``None`` for every run flag, switches included (their default is ``None``, not
``False``), so a value the user typed is used and recorded whatever it is: ``--weight-decay 0`` is
0, never the optimizer's default. ``train_settings`` fills the defaults (the registry's per
optimizer, ``RUN_DEFAULTS`` for the rest); ``check_applicable`` refuses a flag given to an optimizer
or model that ignores it; ``check_saved_settings`` checks settings read back from ``summary.json``
with the flags' own types.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import lamb_edu
from lamb_edu import backend
from lamb_edu.cli.registry import MODEL_FLAGS, MODELS, OPTIMIZER_FLAGS, OPTIMIZERS, applies_to
from lamb_edu.cli.values import CommandError, decay_rate, non_negative_float, non_negative_int, positive_int
from lamb_edu.train.files import require

__all__ = ["LOG_EVERY", "RUN_DEFAULTS", "OPTIMIZER_HELP", "ENVIRONMENT_FLAGS", "add_optimizer_arguments",
           "check_applicable", "train_settings", "given_run_flags", "check_saved_settings", "default_out_dir",
           "use_backend", "chosen_backend", "unique"]

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
ENVIRONMENT_FLAGS = ("data_dir", "backend", "resume", "handler", "command", "data_parallel", "shard_optimizer",
                     "bucket_mb", "flag_default")
RUN_TYPES = {"batch_size": positive_int, "epochs": positive_int, "accumulate": positive_int, "seed": non_negative_int,
             "warmup_steps": non_negative_int, "lookahead": positive_int, "train_size": positive_int,
             "checkpoint_every": positive_int}


def _optimizer_flag_help(setting: str, stem: str) -> str:
    names = applies_to(setting)
    defaults = {name: OPTIMIZERS[name].defaults[setting] for name in names}
    if len(names) == len(OPTIMIZERS):
        return f"{stem} (default: {', '.join(f'{name} {value:g}' for name, value in defaults.items())})"
    shown = "" if all(value is False for value in defaults.values()) else (
        " (default: " + ", ".join(f"{name} {value:g}" for name, value in defaults.items()) + ")")
    return f"{stem}, for {'/'.join(names)}{shown}"


def add_optimizer_arguments(parser: argparse.ArgumentParser, skip: tuple[str, ...] = ()) -> None:
    """``--optimizer`` and a flag for every optimizer setting of the registry (but those in ``skip``); all "
      "default None."""
    parser.add_argument("--optimizer", choices=list(OPTIMIZERS), help="optimizer (default: lamb)")
    for setting in OPTIMIZER_FLAGS:
        kind, stem = OPTIMIZER_HELP[setting]
        flag = "--" + setting.replace("_", "-")
        if setting in skip:
            parser.set_defaults(**{setting: None})  # train_settings fills the registry's default
        elif kind is None:
            parser.add_argument(flag, action="store_true", default=None, help=_optimizer_flag_help(setting, stem))
        else:
            parser.add_argument(flag, type=kind, help=_optimizer_flag_help(setting, stem))


def check_applicable(args: argparse.Namespace) -> None:
    """A flag given to an optimizer or model that ignores it is an error, not a silent no-op (0 is a value too)."""
    optimizer, model = args.optimizer or "lamb", args.model or "mlp"
    for setting in OPTIMIZER_FLAGS:
        if getattr(args, setting) is not None and optimizer not in applies_to(setting):
            flag = "--" + setting.replace("_", "-")
            raise CommandError(f"argument {flag}: does not apply to {optimizer} "
                               f"(only to {', '.join(applies_to(setting))})", 2)
    for setting in MODEL_FLAGS:  # sweep has no model flags
        if getattr(args, setting, None) is not None and setting not in MODELS[model].defaults:
            flag = "--" + setting.replace("_", "-")
            raise CommandError(f"argument {flag}: does not apply to the {model} model", 2)
    momentum = args.momentum if args.momentum is not None else OPTIMIZERS[optimizer].defaults.get("momentum", 0)
    if args.nesterov and not momentum:
        raise CommandError("argument --nesterov: needs --momentum > 0", 2)


def train_settings(args: argparse.Namespace) -> dict[str, Any]:
    """Every setting of the run, each default filled in where the flag was not given (what summary.json records).

    An optimizer setting the chosen optimizer does not take is None (False for a switch), as is a
    model setting the model does not take.
    """
    optimizer = args.optimizer or "lamb"
    model = args.model or "mlp"
    settings: dict[str, Any] = {"optimizer": optimizer}
    for setting in OPTIMIZER_FLAGS:
        given = getattr(args, setting)
        fallback = OPTIMIZERS[optimizer].defaults.get(setting, False if OPTIMIZER_HELP[setting][0] is None else None)
        settings[setting] = given if given is not None else fallback
    for key, default in RUN_DEFAULTS.items():
        given = getattr(args, key)
        settings[key] = given if given is not None else default
    for setting in MODEL_FLAGS:  # sweep has no model flags: the model's defaults
        given = getattr(args, setting, None)
        settings[setting] = given if given is not None else MODELS[model].defaults.get(setting)
    settings["hidden"] = list(settings["hidden"]) if settings["hidden"] is not None else None
    settings.update(data_dir=str(args.data_dir) if args.data_dir is not None else None, backend=chosen_backend(args),
                    log_every=LOG_EVERY, version=lamb_edu.__version__)
    return settings


def given_run_flags(args: argparse.Namespace) -> list[str]:
    """The flags given on the command line (not at their parser default) that change what a run computes."""
    return ["--" + key.replace("_", "-") for key, value in vars(args).items()
            if key not in ENVIRONMENT_FLAGS and value != args.flag_default(key)]


def check_saved_settings(settings: Any, path: Path) -> None:
    """Check saved settings with the flags' own types; RunFileError naming ``path`` and the setting."""
    require(isinstance(settings, dict) and settings.get("optimizer") in OPTIMIZERS
            and settings.get("model", "mlp") in MODELS, path,
            "settings.optimizer or settings.model is not one lamb-edu knows")
    taken = OPTIMIZERS[settings["optimizer"]].defaults
    checks = [(key, kind) for key, (kind, _) in OPTIMIZER_HELP.items() if key in taken]
    checks += [(key, kind) for key, kind in RUN_TYPES.items()
               if settings.get(key) is not None or key in ("batch_size", "epochs")]
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
    log_every = settings.get("log_every", LOG_EVERY)  # rows already logged at it; this version logs at LOG_EVERY
    require(type(log_every) is int and log_every == LOG_EVERY, path,
            f"settings.log_every = {log_every!r}, but lamb-edu {lamb_edu.__version__} logs every {LOG_EVERY} steps")
    hidden = settings.get("hidden")
    if "hidden" in MODELS[settings.get("model", "mlp")].defaults:
        require(isinstance(hidden, list) and hidden and all(isinstance(w, int) and not isinstance(w, bool) and w >= 1
                                                             for w in hidden), path,
                "settings.hidden must be a list of widths >= 1")


def default_out_dir(settings: dict[str, Any]) -> Path:
    """``runs/<optimizer>-lr<lr>-bs<batch>-<date>-<time>``, the output directory when ``--out`` is not given."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{settings['optimizer']}-lr{settings['lr']:g}-bs{settings['batch_size']}-{stamp}"


def chosen_backend(args: argparse.Namespace) -> str:
    """``--backend`` when given, else the one ``LAMB_EDU_BACKEND`` chose at import (numpy when unset)."""
    return args.backend if args.backend is not None else backend.name()


def use_backend(name: str) -> None:
    """Switch the array backend, or exit 1 with the reason (no CuPy, no GPU)."""
    try:
        backend.use(name)
    except backend.BackendUnavailableError as error:
        raise CommandError(str(error), 1) from None


def unique(values: list[Any]) -> list[Any]:
    """``values`` without repeats, in their first order (a grid trains each value once)."""
    return list(dict.fromkeys(values))
