"""The tuning protocol: the quasi-random draw, the selection on validation only, the report seeds."""

import math

import numpy as np
import pytest

from lamb_edu.experiments.tuning import (
    PRIMES,
    Dimension,
    SearchSpace,
    halton,
    tune,
    validation_split,
    warmup_steps,
)


def _van_der_corput(index, base):
    # the textbook radical inverse, digit by digit (independent of the module's vectorised one)
    value, scale = 0.0, 1.0
    while index:
        scale /= base
        index, digit = divmod(index, base)
        value += digit * scale
    return value


def test_halton_is_seeded_and_deterministic():
    first, again, other = halton(20, 4, seed=3), halton(20, 4, seed=3), halton(20, 4, seed=4)
    assert np.array_equal(first, again)
    assert not np.allclose(first, other)
    assert first.shape == (20, 4) and first.min() >= 0 and first.max() < 1


@pytest.mark.parametrize("dimension,power", [(0, 6), (1, 4), (2, 3), (3, 2), (5, 2)])
def test_halton_has_one_point_per_stratum(dimension, power):
    # the first b^k points of base b fall one in each interval [i / b^k, (i + 1) / b^k), scrambled or not
    base = PRIMES[dimension]
    count = base**power
    column = halton(count, dimension + 1, seed=11)[:, dimension]
    strata = np.floor(column * count).astype(int)
    assert sorted(strata) == list(range(count))


def test_halton_scrambling_keeps_the_unscrambled_strata_structure():
    # scrambling permutes digits: two points share their first digit in base 3 scrambled iff they do unscrambled
    scrambled = halton(27, 2, seed=5)[:, 1]
    plain = np.array([_van_der_corput(i, 3) for i in range(27)])
    assert np.array_equal(np.floor(plain * 3)[:, None] == np.floor(plain * 3)[None, :],
                          np.floor(scrambled * 3)[:, None] == np.floor(scrambled * 3)[None, :])


def test_halton_covers_the_square_better_than_its_worst_case():
    # 64 points in 2-D: every cell of an 8 × 8 grid of the unit square holds at most 3 points, and
    # at least 40 of the 64 cells are hit (64 independent uniform draws hit about 40.5 on average)
    points = halton(64, 2, seed=0)
    cells = np.floor(points * 8).astype(int)
    counts = np.zeros((8, 8), int)
    np.add.at(counts, (cells[:, 0], cells[:, 1]), 1)
    assert counts.max() <= 3 and (counts > 0).sum() >= 44


def test_halton_refuses_bad_arguments():
    with pytest.raises(ValueError, match="dimensions"):
        halton(4, 0)
    with pytest.raises(ValueError, match="dimensions"):
        halton(4, len(PRIMES) + 1)
    with pytest.raises(ValueError, match="count"):
        halton(-1, 2)


def test_search_space_draw_maps_log_and_linear_ranges_and_keeps_fixed_values():
    space = SearchSpace((Dimension("lr", 1e-4, 1.0), Dimension("share", 0.0, 0.5, "linear")), fixed={"eps": 1e-6})
    draws = space.draw(32, seed=2)
    assert draws == space.draw(32, seed=2)
    lrs = np.array([d["lr"] for d in draws])
    assert all(d["eps"] == 1e-6 for d in draws)
    assert lrs.min() >= 1e-4 and lrs.max() <= 1.0
    # log-uniform: each decade of the 4 gets a quarter of the 32 points (base-2 strata of width 1/32)
    assert np.histogram(np.log10(lrs), bins=[-4, -3, -2, -1, 0])[0].tolist() == [8, 8, 8, 8]
    shares = np.array([d["share"] for d in draws])
    assert 0 <= shares.min() and shares.max() <= 0.5 and np.ptp(shares) > 0.4
    assert SearchSpace.from_description(space.describe()) == space


def test_search_space_refuses_bad_dimensions():
    with pytest.raises(ValueError, match="'lr'"):
        Dimension("lr", 0.0, 1.0)  # log scale needs low > 0
    with pytest.raises(ValueError, match="'wd'"):
        Dimension("wd", 1.0, 0.5, "linear")
    with pytest.raises(ValueError, match="distinct"):
        SearchSpace((Dimension("lr", 0.1, 1.0), Dimension("lr", 0.1, 1.0)))
    with pytest.raises(ValueError, match="distinct"):
        SearchSpace((Dimension("lr", 0.1, 1.0),), fixed={"lr": 0.5})


