"""MiniRocket: the transform against a loop-by-loop copy of the reference, the ridge head, and harkit's train."""

import csv
import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from harkit import HarkitError
from harkit.models import create_model
from harkit.models.minirocket import KERNEL_INDICES, fit_dilations, kernel_weights, quantiles
from tests.conftest import SHARED_HAPT


def reference_transform(x: np.ndarray, model) -> np.ndarray:
    """The authors' `MiniRocketMultivariate.transform`, loop for loop (A = -X, G = 3X, alternating padding)."""
    n, channels, length = x.shape
    masks = model.channel_mask.numpy()
    biases = model.biases.numpy()
    features = np.zeros((n, model.num_features))
    for example in range(n):
        start = 0
        for d_index, (dilation, count) in enumerate(zip(model.dilations, model.features_per_dilation, strict=True)):
            padding = ((9 - 1) * dilation) // 2
            a, g = -x[example], 3 * x[example]
            c_alpha = a.copy()
            c_gamma = np.zeros((9, channels, length))
            c_gamma[9 // 2] = g
            end = length - padding
            for gamma_index in range(9 // 2):
                c_alpha[:, -end:] += a[:, :end]
                c_gamma[gamma_index, :, -end:] = g[:, :end]
                end += dilation
            start_ = dilation
            for gamma_index in range(9 // 2 + 1, 9):
                c_alpha[:, :-start_] += a[:, start_:]
                c_gamma[gamma_index, :, :-start_] = g[:, start_:]
                start_ += dilation
            for k_index, (i0, i1, i2) in enumerate(KERNEL_INDICES):
                chosen = masks[d_index, k_index] > 0
                c = (c_alpha + c_gamma[i0] + c_gamma[i1] + c_gamma[i2])[chosen].sum(0)
                if (d_index + k_index) % 2 == 1:
                    c = c[padding:-padding]
                for f in range(count):
                    features[example, start + f] = (c > biases[start + f]).mean()
                start += count
    return features


def test_the_84_kernels():
    weights = kernel_weights()
    assert weights.shape == (84, 9)
    assert len({tuple(w.tolist()) for w in weights}) == 84
    assert ((weights == 2).sum(1) == 3).all() and ((weights == -1).sum(1) == 6).all()
    assert (weights.sum(1) == 0).all()


def test_dilations_and_quantiles_as_in_the_reference():
    dilations, counts = fit_dilations(128, 10_000, 32)
    assert dilations[0] == 1 and dilations[-1] == 15 and (9 - 1) * dilations[-1] <= 128 - 1
    assert sum(counts) == 10_000 // 84 == 119
    assert np.allclose(quantiles(3), [0.6180340, 0.2360680, 0.8541020])


def test_transform_matches_the_reference_loops():
    torch.manual_seed(0)
    model = create_model("minirocket", 40, 3, 2, num_features=84 * 6).eval()
    x = torch.randn(5, 40, 3)
    model.fit_biases(x, torch.Generator().manual_seed(0))
    assert model.biases.abs().sum() > 0
    expected = reference_transform(x.double().numpy().transpose(0, 2, 1), model)
    got = model.transform(x).numpy()
    # PPV of up to 40 positions: any disagreement on one position is off by at least 1/40
    assert np.abs(got - expected).max() < 1e-6
    # both paddings are used: padded features can reach values the valid-only ones cannot and vice versa
    assert got.shape == (5, 84 * 6)


def test_channel_subsets_drawn_like_the_reference():
    torch.manual_seed(0)
    model = create_model("minirocket", 128, 6, 4)
    sizes = model.channel_mask.sum(-1).flatten()
    # 2 ** U(0, log2(7)) truncated: between 1 and 6 channels, single channels the most frequent
    assert sizes.min() == 1 and sizes.max() <= 6
    assert (sizes == 1).float().mean() > (sizes == 6).float().mean()
    one_channel = create_model("minirocket", 128, 1, 4)
    assert (one_channel.channel_mask == 1).all()


def separable(n: int, window: int, channels: int, classes: int, seed: int = 0):
    """Classes that differ in frequency: an easy problem for convolutions with dilations."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % classes
    t = torch.arange(window).float()
    x = torch.sin(t[None, :, None] * (0.2 + 0.4 * y[:, None, None]) + torch.rand(n, 1, channels, generator=g) * 6)
    return x + 0.3 * torch.randn(n, window, channels, generator=g), y


def test_fit_learns_and_the_head_is_one_linear_layer():
    x, y = separable(60, 64, 2, 3)
    torch.manual_seed(0)
    model = create_model("minirocket", 64, 2, 4, num_features=840)  # class 3 never seen in training
    info = model.fit(x[:30], y[:30])
    assert info["alpha"] in np.logspace(-3, 3, 10)
    assert bool(model.fitted)
    logits = model.eval()(x[30:])
    assert (logits.argmax(1) == y[30:]).float().mean() == 1.0
    assert (logits[:, 3] < logits[:, :3].min(1).values - 5).all()  # an absent class never wins


@pytest.mark.parametrize("classes", [2, 4])
def test_probabilities_are_calibrated_on_left_out_windows_and_predictions_unchanged(classes):
    """A softmax of raw ridge scores is nearly flat (top probability about 0.5 when the model is right 9 times in
    10); the head's temperature, fitted on leave-one-out scores, makes confidence match accuracy."""
    from sklearn.linear_model import RidgeClassifierCV
    from sklearn.preprocessing import StandardScaler

    x, y = separable(400, 64, 2, classes, seed=1)
    x = x + 3 * torch.randn(x.shape, generator=torch.Generator().manual_seed(2))  # a problem with errors
    torch.manual_seed(0)
    model = create_model("minirocket", 64, 2, classes, num_features=840)
    model.fit(x[:200], y[:200])
    probabilities = torch.softmax(model.eval()(x[200:]), 1)
    accuracy = (probabilities.argmax(1) == y[200:]).float().mean().item()
    assert 0.45 < accuracy < 0.9  # neither chance nor perfect, so calibration shows
    assert abs(probabilities.max(1).values.mean().item() - accuracy) < 0.1  # 0.16-0.17 uncalibrated

    features = model.transform(x).numpy().astype(np.float64)
    scaler = StandardScaler(with_mean=False).fit(features[:200])
    ridge = RidgeClassifierCV(alphas=np.logspace(-3, 3, 10)).fit(scaler.transform(features[:200]), y[:200].numpy())
    assert (probabilities.argmax(1).numpy() == ridge.predict(scaler.transform(features[200:]))).all()


def test_two_classes_fit_both_signs():
    x, y = separable(40, 48, 1, 2)
    torch.manual_seed(0)
    model = create_model("minirocket", 48, 1, 2, num_features=168).eval()
    model.fit(x[:20], y[:20])
    assert (model(x[20:]).argmax(1) == y[20:]).float().mean() == 1.0


def test_fit_needs_two_classes_and_windows_of_nine_samples():
    model = create_model("minirocket", 32, 2, 2, num_features=168)
    with pytest.raises(HarkitError, match="at least 2 classes"):
        model.fit(torch.randn(6, 32, 2), torch.zeros(6, dtype=torch.long))
    with pytest.raises(HarkitError, match="at least 9 samples"):
        create_model("minirocket", 8, 2, 2)


@pytest.mark.skipif(not SHARED_HAPT.is_file(), reason="needs the real HAPT archive")
def test_accuracy_within_two_points_of_aeon_on_real_hapt(tmp_path):
    """harkit's MiniRocket vs aeon's MiniRocketClassifier (MiniRocket + RidgeClassifierCV) on the same windows."""
    aeon = pytest.importorskip("aeon.classification.convolution_based")
    from harkit.datasets import PrepareConfig, prepare

    prepared = prepare("hapt", PrepareConfig(), data_dir=SHARED_HAPT.parent)
    rng = np.random.default_rng(0)
    train_rows = np.sort(rng.choice(len(prepared.train.y), 800, replace=False))
    test_rows = np.sort(rng.choice(len(prepared.test.y), 1500, replace=False))
    x_train = np.array(prepared.train.x[train_rows], np.float32)
    y_train = np.array(prepared.train.y[train_rows])
    x_test = np.array(prepared.test.x[test_rows], np.float32)
    y_test = np.array(prepared.test.y[test_rows])

    torch.manual_seed(0)
    model = create_model("minirocket", 128, 6, 6, num_features=2000).eval()
    model.fit(torch.from_numpy(x_train), torch.from_numpy(y_train))
    ours = float((model(torch.from_numpy(x_test)).argmax(1).numpy() == y_test).mean())

    reference = aeon.MiniRocketClassifier(n_kernels=2000, random_state=0)
    reference.fit(x_train.transpose(0, 2, 1), y_train)
    theirs = float((reference.predict(x_test.transpose(0, 2, 1)) == y_test).mean())
    assert theirs > 0.85  # the comparison means something only if the reference works
    assert abs(ours - theirs) <= 0.02, (ours, theirs)


def test_harkit_train_fits_once_and_writes_a_full_run(tiny_config, tmp_path):
    from harkit.export import export_onnx
    from harkit.runs import Run
    from harkit.training.engine import train

    config = replace(tiny_config, model="minirocket", model_options={"num_features": 840}, epochs=5)
    run = train(config, tmp_path / "run", progress=False)
    with open(run / "history.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 1 and rows[0]["epoch"] == "1"  # one closed-form fit, no gradient epochs
    assert float(rows[0]["train_accuracy"]) > 0.9
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["model"] == "minirocket" and metrics["epochs_run"] == 1
    model = Run(run).model()
    assert bool(model.fitted) and model.biases.abs().sum() > 0  # the fitted state survives the checkpoint
    result = export_onnx(run, check_windows=9)
    assert result["max_abs_difference"] < 1e-3

    # predict reads a recording with the run's channels: a plain forward, through ONNX or PyTorch
    from harkit.predict import predict_recording

    info = Run(run).info
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(200, len(info["channels"]))), columns=info["channels"])
    frame.insert(0, "timestamp", np.arange(200) / info["sampling_rate"])
    frame.to_csv(tmp_path / "recording.csv", index=False)
    predicted = predict_recording(run, tmp_path / "recording.csv", plot=False)
    assert len(predicted["samples"]) == 200
    assert set(predicted["timeline"]["label"]) <= set(info["classes"])
