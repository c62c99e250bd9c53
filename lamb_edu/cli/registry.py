"""The optimizers and models ``lamb-edu train`` offers: one entry each, from which the flags follow.

An optimizer entry names its class in ``lamb_edu.optim`` and the settings it takes with their
defaults; a flag applies to exactly the optimizers whose defaults list it, which is what its help
says and what ``--momentum`` given to Adam is refused by. Settings map to the constructor's
keywords by one rule (``constructor_keywords``). A model entry builds the network from the settings.

Defaults: LAMB follows the article's MNIST runs (lr 0.01) and the June 2019 code of cybertronai/
pytorch-lamb (betas 0.9, 0.999, eps 1e-6); ``lamb2019`` is the May 2019 code the article ran
(``optim.LAMB2019``: eps 1e-8, weight decay as L2, ``--no-trust-ratio`` is its ``adam=True``); the
others follow torch.optim, with learning rates that train this MLP well in a few epochs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from lamb_edu import nn, optim
from lamb_edu.text_data import CHARACTERS

__all__ = ["OptimizerEntry", "OPTIMIZERS", "OPTIMIZER_FLAGS", "ModelEntry", "MODELS", "MODEL_FLAGS", "applies_to",
           "constructor_keywords", "build_optimizer", "build_model"]


@dataclass(frozen=True)
class OptimizerEntry:
    """An optimizer of ``lamb_edu.optim`` (by class name) and the settings it takes, with their defaults."""

    class_name: str
    defaults: dict[str, Any]
    # settings passed under another keyword, as they are (LAMB2019's ``adam`` is --no-trust-ratio)
    renamed: dict[str, str] = field(default_factory=dict)


OPTIMIZERS: dict[str, OptimizerEntry] = {
    "sgd": OptimizerEntry("SGD", {"lr": 0.1, "weight_decay": 0.0, "momentum": 0.0, "nesterov": False}),
    "adagrad": OptimizerEntry("Adagrad", {"lr": 0.01, "weight_decay": 0.0, "eps": 1e-10}),
    "rmsprop": OptimizerEntry("RMSprop", {"lr": 0.001, "weight_decay": 0.0, "momentum": 0.0, "beta2": 0.99,
                                          "eps": 1e-8}),
    "adam": OptimizerEntry("Adam", {"lr": 0.001, "weight_decay": 0.0, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8,
                                    "no_bias_correction": False}),
    "adamw": OptimizerEntry("AdamW", {"lr": 0.001, "weight_decay": 0.01, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8,
                                      "no_bias_correction": False}),
    "lars": OptimizerEntry("LARS", {"lr": 5.0, "weight_decay": 0.0, "momentum": 0.9, "nesterov": False, "eps": 1e-8,
                                    "no_trust_ratio": False}),
    "lamb": OptimizerEntry("LAMB", {"lr": 0.01, "weight_decay": 0.0, "beta1": 0.9, "beta2": 0.999, "eps": 1e-6,
                                    "no_bias_correction": False, "no_trust_ratio": False}),
    "lamb2019": OptimizerEntry("LAMB2019", {"lr": 0.01, "weight_decay": 0.0, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8,
                                            "no_trust_ratio": False}, renamed={"no_trust_ratio": "adam"}),
}

# Every optimizer setting, in the order of --help and of summary.json.
OPTIMIZER_FLAGS = ("lr", "weight_decay", "momentum", "nesterov", "beta1", "beta2", "eps", "no_bias_correction",
                   "no_trust_ratio")


def applies_to(setting: str) -> list[str]:
    """The optimizers that take ``setting``."""
    return [name for name, entry in OPTIMIZERS.items() if setting in entry.defaults]


def constructor_keywords(name: str, settings: dict[str, Any]) -> dict[str, Any]:
    """The keywords of optimizer ``name``'s constructor for ``settings`` (the flags' names and meanings)."""
    entry = OPTIMIZERS[name]
    values = {key: settings[key] for key in entry.defaults if key not in entry.renamed}
    values.update({keyword: settings[key] for key, keyword in entry.renamed.items()})
    if "beta1" in values:  # Adam-type: betas = (β1, β2)
        values["betas"] = (values.pop("beta1"), values.pop("beta2"))
    elif "beta2" in values:  # RMSprop calls the decay of its squared-gradient average alpha
        values["alpha"] = values.pop("beta2")
    for flag, keyword in (("no_bias_correction", "bias_correction"), ("no_trust_ratio", "use_trust_ratio")):
        if flag in values:
            values[keyword] = not values.pop(flag)
    return values


def build_optimizer(settings: dict[str, Any], named_parameters: list[tuple[str, Any]]) -> Any:
    """The optimizer the settings describe, over all parameters (biases included, as in the article's code)."""
    name = settings["optimizer"]
    optimizer_class = getattr(optim, OPTIMIZERS[name].class_name)
    optimizer = optimizer_class(list(named_parameters), **constructor_keywords(name, settings))
    if settings.get("lookahead") is not None:
        optimizer = optim.Lookahead(optimizer, k=settings["lookahead"], alpha=0.5)
    return optimizer


@dataclass(frozen=True)
class ModelEntry:
    """A network and its task: ``build(settings)`` makes it; ``defaults`` are the settings it takes.

    ``task`` is "mnist" (28x28 digits, classification) or "masked-lm" (tiny-Shakespeare characters).
    """

    build: Callable[[dict[str, Any]], Any]
    defaults: dict[str, Any]
    description: str
    task: str = "mnist"


def _mlp(settings: dict[str, Any]) -> Any:
    return nn.MLP([784, *settings["hidden"], 10], seed=settings["seed"])


def _cnn(settings: dict[str, Any]) -> Any:
    return nn.CNN(seed=settings["seed"])


def _tiny_bert(settings: dict[str, Any]) -> Any:
    return nn.TinyBERT(CHARACTERS + 1, settings["context"], d_model=settings["d_model"], n_layers=settings["layers"],
                       n_heads=settings["heads"], d_ff=4 * settings["d_model"], seed=settings["seed"])


MODELS: dict[str, ModelEntry] = {
    "mlp": ModelEntry(_mlp, {"hidden": [256, 256]}, "nn.MLP: Linear/ReLU layers of the --hidden widths"),
    "cnn": ModelEntry(_cnn, {}, "nn.CNN: the article's network, conv 5x5 20 and 50 channels, max-pool, fc 500"),
    "tiny-bert": ModelEntry(_tiny_bert, {"context": 64, "d_model": 128, "layers": 2, "heads": 4},
                            "nn.TinyBERT: a masked-character model of tiny Shakespeare (post-LN BERT, d_ff 4·d_model)",
                            task="masked-lm"),
}

# Every model setting, in the order of --help and of summary.json.
MODEL_FLAGS = ("hidden", "context", "d_model", "layers", "heads")


def build_model(settings: dict[str, Any]) -> Any:
    """The model the settings describe, its weights drawn from ``settings['seed']``."""
    return MODELS[settings["model"]].build(settings)
