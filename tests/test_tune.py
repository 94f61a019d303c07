import json
import subprocess
import sys
from dataclasses import replace

import optuna

from harkit.training.engine import TrainConfig
from harkit.tune import config_from_params, suggest, tune


def test_search_space_and_final_run(tiny_config, tmp_path):
    summary = tune(replace(tiny_config, epochs=2), trials=3, out=tmp_path / "tune")
    assert summary["trials"] == 3 and summary["complete"] + summary["pruned"] == 3
    assert set(summary["best_params"]) == {"dropout", "width", "augment_strength", "lr", "weight_decay", "batch_size"}
    assert 0 <= summary["test"]["accuracy"] <= 1
    assert (tmp_path / "tune" / "best" / "metrics.json").is_file()
    assert not list((tmp_path / "tune" / "trials").glob("*/best.pt"))  # trials keep no weights
    # the study is stored and resumes: three more trials add up to six
    again = tune(replace(tiny_config, epochs=2), trials=3, out=tmp_path / "tune", final=False)
    assert again["trials"] == 6


def test_trials_never_see_the_test_split(tiny_config, tmp_path, monkeypatch):
    from harkit import tune as tune_module

    calls = []
    real_train = tune_module.train

    def spy(config, run, **kwargs):
        calls.append(kwargs.get("evaluate", True))
        return real_train(config, run, **kwargs)

    monkeypatch.setattr(tune_module, "train", spy)
    tune(replace(tiny_config, epochs=1), trials=2, out=tmp_path / "tune")
    assert calls == [False, False, True]  # only the final run is evaluated on the test split


def test_parameters_rebuild_the_configuration():
    base = TrainConfig(dataset="hapt", model="transformer")
    trial = optuna.trial.FixedTrial(
        {"dropout": 0.2, "dim": 32, "augment_strength": 0.5, "lr": 1e-3, "weight_decay": 1e-4, "batch_size": 64}
    )
    config = suggest(trial, base)
    assert config.model_options == {"dropout": 0.2, "dim": 32}
    assert config.augment.rotation == 15.0 and config.batch_size == 64
    assert config_from_params(base, trial.params) == config


def test_two_processes_share_one_sqlite_study(tiny_config, tmp_path):
    storage = f"sqlite:///{tmp_path / 'shared.db'}"
    script = (
        "import sys, json; from harkit.training.engine import TrainConfig; from harkit.tune import tune; "
        "config = TrainConfig(**json.loads(sys.argv[1])); "
        "tune(config, trials=2, out=sys.argv[2], storage=sys.argv[3], study_name='shared', final=False)"
    )
    config = {
        "dataset": "hapt",
        "model": "sann",
        "epochs": 1,
        "batch_size": 8,
        "model_options": {"width": 0.125},
        "data_dir": tiny_config.data_dir,
        "window": 32,
        "val_fraction": 0.5,
        "threads": 1,
    }
    processes = [
        subprocess.Popen([sys.executable, "-c", script, json.dumps(config), str(tmp_path / f"worker{i}"), storage])
        for i in range(2)
    ]
    assert [p.wait(timeout=300) for p in processes] == [0, 0]
    study = optuna.load_study(study_name="shared", storage=storage)
    assert len(study.trials) == 4
    assert len({t.number for t in study.trials}) == 4
