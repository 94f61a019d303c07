import numpy as np
import pytest
import torch

from harkit.evaluation.cost import count_macs, measure_latency
from harkit.evaluation.metrics import classification_metrics, macro_f1


def test_metrics_against_a_hand_computed_case():
    y_true = np.array([0, 0, 1, 1, 2, 2])
    y_pred = np.array([0, 1, 1, 1, 2, 0])
    m = classification_metrics(y_true, y_pred, ["a", "b", "c"])
    assert m["accuracy"] == pytest.approx(4 / 6)
    # per class: a P=1/2 R=1/2 F1=1/2; b P=2/3 R=1 F1=4/5; c P=1 R=1/2 F1=2/3
    assert [r["precision"] for r in m["per_class"]] == pytest.approx([0.5, 2 / 3, 1.0])
    assert [r["recall"] for r in m["per_class"]] == pytest.approx([0.5, 1.0, 0.5])
    assert [r["f1"] for r in m["per_class"]] == pytest.approx([0.5, 0.8, 2 / 3])
    assert m["macro_precision"] == pytest.approx((0.5 + 2 / 3 + 1) / 3)
    assert m["macro_recall"] == pytest.approx(2 / 3)
    assert m["macro_f1"] == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)
    assert m["weighted_f1"] == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)
    assert m["confusion"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    assert m["confusion_normalised"][0] == [0.5, 0.5, 0.0]
    assert [r["proportion"] for r in m["per_class"]] == pytest.approx([1 / 3] * 3)


def test_weighted_f1_weights_by_support():
    y_true = np.array([0, 0, 0, 1])
    y_pred = np.array([0, 0, 0, 0])
    m = classification_metrics(y_true, y_pred, ["a", "b"])
    f1_a = 2 * 0.75 * 1 / 1.75
    assert m["weighted_f1"] == pytest.approx(0.75 * f1_a)
    assert m["macro_f1"] == pytest.approx(f1_a / 2)


def test_a_class_absent_from_a_fold_is_reported_but_not_averaged():
    y_true = np.array([0, 1, 1])
    y_pred = np.array([0, 1, 1])
    m = classification_metrics(y_true, y_pred, ["a", "b", "c"])
    assert m["macro_f1"] == 1.0 and macro_f1(y_true, y_pred) == 1.0
    assert m["per_class"][2] == {
        "class": "c",
        "precision": 0.0,
        "recall": 0.0,
        "f1": 0.0,
        "support": 0,
        "proportion": 0.0,
    }
    assert len(m["confusion"]) == 3


def test_macs_of_a_known_layer_and_latency_fields():
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(10 * 3, 4))
    assert count_macs(model, 10, 3) == 30 * 4
    lstm_model = torch.nn.LSTM(3, 8, batch_first=True)

    class Wrapper(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = lstm_model

        def forward(self, x):
            return self.lstm(x)[0]

    assert count_macs(Wrapper(), 10, 3) == 4 * 8 * (3 + 8) * 10
    latency = measure_latency(model, 10, 3, batch_sizes=(1, 16), repeats=5, warmup=1)
    assert latency["batch_16"]["per_window_ms"] == pytest.approx(latency["batch_16"]["median_ms"] / 16)
    assert latency["batch_1"]["p95_ms"] >= latency["batch_1"]["median_ms"]
    assert latency["device"].startswith("cpu") and latency["threads"] >= 1
