"""The experiments return the data their figures claim to show.

Each check compares an experiment's returned numbers with an independent float64 computation
written here, or with a property the article states (a debiased average starts at the first data
point; the correction factor at t = 1 is 1/(1 − β)).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from lamb_edu import Tensor, experiments, optim


# ------------------------------------------------------------------------------------ 1. debias
@pytest.fixture(scope="module")
def debias_result():
    return experiments.debias(quick=True, seed=3)


def test_debias_series_is_the_noisy_parabola(debias_result):
    r = debias_result
    assert r.data.shape == (200,) and r.x[0] == -4.0 and r.x[-1] == 4.0
    residual = r.data - (1 - (r.x / 3) ** 2)
    assert 0.07 < residual.std() < 0.13  # Gaussian noise of standard deviation 0.1
    assert r.betas == (0.5, 0.7, 0.9, 0.99)


def test_moving_average_matches_the_unrolled_sum(debias_result):
    r = debias_result
    for beta in r.betas:
        t = np.arange(1, r.data.size + 1)
        # m_t = (1 − β) Σ_i β^(t−i) x_i, computed as a matrix of weights
        weights = np.tril((1 - beta) * beta ** (t[:, None] - t[None, :]).astype(float))
        expected = weights @ r.data
        np.testing.assert_allclose(r.average[beta], expected, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(r.debiased[beta], expected / (1 - beta**t), rtol=1e-9, atol=1e-12)


def test_debiased_average_starts_at_first_data_point(debias_result):
    r = debias_result
    for beta in r.betas:
        assert r.debiased[beta][0] == pytest.approx(r.data[0], rel=1e-12)
        assert r.average[beta][0] == pytest.approx((1 - beta) * r.data[0], rel=1e-12)
    # without correction the β = 0.99 average starts at 1 % of the data: near zero
    assert abs(r.average[0.99][0]) < 0.02 * abs(r.data[0]) + 1e-12
    assert abs(r.data[0]) > 0.3


def test_correction_factor(debias_result):
    r = debias_result
    for beta in r.betas:
        assert r.factor[beta][0] == pytest.approx(1 / (1 - beta))
        assert np.all(np.diff(r.factor[beta]) <= 0) and r.factor[beta][-1] >= 1
        # the first step with 1/(1 − β^t) < 1.01 is the first t with β^t < 1/101
        assert r.steps_to_within(beta) == math.floor(math.log(1 / 101) / math.log(beta)) + 1
    assert r.factor[0.9][0] == pytest.approx(10.0)
    assert r.steps_to_within(0.9) == 44  # "close to 1 after a few dozen steps"


def test_debias_summary_is_plain_numbers(debias_result):
    import json

    summary = json.loads(json.dumps(debias_result.summary()))
    assert summary["betas"]["0.9"]["factor_at_step_1"] == pytest.approx(10.0)
    assert summary["betas"]["0.99"]["first_debiased"] == pytest.approx(summary["first_data_point"])


def test_debias_rejects_bad_beta():
    with pytest.raises(ValueError, match="beta"):
        experiments.exponential_moving_average([1.0, 2.0], beta=1.0)
    with pytest.raises(ValueError, match="beta"):
        experiments.bias_correction_factor(-0.1, [1, 2])
    with pytest.raises(ValueError, match="step"):
        experiments.bias_correction_factor(0.9, [0, 1])


def test_quick_mode_follows_the_environment(monkeypatch):
    monkeypatch.setenv("LAMB_EDU_QUICK", "1")
    assert experiments.quick_mode(default=False) is True
    monkeypatch.setenv("LAMB_EDU_QUICK", "0")
    assert experiments.quick_mode(default=False) is False
    assert experiments.quick_mode(default=True) is True


# ------------------------------------------------------------------- divergence detection (exp. 5)
def _reference_smoothed(losses, window):
    out = []
    for t in range(len(losses)):
        chunk = losses[max(0, t + 1 - window): t + 1]
        out.append(sum(chunk) / len(chunk))
    return out


def test_smoothed_loss_is_a_trailing_mean():
    rng = np.random.default_rng(0)
    losses = rng.uniform(0, 3, size=57)
    np.testing.assert_allclose(experiments.smoothed_loss(losses, 7), _reference_smoothed(list(losses), 7), rtol=1e-12)


def test_loss_back_at_chance_level_is_divergence_without_nan():
    rng = np.random.default_rng(1)
    down = np.linspace(2.3, 0.2, 100)
    up = np.linspace(0.2, 2.4, 150)
    losses = np.concatenate([down, up, np.full(50, 2.3)]) + rng.normal(0, 0.02, 300)
    verdict = experiments.detect_divergence(losses)
    smooth = _reference_smoothed(list(losses), 20)
    learned_at = next(t for t, value in enumerate(smooth) if value < 1.0)
    expected = next(t for t in range(learned_at, 300) if smooth[t] >= math.log(10) - 0.1) + 1
    assert verdict.status == "diverged"
    assert verdict.step == expected
    assert "chance" in verdict.reasons[0]
    assert verdict.lowest_loss == pytest.approx(min(smooth))
    assert np.isfinite(losses).all()  # no NaN anywhere: the detector did not need one


def test_run_that_never_learns_and_run_that_learns():
    rng = np.random.default_rng(2)
    flat = math.log(10) + rng.normal(0, 0.05, 200)
    assert experiments.detect_divergence(flat).status == "did not learn"
    good = np.linspace(2.3, 0.1, 200) + rng.normal(0, 0.02, 200)
    norms = np.tile([5.0, 0.3], (20, 1)) * np.linspace(1, 3, 20)[:, None]  # grows 3×: not an explosion
    verdict = experiments.detect_divergence(good, norms, np.arange(0, 200, 10))
    assert verdict.status == "learned" and verdict.step is None and verdict.reasons == []


def test_exploding_weight_norms_are_divergence_even_while_the_loss_looks_fine():
    losses = np.linspace(2.3, 0.3, 200)
    log_steps = np.arange(1, 201, 10)
    norms = np.ones((20, 3)) * [3.0, 4.0, 0.1]
    norms[12:, 0] = 3.0 * 60  # one layer's norm jumps 60×: the total grows 36×
    verdict = experiments.detect_divergence(losses, norms, log_steps)
    assert verdict.status == "diverged"
    assert verdict.step == log_steps[12]
    assert "norm" in verdict.reasons[0]
    # a single small bias growing 10× alone does not move the total norm 10×
    norms = np.ones((20, 3)) * [3.0, 4.0, 0.1]
    norms[12:, 2] = 1.5
    assert experiments.detect_divergence(losses, norms, log_steps).status == "learned"
    # a non-finite norm counts as exploded
    norms[15, 1] = np.nan
    assert experiments.detect_divergence(losses, norms, log_steps).step == log_steps[15]


def test_a_stopped_run_is_diverged_at_its_stop():
    losses = np.linspace(2.3, 0.5, 40)
    verdict = experiments.detect_divergence(losses, stopped_at=41)
    assert verdict.status == "diverged" and verdict.step == 41 and "not finite" in verdict.reasons[0]


# ------------------------------------------------------------------------ 2. from SGD to LAMB
@pytest.fixture(scope="module")
def trajectories():
    return experiments.from_sgd_to_lamb(quick=True)


def _reference_loss(a, b):
    return 0.5 * ((a - 4.0) / 4.0) ** 2 + 0.5 * ((b - 0.04) / 0.04) ** 2


def test_every_optimizer_starts_at_the_same_point_and_records_its_loss(trajectories):
    r = trajectories
    assert set(r.weights) >= {"SGD", "momentum", "Adam", "AdamW", "LARS", "LAMB"}
    for name, weights in r.weights.items():
        assert weights.shape == (r.steps + 1, 2)
        np.testing.assert_allclose(weights[0], [1.0, 0.01], rtol=1e-6)
        np.testing.assert_allclose(r.loss[name], _reference_loss(weights[:, 0], weights[:, 1]), rtol=1e-4, atol=1e-7)


def test_first_steps_follow_each_rule(trajectories):
    r = trajectories
    gradient = np.array([(1.0 - 4.0) / 16.0, (0.01 - 0.04) / 0.04**2])  # ∂L/∂a, ∂L/∂b at the start
    sgd_lr = r.settings["SGD"]["lr"]
    np.testing.assert_allclose(r.weights["SGD"][1] - r.weights["SGD"][0], -sgd_lr * gradient, rtol=1e-4)
    # Adam's first step is lr·sign(g) in every coordinate: the same size in both layers...
    adam_lr = r.settings["Adam"]["lr"]
    np.testing.assert_allclose(r.step_size["Adam"][0], [adam_lr, adam_lr], rtol=1e-4)
    # ...so 100× larger relative to layer B's weight than to layer A's
    assert r.relative_step("Adam")[0, 1] == pytest.approx(100 * r.relative_step("Adam")[0, 0], rel=1e-3)


def test_lamb_moves_every_layer_by_lr_times_its_weight_norm(trajectories):
    r = trajectories
    lr = r.settings["LAMB"]["lr"]
    expected = lr * (1 - np.arange(r.steps) / r.steps)  # the linearly decaying lr of each step
    np.testing.assert_allclose(r.relative_step("LAMB"), np.stack([expected, expected], axis=1), rtol=2e-3, atol=1e-6)
    # the trust ratio of the first step is ‖w‖/‖u‖ with ‖u‖ ≈ 1 (Adam's first direction): ≈ each weight
    np.testing.assert_allclose(r.trust_ratio["LAMB"][0], [1.0, 0.01], rtol=1e-3)
    np.testing.assert_allclose(r.weight_norm["LAMB"][0], [1.0, 0.01], rtol=1e-6)
    assert r.trust_ratio["SGD"] is None and r.trust_ratio["LARS"] is not None


def test_layerwise_rules_reach_the_optimum_where_sgd_cannot(trajectories):
    r = trajectories
    assert r.relative_error("SGD")[-1, 0] > 0.5  # layer A has barely moved
    assert r.relative_error("SGD")[-1, 1] < 1e-3  # layer B is done
    for name in ("LAMB", "LARS"):
        assert r.relative_error(name)[-1].max() < 0.05, name


# ---------------------------------------------- MNIST experiments (3 to 6) through `lamb-edu reproduce`
def _mnist_or_skip():
    from lamb_edu import data

    try:
        return data.load_mnist(download=False)
    except Exception as error:  # the loader's message says where it looked
        pytest.skip(f"needs the MNIST files (set LAMB_EDU_DATA): {error}")


@pytest.fixture(scope="module")
def quick_reproduction(tmp_path_factory):
    """``lamb-edu reproduce all --quick`` once; the runs stay cached for the checks below."""
    _mnist_or_skip()
    from lamb_edu import cli

    out = tmp_path_factory.mktemp("figures")
    assert cli.main(["reproduce", "all", "--quick", "--out", str(out)]) == 0
    return out


@pytest.mark.slow
def test_reproduce_writes_every_figure_and_the_numbers(quick_reproduction):
    import json

    from lamb_edu import experiments

    results = json.loads((quick_reproduction / "results.json").read_text())
    assert set(results) == set(experiments.EXPERIMENTS)
    assert all(entry["mode"] == "quick" for entry in results.values())
    pngs = sorted(path.name for path in quick_reproduction.glob("*.png"))
    assert len(pngs) >= 12
    for name in pngs:
        assert (quick_reproduction / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(quick_reproduction.glob(".*.part"))  # no half-written file left behind
    assert results["debias"]["betas"]["0.9"]["factor_at_step_1"] == pytest.approx(10.0)
    assert results["article_code"]["settings"]["LAMB lr 0.02, wd 0.01"]["article"] == "about 98 % test accuracy"


@pytest.mark.slow
def test_trust_ratio_starts_below_one_and_is_the_may_rules_rms_ratio(quick_reproduction):
    from lamb_edu import experiments

    comparison = experiments.trust_ratio_histograms(quick=True)
    assert comparison.rules == ["may2019"] and "ff2245e" in comparison.rule_title
    for runs in comparison.runs.values():
        run = runs[0]
        assert run.log_steps[0] == 1
        assert np.all(run.trust_ratio[0] < 1.0)  # "r starts below 1": a natural warm-up
        # r1 and r2 are root mean squares: the logged norms over √(entries)
        sizes = np.sqrt(np.array(run.parameter_sizes, dtype=float))
        np.testing.assert_allclose(run.r1, run.weight_norm / sizes)
        np.testing.assert_allclose(run.r2, run.ratio_denominator / sizes)
        # every logged r is min(r1/r2, 10), recomputed from the logged statistics
        np.testing.assert_allclose(run.trust_ratio, np.minimum(run.r1 / run.r2, 10.0), rtol=1e-5)
    assert comparison.runs["Adam lr 0.01"][0].setting.use_trust_ratio is False


@pytest.mark.slow
def test_adam_and_lamb_both_learn_at_lr_001(quick_reproduction):
    from lamb_edu import experiments

    comparison = experiments.adam_vs_lamb(quick=True)
    for label, runs in comparison.runs.items():
        run = runs[0]
        assert run.divergence.status == "learned", label
        assert run.final_test_accuracy > 0.85, label
        assert experiments.smoothed_loss(run.step_loss)[-1] < 0.2 * run.step_loss[0]
        assert run.epoch_steps[-1] == run.step_loss.size == run.setting.epochs * math.ceil(12000 / 512)


@pytest.mark.slow
def test_large_learning_rate_runs(quick_reproduction):
    from lamb_edu import experiments

    comparison = experiments.learning_rate_and_weight_decay(quick=True)
    runs = {label: runs[0] for label, runs in comparison.runs.items()}
    adam = runs["Adam lr 0.1"]
    assert adam.divergence.status == "did not learn"
    # the May rule's Adam (torch's) ends near 21 % on the quick subset; the full runs end at 10 % (results.json)
    assert adam.final_test_accuracy < 0.25 and adam.divergence.lowest_loss > 1.0
    assert runs["LAMB lr 0.01"].divergence.status == "learned"

    def total_norm(run):
        return np.sqrt((run.weight_norm[-1] ** 2).sum())

    # at lr 0.1 LAMB's weights grow far more than at lr 0.01 (each step moves a layer by 10 % of its norm)
    assert total_norm(runs["LAMB lr 0.1"]) > 3 * total_norm(runs["LAMB lr 0.01"])
    for run in runs.values():  # the verdict's step is a real step of the run, with its reasons
        if run.divergence.status == "diverged":
            assert 1 <= run.divergence.step <= run.step_loss.size and run.divergence.reasons


@pytest.mark.slow
def test_article_code_setting_adam_fails_where_lamb_learns(quick_reproduction):
    from lamb_edu import experiments

    comparison = experiments.article_code_claim(quick=True)
    adam = comparison.runs["Adam baseline lr 0.02, wd 0.01"][0]
    lamb = comparison.runs["LAMB lr 0.02, wd 0.01"][0]
    assert lamb.final_test_accuracy > adam.final_test_accuracy + 0.3
    assert lamb.setting.bias_correction is False and lamb.setting.clamp_value == 10.0
    assert lamb.setting.batch_size == 512 and lamb.setting.weight_decay == 0.01
    assert comparison.rules == ["june2019"] and lamb.r1 is lamb.weight_norm  # norms under the June rule


def test_reproduce_rejects_bad_input(tmp_path, capsys):
    from lamb_edu import cli

    with pytest.raises(SystemExit) as exit_info:
        cli.main(["reproduce", "nosuch", "--out", str(tmp_path)])
    assert exit_info.value.code == 2
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert cli.main(["reproduce", "debias", "--out", str(blocker)]) == 2
    assert "not a directory" in capsys.readouterr().err


@pytest.mark.slow
def test_rerunning_one_experiment_is_byte_identical_and_keeps_the_others(quick_reproduction):
    import json

    from lamb_edu import cli

    before = {path.name: path.read_bytes() for path in quick_reproduction.glob("debias_*.png")}
    assert cli.main(["reproduce", "debias", "--quick", "--out", str(quick_reproduction)]) == 0
    after = {path.name: path.read_bytes() for path in quick_reproduction.glob("debias_*.png")}
    assert before == after and len(after) == 3
    results = json.loads((quick_reproduction / "results.json").read_text())
    assert "article_code" in results and "debias" in results  # merged, not replaced


def test_mnist_runs_are_deterministic():
    mnist = _mnist_or_skip()
    small = mnist._replace(test_images=mnist.test_images[:500], test_labels=mnist.test_labels[:500])
    setting = experiments.MnistSetting("check", lr=0.01, betas=(0.9, 0.99), epochs=1)
    first = experiments.train_mnist(setting, 7, small, train_size=2048, log_every=3)
    second = experiments.train_mnist(setting, 7, small, train_size=2048, log_every=3, cache=None)
    assert first is not second
    np.testing.assert_array_equal(first.step_loss, second.step_loss)
    np.testing.assert_array_equal(first.trust_ratio, second.trust_ratio)
    assert first.final_test_accuracy == second.final_test_accuracy


def test_a_trained_run_is_reused_only_for_the_same_data():
    mnist = _mnist_or_skip()
    small = mnist._replace(test_images=mnist.test_images[:300], test_labels=mnist.test_labels[:300])
    setting = experiments.MnistSetting("cache", lr=0.01, betas=(0.9, 0.99), epochs=1)
    first = experiments.train_mnist(setting, 5, small, train_size=1024)
    # an equal copy of the same examples is the same run: trained once
    copy = small._replace(train_images=small.train_images.copy(), test_labels=small.test_labels.copy())
    assert experiments.train_mnist(setting, 5, copy, train_size=1024) is first
    # other training examples, or other test examples, are another run
    shifted = small._replace(train_images=mnist.train_images[1024:2048])
    other = experiments.train_mnist(setting, 5, shifted, train_size=1024)
    assert other is not first and not np.array_equal(other.step_loss, first.step_loss)
    retested = small._replace(test_images=mnist.test_images[300:600], test_labels=mnist.test_labels[300:600])
    other = experiments.train_mnist(setting, 5, retested, train_size=1024)
    assert other is not first and other.test_loss[0] != first.test_loss[0]


def test_the_run_cache_is_bounded_and_forgets_the_least_recently_used():
    cache = experiments.RunCache(max_runs=2)
    cache.put(("a",), "run a")
    cache.put(("b",), "run b")
    assert cache.get(("a",)) == "run a"  # a is now the most recent
    cache.put(("c",), "run c")
    assert len(cache) == 2 and cache.get(("b",)) is None and cache.get(("a",)) == "run a"
    cache.clear()
    assert len(cache) == 0
    with pytest.raises(ValueError, match="max_runs"):
        experiments.RunCache(max_runs=0)
    assert experiments.RUN_CACHE.max_runs >= 18  # one full reproduce of experiments 3 to 5 fits


@pytest.mark.slow
def test_settings_name_their_rule_in_results_and_refuse_an_unknown_one(quick_reproduction):
    import json

    results = json.loads((quick_reproduction / "results.json").read_text())
    for name in ("trust_ratio", "adam_vs_lamb", "lr_and_weight_decay"):
        assert set(results[name]["rules"]) == {"may2019"}, name
        assert all(entry["rule"] == "may2019" for entry in results[name]["settings"].values())
    assert set(results["article_code"]["rules"]) == {"june2019"}
    with pytest.raises(ValueError, match="nosuch"):
        experiments.MnistSetting("x", lr=0.01, betas=(0.9, 0.99), rule="nosuch")
    settings = experiments.with_rule(experiments.ADAM_VS_LAMB, "june2019")
    assert [s.rule for s in settings] == ["june2019"] * 2
    assert [s.label for s in settings] == ["Adam baseline lr 0.01", "LAMB lr 0.01"]  # not Adam under the June rule
    assert isinstance(settings[1].make_optimizer([Tensor(np.ones(2, dtype=np.float32), requires_grad=True)]),
                      optim.LAMB)
    assert isinstance(experiments.ADAM_VS_LAMB[1].make_optimizer(
        [Tensor(np.ones(2, dtype=np.float32), requires_grad=True)]), optim.LAMB2019)


def test_run_experiment_gives_each_experiment_only_the_options_it_takes():
    from lamb_edu import plots

    result = experiments.run_experiment("debias", quick=True, data_dir="/no/such/dir", progress=True)
    assert result.betas == (0.5, 0.7, 0.9, 0.99)
    with pytest.raises(ValueError, match="nosuch"):
        experiments.run_experiment("nosuch")
    with pytest.raises(ValueError, match="nosuch"):
        plots.experiment_figures("nosuch", result)
    assert set(plots.FIGURES) == set(experiments.EXPERIMENTS)  # every experiment has its figures


# ---------------------------------------------- the network of each experiment, and scoring every few steps
def test_article_experiments_train_the_cnn_in_full_mode_and_the_mlp_in_quick_mode():
    from lamb_edu.experiments.article_mnist import default_network

    assert default_network(None, quick=False) == "cnn" and default_network(None, quick=True) == "mlp"
    assert default_network("mlp", quick=False) == "mlp"
    assert experiments.NETWORKS["mlp"] == "MLP 784-256-256-10"  # results.json of the MLP runs unchanged
    with pytest.raises(ValueError, match="nosuch"):
        experiments.mnist.build_network("nosuch", 0)


@pytest.mark.slow
def test_quick_results_name_their_network(quick_reproduction):
    import json

    results = json.loads((quick_reproduction / "results.json").read_text())
    for name in ("trust_ratio", "adam_vs_lamb", "lr_and_weight_decay", "article_code"):
        assert results[name]["network"] == "MLP 784-256-256-10", name


def test_a_cnn_run_records_the_articles_layer_names():
    mnist = _mnist_or_skip()
    small = mnist._replace(test_images=mnist.test_images[:200], test_labels=mnist.test_labels[:200])
    setting = experiments.MnistSetting("cnn", lr=0.02, betas=(0.9, 0.999), weight_decay=0.01, batch_size=100, epochs=1)
    run = experiments.train_mnist(setting, 0, small, train_size=200, log_every=1, network="cnn")
    assert run.network == "cnn" and run.step_loss.size == 2
    assert run.parameter_names == ["conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias",
                                   "fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]
    # the logged ‖w‖ at step 1 is the norm of the freshly initialised conv1 kernel: 500 values, uniform in ±1/√25
    assert 0.9 * math.sqrt(500 / 75) < run.weight_norm[0, 0] < 1.1 * math.sqrt(500 / 75)


def test_scoring_every_few_steps_equals_the_epoch_end_test_and_changes_nothing():
    mnist = _mnist_or_skip()
    small = mnist._replace(test_images=mnist.test_images[:400], test_labels=mnist.test_labels[:400])
    setting = experiments.MnistSetting("scored", lr=0.01, betas=(0.9, 0.99), batch_size=100, epochs=2)
    plain = experiments.train_mnist(setting, 3, small, train_size=600, log_every=2)
    scored = experiments.train_mnist(setting, 3, small, train_size=600, log_every=2, evaluate_every=6,
                                     evaluation_size=400)
    assert plain.evaluation_steps is None and scored is not plain
    np.testing.assert_array_equal(scored.step_loss, plain.step_loss)  # scoring does not touch the run
    # 6 steps per epoch: the scores at steps 6 and 12 are the epoch-end tests on the same 400 images
    np.testing.assert_array_equal(scored.evaluation_steps, [6, 12])
    np.testing.assert_array_equal(scored.evaluation_accuracy, plain.test_accuracy)
    summary = scored.summary()
    assert summary["evaluation_steps"] == [6, 12] and "evaluation_steps" not in plain.summary()
    with pytest.raises(ValueError, match="multiple of log_every"):
        experiments.train_mnist(setting, 3, small, train_size=600, log_every=4, evaluate_every=6)


@pytest.mark.slow
def test_lr_and_weight_decay_scores_every_20_steps(quick_reproduction):
    comparison = experiments.learning_rate_and_weight_decay(quick=True)
    run = comparison.runs["LAMB lr 0.01"][0]
    np.testing.assert_array_equal(run.evaluation_steps, np.arange(20, run.step_loss.size + 1, 20))
    assert run.evaluation_accuracy[0] > 0.5 and run.evaluation_accuracy[-1] > 0.85  # it learns early


# ---------------------------------------------- 2b. the six rules' successors on two vector layers
def _independent_vector_run(rule, lr, steps, size=50):
    """SGD, Adam or LAMB (bias-corrected, eps as each default, clamp 10) in float64 NumPy on the vector problem."""
    problem = experiments.vector_layers_problem(size)
    errors = []
    state = {}
    weights = {layer: problem["starts"][layer].astype(np.float64) for layer in problem["optima"]}
    for step in range(steps + 1):
        optima = problem["optima"]
        errors.append([np.linalg.norm(weights[layer] - optima[layer]) / np.linalg.norm(optima[layer])
                       for layer in weights])
        if step == steps:
            break
        rate = lr * (1 - step / steps)
        for layer, w in weights.items():
            target = problem["optima"][layer]
            g = problem["curvature"] * (w - target) / target**2
            if rule == "SGD":
                weights[layer] = w - rate * g
                continue
            m, v = state.get(layer, (np.zeros(size), np.zeros(size)))
            m, v = 0.9 * m + 0.1 * g, 0.999 * v + 0.001 * g * g
            state[layer] = (m, v)
            t = step + 1
            u = (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.999**t)) + (1e-8 if rule == "Adam" else 1e-6))
            ratio = min(np.linalg.norm(w), 10.0) / np.linalg.norm(u) if rule == "LAMB" else 1.0
            weights[layer] = w - rate * ratio * u
    return np.array(errors)


def test_vector_layers_comparison_matches_an_independent_computation():
    runs = experiments.vector_layers_comparison(steps=60)
    assert list(runs) == ["SGD", "Adam", "LAMB without trust ratio", "LAMB", "LARS"]
    for name, rule in (("SGD", "SGD"), ("Adam", "Adam"), ("LAMB", "LAMB")):
        expected = _independent_vector_run(rule, runs[name]["settings"]["lr"], 60)
        np.testing.assert_allclose(runs[name]["relative_error"], expected, rtol=2e-3, atol=1e-5, err_msg=name)
    # LAMB moves each layer by lr·φ(‖w‖): the step norms follow the rule, and only LAMB records a trust ratio
    lamb = runs["LAMB"]
    lr = 0.05 * (1 - np.arange(60) / 60)
    np.testing.assert_allclose(lamb["step_norm"], lr[:, None] * np.minimum(lamb["weight_norm"], 10), rtol=1e-3)
    assert np.isnan(runs["SGD"]["trust_ratio"]).all()


def test_on_vector_layers_the_layerwise_rules_bring_both_layers_near_their_optimum():
    full = experiments.vector_layers_comparison()
    assert full["LARS"]["relative_error"][-1].max() < full["LAMB"]["relative_error"][-1].max() < 0.01
    runs = experiments.vector_layers_comparison(quick=True)
    final = {name: run["relative_error"][-1] for name, run in runs.items()}
    assert final["SGD"][0] > 0.7  # layer A does not move under the lr layer B allows
    assert final["Adam"][0] > 0.1 and final["Adam"][1] < 0.01  # Adam: B done, A far behind
    assert final["LAMB"].max() < 0.01  # LAMB: both layers within 1 %
    np.testing.assert_allclose(final["LAMB without trust ratio"], final["Adam"], rtol=1e-3)
