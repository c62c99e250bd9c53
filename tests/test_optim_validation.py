"""Nothing changes unless everything is valid: hyperparameters, gradients and state dicts are checked first."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lamb_edu import Tensor, optim
from lamb_edu.optim import schedules
from tests.test_optim_interface import FACTORIES, assert_state_dicts_equal, make_params, run, snapshot

INF, NAN = math.inf, math.nan

BAD_HYPERPARAMETERS = [
    (optim.SGD, dict(lr=INF), "lr"),
    (optim.SGD, dict(lr=0.1, weight_decay=INF), "weight_decay"),
    (optim.SGD, dict(lr=0.1, momentum=2.0), "momentum"),
    (optim.SGD, dict(lr=0.1, momentum=1.0), "momentum"),
    (optim.SGD, dict(lr=0.1, momentum=0.5, dampening=2.0), "dampening"),
    (optim.SGD, dict(lr=0.1, momentum=0.5, nesterov="yes"), "nesterov"),
    (optim.Adagrad, dict(lr=NAN), "lr"),
    (optim.Adagrad, dict(lr_decay=INF), "lr_decay"),
    (optim.Adagrad, dict(initial_accumulator_value=INF), "initial_accumulator_value"),
    (optim.Adagrad, dict(eps=INF), "eps"),
    (optim.RMSprop, dict(momentum=2.0), "momentum"),
    (optim.RMSprop, dict(alpha=NAN), "alpha"),
    (optim.RMSprop, dict(weight_decay=INF), "weight_decay"),
    (optim.RMSprop, dict(centered=1), "centered"),
    (optim.Adam, dict(lr=INF), "lr"),
    (optim.Adam, dict(eps=NAN), "eps"),
    (optim.Adam, dict(betas=(NAN, 0.999)), r"betas\[0\]"),
    (optim.Adam, dict(amsgrad="no"), "amsgrad"),
    (optim.AdamW, dict(weight_decay=INF), "weight_decay"),
    (optim.LARS, dict(lr=INF), "lr"),
    (optim.LARS, dict(lr=1.0, momentum=1.5), "momentum"),
    (optim.LARS, dict(lr=1.0, trust_coefficient=INF), "trust_coefficient"),
    (optim.LAMB, dict(lr=INF), "lr"),
    (optim.LAMB, dict(weight_decay=INF), "weight_decay"),
    (optim.LAMB, dict(clamp_value=INF), "clamp_value"),
    (optim.LAMB, dict(max_grad_norm=NAN), "max_grad_norm"),
    (optim.LAMB, dict(use_trust_ratio=None), "use_trust_ratio"),
]


@pytest.mark.parametrize("cls,kwargs,argument", BAD_HYPERPARAMETERS,
                         ids=[f"{c.__name__}-{a}-{list(k.values())[-1]}" for c, k, a in BAD_HYPERPARAMETERS])
def test_non_finite_and_out_of_range_hyperparameters_are_rejected(cls, kwargs, argument):
    with pytest.raises(ValueError, match=f"invalid {argument}"):
        cls(make_params(), **kwargs)


@pytest.mark.parametrize("kwargs,argument", [(dict(alpha=NAN), "alpha"), (dict(alpha=INF), "alpha"),
                                             (dict(k=True), "k"), (dict(k=3.0), "k")])
def test_non_finite_lookahead_settings_are_rejected(kwargs, argument):
    with pytest.raises(ValueError, match=f"invalid {argument}"):
        optim.Lookahead(optim.SGD(make_params(), lr=0.1), **kwargs)


def test_a_group_with_an_infinite_lr_is_rejected_and_not_added():
    params = make_params()
    optimizer = optim.Adam(params[:2])
    with pytest.raises(ValueError, match="invalid lr: inf"):
        optimizer.add_param_group({"params": params[2:], "lr": INF})
    assert len(optimizer.param_groups) == 1


BAD_GRADIENTS = [
    (lambda p: np.zeros(p.shape[1:] + p.shape[:1], dtype=np.float32), "shape"),  # (3, 2, 2) for (2, 3, 2): same size
    (lambda p: np.zeros(p.shape[-1], dtype=np.float32), "shape"),  # would broadcast
    (lambda p: np.zeros(p.shape, dtype=np.int64), "dtype int64"),
    (lambda p: np.zeros(p.shape, dtype=np.float32).tolist(), "list"),
]


@pytest.mark.parametrize("name", sorted(FACTORIES))
@pytest.mark.parametrize("make_bad,message", BAD_GRADIENTS, ids=["transposed", "broadcast", "integer", "list"])
@pytest.mark.parametrize("steps_before", [0, 2])
def test_a_gradient_of_the_wrong_shape_or_type_changes_nothing(name, make_bad, message, steps_before):
    params = make_params()
    optimizer = FACTORIES[name](params)
    run(optimizer, params, steps_before, first_seed=0)
    weights, state = snapshot(params), optimizer.state_dict()
    for p, seed in zip(params, range(3)):
        p.grad = np.random.default_rng(seed).normal(size=p.shape).astype(np.float32)
    params[2].grad = make_bad(params[2])  # the last parameter: the first two would be stepped first
    with pytest.raises(ValueError, match=f"parameter 2 of group 0.*{message}"):
        optimizer.step()
    for got, want in zip(snapshot(params), weights):
        np.testing.assert_array_equal(got, want)
    assert_state_dicts_equal(optimizer.state_dict(), state)
    assert len(optimizer.state) == (3 if steps_before else 0)


# ---------------------------------------------------------------------- state dicts
@pytest.mark.parametrize("target", ["Adam", "SGD", "Lookahead", "LARS"])
def test_a_lamb_state_dict_is_refused_by_another_optimizer_naming_both(target):
    _, lamb = _stepped("LAMB")
    params, optimizer = _stepped(target)
    before, weights = optimizer.state_dict(), snapshot(params)
    with pytest.raises(ValueError, match=f"'LAMB'.*'{target}'"):
        optimizer.load_state_dict(lamb.state_dict())
    assert_state_dicts_equal(optimizer.state_dict(), before)
    for got, want in zip(snapshot(params), weights):
        np.testing.assert_array_equal(got, want)


def test_a_lookahead_state_dict_names_its_inner_optimizer_and_refuses_another():
    _, lookahead_adam = _stepped("Lookahead")
    saved = lookahead_adam.state_dict()
    assert saved["optimizer"] == "Lookahead" and saved["lookahead"]["inner_optimizer"] == "Adam"
    params = make_params()
    lookahead_sgd = optim.Lookahead(optim.SGD(params, lr=0.1), k=3)
    before = lookahead_sgd.state_dict()
    with pytest.raises(ValueError, match="'Adam'.*'SGD'"):
        lookahead_sgd.load_state_dict(saved)
    assert_state_dicts_equal(lookahead_sgd.state_dict(), before)
    assert lookahead_sgd.k == 3


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_missing_or_extra_keys_are_rejected_and_change_nothing(name):
    params, optimizer = _stepped(name)
    good, before = optimizer.state_dict(), optimizer.state_dict()
    group = good["param_groups"][0]
    entry = good["state"][1]
    renamed = {("mm" if key != "step" else key): value for key, value in list(entry.items())[-1:]} | \
        {key: value for key, value in list(entry.items())[:-1]}
    cases = [
        ({key: value for key, value in good.items() if key != "optimizer"}, "optimizer"),
        ({**good, "param_groups": [{k: v for k, v in group.items() if k != "lr"}]},
         r"missing hyperparameters \['lr'\]"),
        ({**good, "param_groups": [{**group, "learning_rate": 0.1}]}, r"unknown ones \['learning_rate'\]"),
        ({**good, "state": {**good["state"], 1: {**entry, "velocity": entry["step"]}}}, "velocity"),
        ({**good, "state": {**good["state"], 1: renamed}}, "keys"),
        ({**good, "state": {**good["state"], 1: {**entry, "step": -1}}}, "step"),
        ({**good, "state": {**good["state"], "first": entry}}, "first"),
        ({**good, "extra": 1}, "keys"),
    ]
    for bad, message in cases:
        with pytest.raises(ValueError, match=message):
            optimizer.load_state_dict(bad)
        assert_state_dicts_equal(optimizer.state_dict(), before)


def test_check_state_dict_validates_without_loading():
    params, optimizer = _stepped("Adam")
    saved = optimizer.state_dict()
    run(optimizer, params, 1, first_seed=7)
    groups, state = optimizer.check_state_dict(saved)
    assert [p for p in state] == params and all(entry["step"] == 2 for entry in state.values())
    assert all(entry["step"] == 3 for entry in optimizer.state.values())  # unchanged


def _stepped(name):
    params = make_params()
    optimizer = FACTORIES[name](params)
    run(optimizer, params, 2, first_seed=0)
    return params, optimizer


# ---------------------------------------------------------------------- schedules
def test_scheduler_load_state_dict_checks_everything_first():
    optimizer = optim.SGD([Tensor(np.zeros(2), requires_grad=True)], lr=0.2)
    scheduler = schedules.LRScheduler(optimizer, schedules.LinearWarmup(10))
    scheduler.step()
    for bad, message in [({"base_lrs": [INF], "last_step": 1}, "base_lrs"),
                         ({"base_lrs": [0.1], "last_step": -1}, "last_step"),
                         ({"base_lrs": [0.1], "last_step": 2.5}, "last_step"),
                         ({"base_lrs": [0.1]}, "keys")]:
        with pytest.raises(ValueError, match=message):
            scheduler.load_state_dict(bad)
        assert scheduler.base_lrs == [0.2] and scheduler.last_step == 1
        assert scheduler.get_last_lr() == [pytest.approx(0.2 * 2 / 10)]


def test_scheduler_refuses_a_step_its_schedule_has_no_factor_for_and_changes_nothing():
    optimizer = optim.SGD([Tensor(np.zeros(2), requires_grad=True)], lr=0.2)
    scheduler = schedules.LRScheduler(optimizer, lambda step: INF if step >= 5 else 1.0)
    with pytest.raises(ValueError, match="factor inf at step 6"):
        scheduler.load_state_dict({"base_lrs": [0.5], "last_step": 6})
    assert scheduler.base_lrs == [0.2] and scheduler.get_last_lr() == [0.2]
