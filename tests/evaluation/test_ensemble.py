"""Several runs scored as one model: mean probabilities on the same test windows."""

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from harkit import HarkitError
from harkit.evaluation.ensemble import ensemble_probabilities, evaluate_ensemble
from harkit.runs import Run
from harkit.training.engine import train


@pytest.fixture
def two_runs(tiny_config, tmp_path):
    config, root = tiny_config, tmp_path / "runs"
    # Different seeds draw different validation subjects, so each run normalises with its own statistics.
    a = train(replace(config, epochs=2), root / "a", progress=False)
    b = train(replace(config, epochs=2, seed=1, model="cnn"), root / "b", progress=False)
    return a, b


def test_members_score_as_when_evaluated_alone_and_the_mean_is_of_probabilities(two_runs, tmp_path):
    a, b = two_runs
    metrics = evaluate_ensemble([a, b], tmp_path / "ens", plots=False)
    for member, run in zip(metrics["members"], (a, b), strict=True):
        alone = json.loads((run / "metrics.json").read_text())
        assert member["accuracy"] == pytest.approx(alone["accuracy"]) and member["model"] == alone["model"]
    assert Run(a).dataset().meta["mean"] != Run(b).dataset().meta["mean"]
    probabilities, labels, _, _ = ensemble_probabilities([a, b])
    by_hand = []
    for run in (Run(a), Run(b)):
        x = torch.from_numpy(np.array(run.dataset().test.x))
        with torch.no_grad():
            by_hand.append(torch.softmax(run.model()(x), 1).numpy())
    np.testing.assert_allclose(probabilities, np.mean(by_hand, 0), atol=1e-5)
    assert metrics["accuracy"] == pytest.approx(float((np.mean(by_hand, 0).argmax(1) == labels).mean()))
    written = json.loads((tmp_path / "ens" / "metrics.json").read_text())
    assert written["model"] == "ensemble" and (tmp_path / "ens" / "confusion.csv").is_file()
    # a run averaged with itself is that run
    alone = json.loads((a / "metrics.json").read_text())
    assert evaluate_ensemble([a, a])["accuracy"] == pytest.approx(alone["accuracy"])


def test_runs_tested_on_other_windows_are_refused(two_runs, tiny_config, tmp_path):
    a, _ = two_runs
    other = train(replace(tiny_config, epochs=1, window=16), tmp_path / "other", progress=False)
    with pytest.raises(HarkitError, match=r"not tested on the same windows.*window"):
        evaluate_ensemble([a, other])
    with pytest.raises(HarkitError, match="at least two runs"):
        evaluate_ensemble([a])
