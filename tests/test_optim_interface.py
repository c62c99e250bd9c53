"""The torch.optim-shaped interface every optimizer shares: groups, state dicts, bad input, faults."""

from __future__ import annotations

import numpy as np
import pytest

from lamb_edu import Tensor, backend, nn, optim

# One factory per optimizer, with settings that exercise its state (momentum, weight decay, ...).
FACTORIES = {
    "SGD": lambda params: optim.SGD(params, lr=0.05, momentum=0.9, weight_decay=0.01),
    "Adam": lambda params: optim.Adam(params, lr=0.01, amsgrad=True),
    "AdamW": lambda params: optim.AdamW(params, lr=0.01),
    "LAMB": lambda params: optim.LAMB(params, lr=0.01, weight_decay=0.01),
    "Adagrad": lambda params: optim.Adagrad(params, lr=0.05, lr_decay=0.01, weight_decay=0.01),
    "RMSprop": lambda params: optim.RMSprop(params, lr=0.01, momentum=0.5, centered=True),
    "LARS": lambda params: optim.LARS(params, lr=1.0, weight_decay=0.01),
    "Lookahead": lambda params: optim.Lookahead(optim.Adam(params, lr=0.01), k=3, alpha=0.5),
}


def make_params(seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    shapes = [(5,), (4, 3), (2, 3, 2)]
    return [Tensor(backend.asarray(rng.normal(size=s), dtype=dtype), requires_grad=True) for s in shapes]


def set_grads(params, seed):
    rng = np.random.default_rng(seed)
    for p in params:
        p.grad = backend.asarray(rng.normal(size=p.shape), dtype=p.dtype)


def stepped(name, steps=2):
    """Parameters and an optimizer of kind ``name`` that has taken ``steps`` steps."""
    params = make_params()
    optimizer = FACTORIES[name](params)
    run(optimizer, params, steps, first_seed=0)
    return params, optimizer


def snapshot(params):
    return [backend.to_numpy(p.data).copy() for p in params]


def run(optimizer, params, steps, first_seed):
    for step in range(steps):
        set_grads(params, first_seed + step)
        optimizer.step()


def assert_state_dicts_equal(a, b):
    assert a["param_groups"] == b["param_groups"]
    assert sorted(a["state"]) == sorted(b["state"])
    for key in a["state"]:
        assert sorted(a["state"][key]) == sorted(b["state"][key])
        for name, value in a["state"][key].items():
            if hasattr(value, "shape"):
                np.testing.assert_array_equal(value, b["state"][key][name])
            else:
                assert value == b["state"][key][name]


@pytest.mark.parametrize("name", sorted(FACTORIES))
@pytest.mark.parametrize("through_npz", [False, True])
def test_state_dict_round_trip_mid_run_continues_bit_identically(name, through_npz, tmp_path):
    make = FACTORIES[name]
    params = make_params()
    optimizer = make(params)
    run(optimizer, params, 5, first_seed=100)
    saved_weights, saved_state = snapshot(params), optimizer.state_dict()
    run(optimizer, params, 5, first_seed=200)
    expected = snapshot(params)

    if through_npz:
        path = tmp_path / "optimizer.npz"
        np.savez(path, **optim.flatten_state_dict(saved_state))
        with np.load(path, allow_pickle=False) as loaded:
            saved_state = optim.unflatten_state_dict(dict(loaded))
    restored_params = make_params(seed=1)  # different starting values: everything must come from the files
    for p, w in zip(restored_params, saved_weights):
        p.data[...] = backend.asarray(w)
    restored = make(restored_params)
    restored.load_state_dict(saved_state)
    run(restored, restored_params, 5, first_seed=200)
    for got, want in zip(snapshot(restored_params), expected):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("name", ["LAMB", "LARS"])
def test_a_checkpoint_that_says_update_norm_still_loads(name):
    """Older versions recorded the ratio's denominator as ``update_norm`` (LARS also as ``trust_denominator``)."""
    params, optimizer = stepped(name)
    saved = optimizer.state_dict()
    old = {**saved, "state": {}}
    for index, entry in saved["state"].items():
        entry = dict(entry)
        entry["update_norm"] = entry.pop("ratio_denominator")
        if name == "LARS":
            entry["trust_denominator"] = entry["update_norm"]
        old["state"][index] = entry
    restored = FACTORIES[name](make_params())
    restored.load_state_dict(old)
    assert_state_dicts_equal(restored.state_dict(), saved)
    with pytest.raises(ValueError, match="allows"):  # an unknown key is still refused
        restored.load_state_dict({**saved, "state": {0: {**saved["state"][0], "updat_norm": 1.0}}})


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_state_dict_holds_only_numbers_strings_lists_and_host_arrays(name):
    params, optimizer = stepped(name)
    state = optimizer.state_dict()
    assert sorted(state["state"]) == [0, 1, 2]
    assert [g["params"] for g in state["param_groups"]] == [[0, 1, 2]]
    for entry in state["state"].values():
        for value in entry.values():
            assert isinstance(value, (int, float, np.ndarray)) and not isinstance(value, np.generic)
    # a copy: stepping on does not change what was saved
    before = {k: {n: (v.copy() if hasattr(v, "copy") else v) for n, v in e.items()} for k, e in state["state"].items()}
    run(optimizer, params, 1, first_seed=9)
    assert_state_dicts_equal(state, {"state": before, "param_groups": state["param_groups"]})


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_bad_state_dicts_are_rejected_and_leave_the_optimizer_unchanged(name):
    params, optimizer = stepped(name)
    good = optimizer.state_dict()
    before = optimizer.state_dict()

    too_many_groups = {**good, "param_groups": good["param_groups"] * 2}
    fewer_params = {**good, "state": {}, "param_groups": [{**good["param_groups"][0], "params": [0, 1]}]}
    unknown_param = {**good, "state": {**good["state"], 7: good["state"][0]}}
    wrong_shape = {**good, "state": {k: dict(v) for k, v in good["state"].items()}}
    array_name = next(n for n, v in wrong_shape["state"][1].items() if hasattr(v, "shape"))
    wrong_shape["state"][1][array_name] = np.zeros((3, 4), dtype=np.float32)
    bad_lr = {**good, "param_groups": [{**good["param_groups"][0], "lr": -1.0}]}
    cases = [(too_many_groups, "groups"), (fewer_params, "parameters"), (unknown_param, "parameter 7"),
             (wrong_shape, "shape"), (bad_lr, "lr")]
    if name == "Lookahead":
        slow = dict(good["lookahead"]["slow_weights"])
        cases.append(({**good, "lookahead": {**good["lookahead"], "slow_weights": {**slow, 1: np.zeros(7)}}}, "shape"))
        cases.append(({**good, "lookahead": {**good["lookahead"], "k": 0}}, "k"))
    for bad, message in cases:
        with pytest.raises(ValueError, match=message):
            optimizer.load_state_dict(bad)
        assert_state_dicts_equal(optimizer.state_dict(), before)
        if name == "Lookahead":
            assert optimizer.state_dict()["lookahead"]["k"] == before["lookahead"]["k"]
            for index, slow in before["lookahead"]["slow_weights"].items():
                np.testing.assert_array_equal(optimizer.state_dict()["lookahead"]["slow_weights"][index], slow)


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_nan_or_inf_gradient_raises_and_changes_nothing(name):
    params = make_params()
    names = ["bias", "weight", "kernel"]
    optimizer = FACTORIES[name]([{"params": list(zip(names, params))}])
    run(optimizer, params, 3, first_seed=0)
    weights, state = snapshot(params), optimizer.state_dict()
    for bad_value in (np.nan, np.inf, -np.inf):
        set_grads(params, 50)
        grad = backend.to_numpy(params[2].grad).copy()
        grad[1, 0, 1] = bad_value
        params[2].grad = backend.asarray(grad)
        with pytest.raises(FloatingPointError, match=r"parameter 2 of group 0 \(shape \(2, 3, 2\), name 'kernel'\)"):
            optimizer.step()
        for got, want in zip(snapshot(params), weights):
            np.testing.assert_array_equal(got, want)
        assert_state_dicts_equal(optimizer.state_dict(), state)


def test_huge_but_finite_gradients_are_not_mistaken_for_nan():
    p = Tensor(np.zeros(4, dtype=np.float32), requires_grad=True)
    p.grad = np.full(4, 3e38, dtype=np.float32)  # its sum overflows float32, yet every entry is finite
    optimizer = optim.SGD([p], lr=1e-40)
    optimizer.step()
    assert np.all(np.isfinite(p.data))


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_parameters_without_gradient_are_skipped(name):
    params = make_params()
    optimizer = FACTORIES[name](params)
    set_grads(params, 0)
    params[1].grad = None
    before = snapshot(params)
    optimizer.step()
    after = snapshot(params)
    np.testing.assert_array_equal(after[1], before[1])
    assert params[1] not in optimizer.state
    assert not np.array_equal(after[0], before[0]) and not np.array_equal(after[2], before[2])


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_step_returns_the_closures_loss_and_zero_grad_clears(name):
    params = make_params()
    optimizer = FACTORIES[name](params)

    def closure():
        set_grads(params, 3)
        return 1.25

    assert optimizer.step(closure) == 1.25
    assert optimizer.step() is None
    optimizer.zero_grad()
    assert all(p.grad is None for p in params)


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_groups_with_different_hyperparameters_match_separate_optimizers(name):
    """Two groups in one optimizer behave exactly like one optimizer per group."""
    make = FACTORIES[name]
    together = make_params()
    optimizer = make([{"params": together[:2]}, {"params": together[2:], "lr": 0.001}])
    assert optimizer.param_groups[1]["lr"] == 0.001 and optimizer.param_groups[0]["lr"] != 0.001
    apart = make_params()
    first = make(apart[:2])
    second = make(apart[2:])
    second.param_groups[0]["lr"] = 0.001
    for step in range(4):
        set_grads(together, step)
        set_grads(apart, step)
        optimizer.step()
        first.step()
        second.step()
    for got, want in zip(snapshot(together), snapshot(apart)):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_changing_lr_between_steps_takes_effect(name):
    """lr 0 freezes the weights; restoring it resumes."""
    make = {  # LARS's velocity keeps moving w at lr 0, and Lookahead's synchronisation moves w at any lr
        "LARS": lambda params: optim.LARS(params, lr=1.0, momentum=0.0),
        "Lookahead": lambda params: optim.Lookahead(optim.Adam(params, lr=0.01), k=100),
    }.get(name, FACTORIES[name])
    params = make_params()
    optimizer = make(params)
    run(optimizer, params, 2, first_seed=0)
    lr = optimizer.param_groups[0]["lr"]
    optimizer.param_groups[0]["lr"] = 0.0
    before = snapshot(params)
    run(optimizer, params, 1, first_seed=5)
    for got, want in zip(snapshot(params), before):
        np.testing.assert_array_equal(got, want)
    optimizer.param_groups[0]["lr"] = lr
    run(optimizer, params, 1, first_seed=6)
    assert all(not np.array_equal(g, w) for g, w in zip(snapshot(params), before))


def test_float32_parameters_keep_float32_state_and_weights():
    for name, make in FACTORIES.items():
        params = make_params(dtype=np.float32)
        optimizer = make(params)
        run(optimizer, params, 2, first_seed=0)
        assert all(p.data.dtype == np.float32 for p in params), name
        for entry in optimizer.state.values():
            assert all(v.dtype == np.float32 for v in entry.values() if hasattr(v, "dtype")), name


def test_update_is_in_place_and_keeps_the_array_object():
    for name, make in FACTORIES.items():
        params = make_params()
        arrays = [p.data for p in params]
        optimizer = make(params)
        run(optimizer, params, 2, first_seed=0)
        assert all(p.data is a for p, a in zip(params, arrays)), name


# ---------------------------------------------------------------------- bad arguments
BAD_ARGUMENTS = [
    (optim.SGD, dict(lr=-0.1), "lr", "-0.1"),
    (optim.SGD, dict(lr=0.1, momentum=-0.5), "momentum", "-0.5"),
    (optim.SGD, dict(lr=0.1, nesterov=True), "nesterov", "momentum=0"),
    (optim.SGD, dict(lr=0.1, momentum=0.9, dampening=0.1, nesterov=True), "nesterov", "dampening=0.1"),
    (optim.SGD, dict(lr=0.1, weight_decay=-1.0), "weight_decay", "-1.0"),
    (optim.Adam, dict(lr=-1e-3), "lr", "-0.001"),
    (optim.Adam, dict(eps=-1e-8), "eps", "-1e-08"),
    (optim.Adam, dict(betas=(1.0, 0.999)), r"betas\[0\]", "1.0"),
    (optim.Adam, dict(betas=(0.9, -0.1)), r"betas\[1\]", "-0.1"),
    (optim.AdamW, dict(betas=(0.9, 1.5)), r"betas\[1\]", "1.5"),
    (optim.AdamW, dict(lr=float("nan")), "lr", "nan"),
    (optim.LAMB, dict(lr=-1.0), "lr", "-1.0"),
    (optim.LAMB, dict(eps=-1.0), "eps", "-1.0"),
    (optim.LAMB, dict(betas=(0.9, 1.0)), r"betas\[1\]", "1.0"),
    (optim.LAMB, dict(clamp_value=0.0), "clamp_value", "0.0"),
    (optim.LAMB, dict(clamp_value=-2.0), "clamp_value", "-2.0"),
    (optim.LAMB, dict(max_grad_norm=0.0), "max_grad_norm", "0.0"),
    (optim.Adagrad, dict(lr=-0.5), "lr", "-0.5"),
    (optim.Adagrad, dict(lr_decay=-0.1), "lr_decay", "-0.1"),
    (optim.Adagrad, dict(eps=-1.0), "eps", "-1.0"),
    (optim.Adagrad, dict(initial_accumulator_value=-1.0), "initial_accumulator_value", "-1.0"),
    (optim.RMSprop, dict(alpha=1.0), "alpha", "1.0"),
    (optim.RMSprop, dict(alpha=-0.2), "alpha", "-0.2"),
    (optim.RMSprop, dict(momentum=-0.9), "momentum", "-0.9"),
    (optim.RMSprop, dict(eps=-1e-8), "eps", "-1e-08"),
    (optim.LARS, dict(lr=-1.0), "lr", "-1.0"),
    (optim.LARS, dict(lr=1.0, momentum=-0.1), "momentum", "-0.1"),
    (optim.LARS, dict(lr=1.0, momentum=0.0, nesterov=True), "nesterov", "momentum=0.0"),
    (optim.LARS, dict(lr=1.0, eps=-1.0), "eps", "-1.0"),
    (optim.LARS, dict(lr=1.0, trust_coefficient=-1e-3), "trust_coefficient", "-0.001"),
]


@pytest.mark.parametrize("cls,kwargs,argument,value", BAD_ARGUMENTS,
                         ids=[f"{c.__name__}-{a}-{v}" for c, _, a, v in BAD_ARGUMENTS])
def test_bad_hyperparameters_raise_value_error_naming_argument_and_value(cls, kwargs, argument, value):
    with pytest.raises(ValueError, match=f"{argument}.*{value}"):
        cls(make_params(), **kwargs)


@pytest.mark.parametrize("kwargs,argument,value", [
    (dict(k=0), "k", "0"), (dict(k=-3), "k", "-3"), (dict(k=2.5), "k", "2.5"),
    (dict(alpha=0.0), "alpha", "0.0"), (dict(alpha=1.5), "alpha", "1.5"), (dict(alpha=-0.5), "alpha", "-0.5"),
])
def test_bad_lookahead_settings_raise_value_error(kwargs, argument, value):
    with pytest.raises(ValueError, match=f"{argument}.*{value}"):
        optim.Lookahead(optim.SGD(make_params(), lr=0.1), **kwargs)


@pytest.mark.parametrize("cls", [optim.SGD, optim.Adagrad, optim.RMSprop, optim.Adam, optim.AdamW,
                                 optim.LARS, optim.LAMB])
def test_bad_parameter_lists_raise_value_error(cls):
    with pytest.raises(ValueError, match="empty"):
        cls([], lr=0.1)
    with pytest.raises(ValueError, match="empty"):
        cls([{"params": []}], lr=0.1)
    params = make_params()
    with pytest.raises(ValueError, match="given twice"):
        cls([params[0], params[1], params[0]], lr=0.1)
    with pytest.raises(ValueError, match="given twice"):
        cls([{"params": params[:2]}, {"params": params[1:]}], lr=0.1)
    with pytest.raises(ValueError, match="lr"):
        cls([{"params": params[:2]}, {"params": params[2:], "lr": -3.0}], lr=0.1)


# ---------------------------------------------------------------------- param_groups_no_decay
def test_param_groups_no_decay_exempts_biases():
    model = nn.MLP([4, 3, 2], seed=0)
    groups = optim.param_groups_no_decay(model, 0.01)
    assert [g["param_names"] for g in groups] == [["layers.0.weight", "layers.2.weight"],
                                                  ["layers.0.bias", "layers.2.bias"]]
    assert groups[0]["weight_decay"] == 0.01 and groups[1]["weight_decay"] == 0.0
    assert groups[1]["use_trust_ratio"] is False
    optimizer = optim.LAMB(groups, lr=0.01, weight_decay=0.5)
    assert [g["weight_decay"] for g in optimizer.param_groups] == [0.01, 0.0]
    assert [g["use_trust_ratio"] for g in optimizer.param_groups] == [True, False]
    with pytest.raises(ValueError, match="weight_decay.*-1"):
        optim.param_groups_no_decay(model, -1)


def test_lamb_exempt_group_steps_with_ratio_one_but_records_it():
    """In the no-decay group LAMB steps like AdamW (ratio 1) while still recording the ratio."""
    model = nn.MLP([4, 3, 2], seed=0, dtype=np.float64)
    reference = nn.MLP([4, 3, 2], seed=0, dtype=np.float64)
    lamb = optim.LAMB(optim.param_groups_no_decay(model, 0.01), lr=0.01, eps=1e-8)
    adamw = optim.AdamW([p for n, p in reference.named_parameters() if "bias" in n], lr=0.01, weight_decay=0.0)
    for step in range(3):
        for net in (model, reference):
            set_grads(net.parameters(), step)
        lamb.step()
        adamw.step()
    for (name, p), q in zip(model.named_parameters(), reference.parameters()):
        if "bias" in name:
            np.testing.assert_allclose(p.data, q.data, rtol=1e-12)
            assert lamb.state[p]["trust_ratio"] != 1.0


def test_lookahead_add_param_group_gets_slow_weights():
    """A group added later behaves exactly as if it had been given at the start."""
    rng = np.random.default_rng(3)
    first, second = rng.normal(size=(4, 3)), rng.normal(size=5)
    grads = [(rng.normal(size=(4, 3)), rng.normal(size=5)) for _ in range(7)]

    def run(add_later: bool):
        a, b = Tensor(first.copy(), requires_grad=True), Tensor(second.copy(), requires_grad=True)
        if add_later:
            lookahead = optim.Lookahead(optim.SGD([a], lr=0.1, momentum=0.9), k=3, alpha=0.5)
            lookahead.add_param_group({"params": [b], "lr": 0.2})
        else:
            inner = optim.SGD([{"params": [a]}, {"params": [b], "lr": 0.2}], lr=0.1, momentum=0.9)
            lookahead = optim.Lookahead(inner, k=3, alpha=0.5)
        for grad_a, grad_b in grads:
            a.grad, b.grad = grad_a, grad_b
            lookahead.step()
        return a.data, b.data, len(lookahead.slow_weights)

    later, upfront = run(True), run(False)
    assert later[2] == upfront[2] == 2
    assert np.array_equal(later[0], upfront[0]) and np.array_equal(later[1], upfront[1])
    assert not np.allclose(later[1], second)  # the added group really moved
