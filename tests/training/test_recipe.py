import math
from itertools import pairwise

import numpy as np
import pytest
import torch

from harkit import HarkitError
from harkit.training import recipe
from harkit.training.engine import TrainConfig

CLASSES = ["a", "b", "c", "d"]


def labels(n: int, classes: int = 4) -> np.ndarray:
    return np.arange(n) % classes


def resolve(n_train: int = 1000, n_val: int = 100, **fields):
    return recipe.resolve(TrainConfig(dataset="d", model="sann", **fields), labels(n_train), n_val, CLASSES)


@pytest.mark.parametrize(
    ("n_train", "batch"), [(5, 5), (32, 8), (100, 8), (200, 16), (500, 32), (1000, 64), (2048, 128), (7000, 128)]
)
def test_batch_size_follows_the_training_windows(n_train, batch):
    assert recipe.default_batch_size(n_train) == batch


def test_small_data_gets_enough_updates_and_large_data_full_batches():
    small = resolve(32)  # the case: 32 training windows used to make one update per epoch at batch 128
    assert small.batch_size == 8 and small.steps_per_epoch == 4
    assert small.epochs == recipe.MAX_EPOCHS and small.total_steps == 1200
    large = resolve(7000)
    assert large.batch_size == 128 and large.steps_per_epoch == 55
    assert large.epochs == math.ceil(recipe.MIN_STEPS / 55) and large.total_steps >= recipe.MIN_STEPS
    assert resolve(100_000).epochs == recipe.MIN_EPOCHS
    assert large.patience is None and small.patience is None  # the cosine schedule runs to its end
    assert resolve(7000, schedule="step").patience == 10 and resolve(32, schedule="constant").patience == 75
    assert large.schedule == "cosine" and large.warmup_steps == round(0.05 * large.total_steps)
    assert large.bn_recalibrate and large.label_smoothing == 0.1
    assert large.keep == "last" and small.keep == "best"  # validation selects only on small data
    assert resolve(7000, keep="best").keep == "best" and resolve(7000, recipe="article").keep == "best"
    assert resolve(7000, schedule="step").keep == "best"
    assert set(large.auto) == set(recipe.RESOLVED_FIELDS)


def test_explicit_values_win_over_the_recipe():
    resolved = resolve(32, batch_size=32, epochs=7, lr=0.01, label_smoothing=0.0, patience=None, schedule="step")
    assert (resolved.batch_size, resolved.epochs, resolved.lr, resolved.label_smoothing) == (32, 7, 0.01, 0.0)
    assert resolved.patience is None and resolved.schedule == "step" and resolved.steps_per_epoch == 1
    assert {"batch_size", "epochs", "lr", "label_smoothing", "patience", "schedule"}.isdisjoint(resolved.auto)
    assert resolve(32, patience=0).patience is None and resolve(32, patience=4).patience == 4
    # the epochs follow an explicit batch size
    assert resolve(1000, batch_size=16).epochs == math.ceil(recipe.MIN_STEPS / 63)


def test_article_recipe_is_the_articles():
    article = resolve(32, recipe="article")
    assert (article.batch_size, article.epochs, article.lr, article.weight_decay) == (128, 30, 5e-4, 1e-3)
    assert article.schedule == "step" and article.warmup_steps == 0 and article.label_smoothing == 0.0
    assert article.patience == 10 and not article.bn_recalibrate
    # StepLR: every epochs // 3 epochs, gamma 0.5 (the factor is per optimiser step)
    factor = recipe.lr_factor(resolve(640, recipe="article"), None, 0.5)  # 5 steps per epoch
    assert [factor(epoch * 5) for epoch in (0, 9, 10, 19, 20, 29)] == [1, 1, 0.5, 0.5, 0.25, 0.25]
    assert factor(49) == 1 and factor(50) == 0.5


def test_cosine_warms_up_then_decays_to_zero():
    resolved = resolve(1000)
    factor = recipe.lr_factor(resolved, None, 0.5)
    warm = resolved.warmup_steps
    values = [factor(step) for step in range(resolved.total_steps)]
    assert values[0] == pytest.approx(1 / warm) and values[warm - 1] == pytest.approx(1.0)
    assert all(a <= b for a, b in pairwise(values[:warm]))
    assert all(a >= b for a, b in pairwise(values[warm:]))
    assert values[-1] < 1e-4


def test_unknown_recipe_schedule_and_empty_training_part_are_errors():
    with pytest.raises(HarkitError, match="unknown recipe 'paper'"):
        resolve(recipe="paper")
    with pytest.raises(HarkitError, match="unknown schedule 'linear'"):
        resolve(schedule="linear")
    with pytest.raises(HarkitError, match="training part holds no windows"):
        resolve(0)