class _Run:
    """A fake training run: its validation and test accuracies are set apart on purpose."""

    def __init__(self, settings, seed):
        self.settings, self.seed = settings, seed
        self.validation_accuracy = -abs(math.log10(settings["lr"]) + 2)  # best at lr 0.01
        self.test_accuracy = -self.validation_accuracy  # the test set prefers the opposite


def test_tune_selects_on_the_score_only_and_reports_on_other_seeds():
    space = SearchSpace((Dimension("lr", 1e-4, 1.0), Dimension("one_minus_beta1", 0.01, 0.5)))
    calls = []

    def train(settings, seed):
        calls.append((settings["lr"], seed))
        return _Run(settings, seed)

    tuning = tune(train, space, 16, score=lambda run: run.validation_accuracy, selection_seed=0, report_seeds=(1, 2))
    lrs = [trial.settings["lr"] for trial in tuning.trials]
    closest = min(range(16), key=lambda i: abs(math.log10(lrs[i]) + 2))
    assert tuning.best_index == closest  # the validation's choice, though the test set's is the opposite
    assert max(range(16), key=lambda i: tuning.trials[i].result.test_accuracy) != closest
    assert [seed for _, seed in calls] == [0] * 16 + [1, 2]
    assert [run.seed for run in tuning.reports] == [1, 2]
    assert all(run.settings == tuning.best.settings for run in tuning.reports)
    summary = tuning.summary()
    assert summary["trials"] == 16 and summary["selection_seed"] == 0 and summary["report_seeds"] == [1, 2]
    assert summary["best"]["settings"] == tuning.best.settings and summary["best"]["index"] == closest
    assert summary["space"]["dimensions"][0] == {"name": "lr", "low": 1e-4, "high": 1.0, "scale": "log"}
    assert len(summary["scores"]) == 16


def test_tune_counts_a_nan_score_as_the_worst_and_breaks_ties_by_order():
    space = SearchSpace((Dimension("lr", 0.1, 1.0),))
    scores = iter([math.nan, 0.5, 0.5, 0.2])
    tuning = tune(lambda settings, seed: next(scores, 0.0), space, 4, score=lambda value: value, report_seeds=())
    assert tuning.best_index == 1 and tuning.trials[0].score == -math.inf


def test_tune_refuses_report_seeds_that_include_the_selection_seed_before_training():
    calls = []
    space = SearchSpace((Dimension("lr", 0.1, 1.0),))
    with pytest.raises(ValueError, match="selection seed 0"):
        tune(lambda s, seed: calls.append(seed), space, 4, score=float, report_seeds=(0, 1))
    with pytest.raises(ValueError, match="trials"):
        tune(lambda s, seed: calls.append(seed), space, 0, score=float)
    assert calls == []


def test_validation_split_is_fixed_by_its_seed_and_disjoint():
    train, validation = validation_split(1000, 100, seed=7)
    again = validation_split(1000, 100, seed=7)
    assert np.array_equal(train, again[0]) and np.array_equal(validation, again[1])
    assert len(validation) == 100 and len(train) == 900
    assert not set(train.tolist()) & set(validation.tolist())
    assert sorted(train.tolist() + validation.tolist()) == list(range(1000))
    assert not np.array_equal(validation, validation_split(1000, 100, seed=8)[1])
    assert validation.max() - validation.min() > 500  # spread over the set, not its tail
    with pytest.raises(ValueError, match="validation_size"):
        validation_split(10, 10)


def test_warmup_steps_share_floor_and_cap():
    assert warmup_steps(3840, 384, 0.1) == 384
    assert warmup_steps(30, 3, 0.05, floor_epochs=2) == 6  # the floor wins: 2 epochs of 3 steps
    assert warmup_steps(30, 3, 1.0) == 29  # at least one step after the warm-up
    with pytest.raises(ValueError, match="share"):
        warmup_steps(30, 3, 1.5)