def test_warnings_about_data_too_small_to_trust():
    config = TrainConfig(dataset="d", model="sann", batch_size=64)
    warnings = recipe.resolve(config, np.array([0, 0, 0, 1, 1, 1] * 4 + [1] * 10), 0, CLASSES).warnings
    text = "\n".join(warnings)
    assert "no training windows for c, d" in text
    assert "fewer than 10 training windows for a (12)" not in text and "b (" not in text
    assert "validation part is empty" in text
    assert "batch size 64 is larger than the 34 training windows" in text
    few = recipe.resolve(TrainConfig(dataset="d", model="sann"), labels(20), 5, CLASSES).warnings
    assert any("fewer than 10 training windows for a (5), b (5), c (5), d (5)" in w for w in few)
    single = recipe.resolve(TrainConfig(dataset="d", model="sann"), np.zeros(40, int), 5, CLASSES).warnings
    assert any("single class (a)" in w for w in single)
    assert recipe.resolve(TrainConfig(dataset="d", model="sann"), labels(400), 40, CLASSES).warnings == []


def test_batch_norm_recalibration_gives_the_exact_statistics_of_the_training_windows():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    x = torch.randn(64, 3) * 3 + 5
    model.train()
    model(torch.zeros(8, 3))  # running statistics now far from the data's
    recipe.recalibrate_batch_norm(model, x, batch_size=16)
    norm = model[1]
    features = model[0](x).detach()
    assert torch.allclose(norm.running_mean, features.mean(0), atol=1e-5)
    # the mean of the unbiased variances of the four batches
    variances = torch.stack([features[i : i + 16].var(0) for i in range(0, 64, 16)]).mean(0)
    assert torch.allclose(norm.running_var, variances, rtol=1e-4)
    assert norm.momentum == 0.1 and model.training and norm.num_batches_tracked == 4
    assert recipe.has_batch_norm(model) and not recipe.has_batch_norm(torch.nn.Linear(2, 2))


def test_augmentation_follows_the_recipe_and_never_rotates_without_devices(monkeypatch):
    from harkit.training.augment import AugmentConfig

    assert resolve().augment == recipe.HARKIT["augment"] and "augment" in resolve().auto
    monkeypatch.setitem(recipe.HARKIT, "augment", AugmentConfig(rotation=30, jitter=0.05))
    config = TrainConfig(dataset="d", model="sann")
    assert recipe.resolve(config, labels(100), 10, CLASSES).augment == AugmentConfig(rotation=30, jitter=0.05)
    no_devices = recipe.resolve(config, labels(100), 10, CLASSES, rotatable=False).augment
    assert no_devices == AugmentConfig(jitter=0.05)
    explicit = TrainConfig(dataset="d", model="sann", augment=AugmentConfig())
    assert not recipe.resolve(explicit, labels(100), 10, CLASSES).augment.enabled
    assert resolve(recipe="article").augment == AugmentConfig()


def test_validation_is_held_out_only_where_the_run_selects_on_it():
    def selects(n_windows, closed_form=False, **fields):
        config = TrainConfig(dataset="d", model="sann", **fields)
        return recipe.selects_on_validation(config, n_windows, closed_form)

    big, small = recipe.KEEP_LAST_WINDOWS, recipe.KEEP_LAST_WINDOWS - 1
    assert not selects(big)  # the final epoch of the cosine is kept, nothing stops early
    assert selects(small)  # the best epoch on validation is kept
    assert not selects(small, closed_form=True)  # MiniRocket's fit chooses nothing
    assert not selects(small, keep="last")
    assert selects(big, keep="best")
    assert selects(big, patience=5)  # early stopping watches validation
    assert selects(big, schedule="step")  # a step schedule keeps the best epoch and stops early
    assert selects(big, recipe="article")


def test_auto_model_is_minirocket_on_small_data_and_sann_on_large():
    def chosen(n_windows, **fields):
        return recipe.auto_model(TrainConfig(dataset="d", model="auto", **fields), n_windows)[0]

    line = recipe.AUTO_MODEL_WINDOWS
    assert chosen(40) == chosen(line - 1) == "minirocket"
    assert chosen(line) == chosen(100_000) == "sann"
    assert chosen(40, recipe="article") == "sann"  # the article's recipe trains the article's model


def test_a_closed_form_fit_is_not_warned_about_an_empty_validation_part():
    config = TrainConfig(dataset="d", model="minirocket")
    selecting = recipe.resolve(config, labels(40), 0, CLASSES)  # a gradient model would keep its best epoch
    assert any("validation part is empty" in warning for warning in selecting.warnings)
    fitted = recipe.resolve(config, labels(40), 0, CLASSES, closed_form=True)  # MiniRocket selects nothing
    assert not any("validation part is empty" in warning for warning in fitted.warnings)
