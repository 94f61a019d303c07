import csv
import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from harkit import HarkitError
from harkit.runs import Run
from harkit.training import checkpoint as checkpoint_module
from harkit.training import engine
from harkit.training import recipe as recipe_module
from harkit.training.augment import AugmentConfig
from harkit.training.engine import TrainConfig, autocast_for, parameter_groups, train


def history(run):
    with open(run / "history.csv") as handle:
        return list(csv.DictReader(handle))


def interrupt_when(monkeypatch, condition):
    """Make saving a checkpoint raise KeyboardInterrupt when `condition(path, payload)`; returns the real save."""
    real_save = engine.save_checkpoint

    def save(path, payload):
        if condition(path, payload):
            raise KeyboardInterrupt
        real_save(path, payload)

    monkeypatch.setattr(engine, "save_checkpoint", save)
    return real_save


def test_a_run_directory_holds_everything(tiny_config, tmp_path):
    run = train(replace(tiny_config, recipe="article"), tmp_path / "run", progress=False)
    for name in ("config.json", "history.csv", "best.pt", "last.pt", "metrics.json", "per_class.csv", "confusion.csv"):
        assert (run / name).is_file(), name
    rows = history(run)
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert set(rows[0]) == set(engine.HISTORY_FIELDS)
    # StepLR with step epochs // 3 = 1 and gamma 0.5
    assert [float(r["lr"]) for r in rows] == pytest.approx([5e-4, 2.5e-4, 1.25e-4])
    metrics = json.loads((run / "metrics.json").read_text())
    for key in ("accuracy", "macro_precision", "macro_recall", "macro_f1", "weighted_f1"):
        assert 0 <= metrics[key] <= 1
    config = json.loads((run / "config.json").read_text())
    assert config["model"] == "sann" and config["resolved"]["precision"] == "fp32"
    checkpoint = torch.load(run / "best.pt", weights_only=False)
    assert checkpoint["model"]["name"] == "sann" and checkpoint["classes"][0] == "WALKING"
    assert len(checkpoint["mean"]) == 6


def test_same_seed_same_numbers_on_cpu(tiny_config, tmp_path):
    config = replace(tiny_config, augment=AugmentConfig(rotation=20, jitter=0.05))
    a = history(train(config, tmp_path / "a", progress=False, evaluate=False))
    b = history(train(config, tmp_path / "b", progress=False, evaluate=False))
    assert [r["train_loss"] for r in a] == [r["train_loss"] for r in b]
    c = history(train(replace(config, seed=1), tmp_path / "c", progress=False, evaluate=False))
    assert [r["train_loss"] for r in a] != [r["train_loss"] for r in c]


def test_interrupted_run_resumes_to_the_same_result(tiny_config, tmp_path, monkeypatch):
    whole = history(train(tiny_config, tmp_path / "whole", progress=False, evaluate=False))

    real_save = interrupt_when(monkeypatch, lambda path, payload: payload["epoch"] == 3)
    with pytest.raises(KeyboardInterrupt):
        train(tiny_config, tmp_path / "broken", progress=False, evaluate=False)
    monkeypatch.setattr(engine, "save_checkpoint", real_save)
    with pytest.raises(HarkitError, match="--resume"):
        train(tiny_config, tmp_path / "broken", progress=False)
    resumed = history(train(tiny_config, tmp_path / "broken", resume=True, progress=False, evaluate=False))
    assert [r["train_loss"] for r in resumed] == [r["train_loss"] for r in whole]
    assert [r["val_macro_f1"] for r in resumed] == [r["val_macro_f1"] for r in whole]


def test_finished_run_is_not_overwritten_by_accident(tiny_config, tmp_path):
    config = replace(tiny_config, epochs=1)
    run = train(config, tmp_path / "run", progress=False)
    with pytest.raises(HarkitError, match="already holds a finished run"):
        train(config, run, progress=False)
    train(config, run, overwrite=True, progress=False)


def test_early_stopping_on_validation_macro_f1(tiny_config, tmp_path, monkeypatch):
    scores = iter([0.5, 0.5, 0.4, 0.6, 0.6, 0.6, 0.6, 0.6])  # ties and drops do not improve; F1 0.6 does
    monkeypatch.setattr(
        engine, "evaluate_split", lambda *args: {"loss": 1.0, "accuracy": 0.5, "macro_f1": next(scores)}
    )
    config = replace(tiny_config, epochs=9, patience=3)
    rows = history(train(config, tmp_path / "run", progress=False, evaluate=False))
    assert len(rows) == 7 and checkpoint_module.load_checkpoint(tmp_path / "run" / "best.pt")["epoch"] == 4


@pytest.mark.parametrize(("keep", "kept"), [("best", 1), ("last", 4)])
def test_the_model_kept_is_the_best_on_validation_or_the_last(keep, kept, tiny_config, tmp_path, monkeypatch):
    scores = iter([0.9, 0.5, 0.6, 0.7])  # validation macro F1 falls after epoch 1
    monkeypatch.setattr(
        engine, "evaluate_split", lambda *args: {"loss": 1.0, "accuracy": 0.5, "macro_f1": next(scores)}
    )
    train(replace(tiny_config, epochs=4, keep=keep), tmp_path / "run", progress=False, evaluate=False)
    assert checkpoint_module.load_checkpoint(tmp_path / "run" / "best.pt")["epoch"] == kept
    assert len(history(tmp_path / "run")) == 4 and history(tmp_path / "run")[3]["val_macro_f1"] == "0.7"
    with pytest.raises(HarkitError, match="unknown --keep 'first'"):
        replace(tiny_config, keep="first")


def test_ties_in_validation_macro_f1_go_to_the_lower_validation_loss(tiny_config, tmp_path, monkeypatch):
    scores = iter([(1.0, 0.9), (0.8, 0.9), (0.9, 0.9), (0.5, 0.8)])  # (loss, macro F1) per epoch
    monkeypatch.setattr(
        engine,
        "evaluate_split",
        lambda *args: dict(zip(("loss", "macro_f1"), next(scores), strict=True)) | {"accuracy": 0.5},
    )
    train(replace(tiny_config, epochs=4), tmp_path / "run", progress=False, evaluate=False)
    assert checkpoint_module.load_checkpoint(tmp_path / "run" / "best.pt")["epoch"] == 2


def test_nan_loss_stops_with_the_epoch_and_a_hint(tiny_config, tmp_path):
    from harkit.datasets import prepare

    prepared = prepare("hapt", tiny_config.prepare_config(), data_dir=tiny_config.data_dir)
    prepared.train.x = np.array(prepared.train.x)
    prepared.train.x[0, 0, 0] = np.nan
    with pytest.raises(HarkitError, match="at epoch 1; lower --lr"):
        train(tiny_config, tmp_path / "run", progress=False, prepared=prepared)


def test_unknown_model_fails_before_reading_data(tmp_path):
    with pytest.raises(HarkitError, match="unknown model 'resnet'"):
        train(TrainConfig(dataset="nowhere", model="resnet"), tmp_path / "run", progress=False)


def test_precision_choices():
    cpu = torch.device("cpu")
    assert autocast_for(cpu, "auto")[1:] == (False, "fp32")
    assert autocast_for(cpu, "bf16")[1:] == (False, "bf16")
    with pytest.raises(HarkitError, match="needs a CUDA device"):
        autocast_for(cpu, "fp16")


def test_bf16_training_on_cpu(tiny_config, tmp_path):
    rows = history(
        train(replace(tiny_config, epochs=1, precision="bf16"), tmp_path / "r", progress=False, evaluate=False)
    )
    assert np.isfinite(float(rows[0]["train_loss"]))


def test_weight_decay_only_on_matrices():
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    decay, rest = parameter_groups(model, 0.1)
    assert [p.dim() for p in decay["params"]] == [2] and decay["weight_decay"] == 0.1
    assert all(p.dim() == 1 for p in rest["params"]) and rest["weight_decay"] == 0.0


def test_penalties_class_weights_and_label_smoothing_run(tiny_config, tmp_path):
    config = replace(tiny_config, epochs=1, l1=1e-5, l2=1e-4, class_weights=True, label_smoothing=0.1)
    run = train(config, tmp_path / "r", progress=False)
    assert (run / "metrics.json").is_file()
    weights = engine.class_weights_for(np.array([0, 0, 0, 1]), 3)
    assert weights[2] == 0 and weights[1] > weights[0]


def test_checkpoint_alone_rebuilds_the_model(tiny_config, tmp_path):
    run = train(replace(tiny_config, epochs=1), tmp_path / "r", progress=False)
    checkpoint = checkpoint_module.load_checkpoint(run / "best.pt")
    model = checkpoint_module.model_from_checkpoint(checkpoint)
    assert model(torch.zeros(2, 32, 6)).shape == (2, 6)


def test_out_of_memory_names_the_batch_size(tiny_config, tmp_path, monkeypatch):
    from harkit.models.sann import SpatialAttentionNeuralNetwork

    def exhausted(self, x):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(SpatialAttentionNeuralNetwork, "forward", exhausted)
    with pytest.raises(HarkitError, match=r"out of memory with batch size 8 .* smaller --batch-size"):
        train(tiny_config, tmp_path / "run", progress=False)


def test_harkit_recipe_is_resolved_from_the_data_and_recorded(tiny_config, tmp_path, caplog):
    config = replace(tiny_config, epochs=None, batch_size=None)
    run = train(config, tmp_path / "run", progress=False, evaluate=False)
    saved = json.loads((run / "config.json").read_text())
    resolved = saved["resolved"]["recipe"]
    n_train = resolved["steps_per_epoch"] * resolved["batch_size"]  # batch 8 divides the fixture's windows
    assert resolved["recipe"] == "harkit" and resolved["batch_size"] == 8 and n_train <= 64
    assert saved["epochs"] == resolved["epochs"] == 300 and saved["batch_size"] == 8  # what evaluate reads
    assert {"epochs", "batch_size", "lr", "schedule"} <= set(resolved["auto"])
    rows = history(run)
    lrs = [float(r["lr"]) for r in rows]
    peak = lrs.index(max(lrs))
    assert 0 < peak < len(lrs) - 1 and max(lrs) <= 1e-3 and lrs[-1] < 0.1 * max(lrs)  # warm-up, then cosine
    assert any("no training windows for" in message for message in caplog.messages)
    assert resolved["warnings"] and resolved["warnings"][0] in caplog.messages
    # the configuration a resumed or evaluated run reads back holds the resolved numbers
    assert TrainConfig.from_json(saved).batch_size == 8 and TrainConfig.from_json(saved).recipe == "harkit"
    # a config.json from before recipes was trained with the article's recipe, and resumes with it
    assert TrainConfig.from_json({k: v for k, v in saved.items() if k != "recipe"}).recipe == "article"


def test_an_empty_validation_part_is_warned_about(tiny_config, tmp_path, caplog):
    run = train(replace(tiny_config, epochs=1, val_fraction=0.0), tmp_path / "run", progress=False, evaluate=False)
    assert any("validation part is empty" in message for message in caplog.messages)
    assert any(
        "validation part is empty" in w
        for w in json.loads((run / "config.json").read_text())["resolved"]["recipe"]["warnings"]
    )


class _Untouchable:
    """A part that fails the test when the training loop reads it."""

    def __getattr__(self, name):
        raise AssertionError(f"training read the test part ({name})")

    def __len__(self):
        raise AssertionError("training read the test part (len)")


def test_the_checkpoint_kept_is_the_best_on_validation_never_on_test(tiny_config, tmp_path):
    from harkit.datasets import prepare

    prepared = prepare("hapt", tiny_config.prepare_config(), data_dir=tiny_config.data_dir)
    test_part, prepared.test = prepared.test, _Untouchable()
    config = replace(tiny_config, epochs=8, lr=5e-3, recipe="article")
    run = train(config, tmp_path / "run", progress=False, prepared=prepared, evaluate=False)
    rows = history(run)
    scores = [(float(r["val_macro_f1"]), -float(r["val_loss"])) for r in rows]
    best_epoch = int(rows[scores.index(max(scores))]["epoch"])
    checkpoint = checkpoint_module.load_checkpoint(run / "best.pt")
    assert checkpoint["epoch"] == best_epoch
    # the kept weights are those that gave that validation score
    model = checkpoint_module.model_from_checkpoint(checkpoint)
    x_val, y_val = torch.from_numpy(np.array(prepared.val.x)), torch.as_tensor(prepared.val.y)
    again = engine.evaluate_split(model, x_val, y_val, 8, torch.nn.CrossEntropyLoss(), None)
    assert again["loss"] == pytest.approx(float(rows[best_epoch - 1]["val_loss"]), rel=1e-5)
    assert test_part is not None


def test_validation_is_scored_in_the_precision_of_the_test_part(tiny_config, tmp_path):
    from harkit.datasets import prepare

    prepared = prepare("hapt", tiny_config.prepare_config(), data_dir=tiny_config.data_dir)
    config = replace(tiny_config, epochs=1, precision="bf16", recipe="article")
    run = train(config, tmp_path / "run", progress=False, prepared=prepared, evaluate=False)
    model = checkpoint_module.model_from_checkpoint(checkpoint_module.load_checkpoint(run / "best.pt"))
    x_val, y_val = torch.from_numpy(np.array(prepared.val.x)), torch.as_tensor(prepared.val.y)
    criterion = torch.nn.CrossEntropyLoss()
    # evaluate_run scores the test part in full precision (predict_logits without autocast)
    full = engine.evaluate_split(model, x_val, y_val, 8, criterion, None)["loss"]
    half = engine.evaluate_split(model, x_val, y_val, 8, criterion, torch.autocast("cpu", torch.bfloat16))["loss"]
    assert abs(full - half) > 1e-6 * full  # the two precisions differ on these windows
    assert float(history(run)[0]["val_loss"]) == pytest.approx(full, rel=1e-7)


def test_refit_trains_on_every_training_subject_for_the_best_epoch_count(tiny_config, tmp_path, monkeypatch):
    scores = iter([0.5, 0.7, 0.6, 0.6])  # validation macro F1 per epoch: the best epoch is 2
    real = engine.evaluate_split
    monkeypatch.setattr(
        engine, "evaluate_split", lambda *args: {"loss": 1.0, "accuracy": 0.5, "macro_f1": next(scores)}
    )
    run = train(replace(tiny_config, epochs=4, refit=True), tmp_path / "run", progress=False)
    monkeypatch.setattr(engine, "evaluate_split", real)
    validated = json.loads((run / "dataset.json").read_text())["subjects"]
    refitted = json.loads((run / "refit" / "dataset.json").read_text())["subjects"]
    assert validated["val"] and not refitted["val"]
    assert refitted["train"] == sorted(validated["train"] + validated["val"])
    assert refitted["test"] == validated["test"]
    assert [int(row["epoch"]) for row in history(run / "refit")] == [1, 2]  # the best epoch count, no validation
    metrics = json.loads((run / "metrics.json").read_text())
    refit_metrics = json.loads((run / "refit" / "metrics.json").read_text())
    assert metrics["best_epoch"] == 2 and metrics["refit"]["epochs"] == 2
    assert metrics["refit"]["accuracy"] == refit_metrics["accuracy"]
    assert json.loads((run / "refit" / "config.json").read_text())["resolved"]["recipe"]["epochs"] == 2
    # evaluating the run again keeps the refit's scores
    from harkit.evaluation.evaluate import evaluate_run

    assert evaluate_run(run, plots=False, latency_repeats=1)["refit"] == metrics["refit"]


def test_a_refit_can_be_asked_for_after_the_run_and_resumes(tiny_config, tmp_path, monkeypatch):
    scores = iter([0.5, 0.6, 0.7])  # the best epoch is 3
    real = engine.evaluate_split
    monkeypatch.setattr(
        engine, "evaluate_split", lambda *args: {"loss": 1.0, "accuracy": 0.5, "macro_f1": next(scores)}
    )
    run = train(tiny_config, tmp_path / "run", progress=False)
    monkeypatch.setattr(engine, "evaluate_split", real)
    assert not (run / "refit").exists()
    real_save = interrupt_when(
        monkeypatch,
        lambda path, payload: path.parent.name == "refit" and path.name == "last.pt" and payload["epoch"] == 2,
    )
    with pytest.raises(KeyboardInterrupt):
        train(replace(tiny_config, refit=True), run, resume=True, progress=False)
    monkeypatch.setattr(engine, "save_checkpoint", real_save)
    assert not (run / "refit" / "metrics.json").exists()
    train(replace(tiny_config, refit=True), run, resume=True, progress=False)
    assert [int(row["epoch"]) for row in history(run / "refit")] == [1, 2, 3]
    assert json.loads((run / "metrics.json").read_text())["refit"]["epochs"] == 3


def test_a_resumed_run_keeps_what_auto_chose_when_it_started(tiny_config, tmp_path, monkeypatch, caplog):
    from harkit import hardware

    config = replace(tiny_config, precision="auto", compile="auto")
    real_save = interrupt_when(monkeypatch, lambda path, payload: payload["epoch"] == 2)
    with pytest.raises(KeyboardInterrupt):
        train(config, tmp_path / "run", progress=False, evaluate=False)
    monkeypatch.setattr(engine, "save_checkpoint", real_save)
    started = json.loads((tmp_path / "run" / "config.json").read_text())["resolved"]
    assert (started["precision"], started["compile"]) == ("fp32", False)

    def other_machine(*args, **kwargs):
        raise AssertionError("a resumed run probed the machine again")

    monkeypatch.setattr(hardware, "resolve_precision", other_machine)
    monkeypatch.setattr(hardware, "resolve_compile", other_machine)
    caplog.set_level("INFO")
    train(config, tmp_path / "run", resume=True, progress=False, evaluate=False)
    assert any("precision fp32 (as the run chose" in message for message in caplog.messages)


def test_validation_is_held_out_by_default_only_where_the_run_selects_on_it(tiny_config, tmp_path, caplog):
    caplog.set_level("INFO")

    def trained(name, **fields):
        run = train(replace(tiny_config, epochs=1, val_fraction="auto", **fields), tmp_path / name, progress=False)
        config = json.loads((run / "config.json").read_text())
        return config, json.loads((run / "dataset.json").read_text())["subjects"]

    config, held_out = trained("best")  # few windows: the best epoch on validation is kept
    assert config["val_fraction"] == 0.2 and held_out["val"] and config["resolved"]["recipe"]["keep"] == "best"
    caplog.clear()
    config, subjects = trained("last", keep="last")  # nothing is selected on validation: every subject trains
    assert config["val_fraction"] == 0.0 and subjects["val"] == [] and config["resolved"]["recipe"]["keep"] == "last"
    assert sorted(subjects["train"]) == sorted(held_out["train"] + held_out["val"])
    assert not any("validation part is empty" in message for message in caplog.messages)
    assert any("validation: none held out" in message for message in caplog.messages)
    # a resumed run keeps the fraction it chose
    assert TrainConfig.from_json(config).val_fraction == 0.0


def test_auto_model_is_chosen_from_the_training_windows_and_recorded(tiny_config, tmp_path, caplog, monkeypatch):
    caplog.set_level("INFO")
    auto = replace(tiny_config, model="auto", model_options={})
    run = train(auto, tmp_path / "small", progress=False)
    saved = json.loads((run / "config.json").read_text())
    assert saved["model"] == "minirocket" and Run(run).model_name == "minirocket"
    assert any("model auto: minirocket" in message for message in caplog.messages)
    assert TrainConfig.from_json(saved).model == "minirocket"  # evaluate and --resume read the choice back
    assert train(auto, run, resume=True, progress=False) == run  # auto resumes the run's model

    monkeypatch.setattr(recipe_module, "AUTO_MODEL_WINDOWS", 1)  # the same data counts as large
    run = train(replace(auto, epochs=1), tmp_path / "large", progress=False)
    assert json.loads((run / "config.json").read_text())["model"] == "sann"

    # a run started from another's weights trains that run's model; options need a named model
    started = train(replace(auto, epochs=1, init_from=str(run)), tmp_path / "init", progress=False)
    assert json.loads((started / "config.json").read_text())["model"] == "sann"
    with pytest.raises(HarkitError, match="name it with --model"):
        train(replace(auto, model_options={"width": 0.5}), tmp_path / "options", progress=False)


def test_without_validation_batch_norm_is_recalibrated_once_and_the_model_is_the_same(
    tiny_config, tmp_path, monkeypatch
):
    # Nothing reads the statistics between epochs, and the last recalibration replaces them whole.
    calls = []
    real = recipe_module.recalibrate_batch_norm
    monkeypatch.setattr(recipe_module, "recalibrate_batch_norm", lambda *args: calls.append(1) or real(*args))
    config = replace(tiny_config, val_fraction=0.0, bn_recalibrate=True)
    once = train(config, tmp_path / "once", progress=False, evaluate=False)
    assert len(calls) == 1
    # dropout draws from the global generator in those passes, so a model with dropout recalibrates every epoch
    monkeypatch.setattr(recipe_module, "draws_random_numbers", lambda model: True)
    every = train(config, tmp_path / "every", progress=False, evaluate=False)
    assert len(calls) == 1 + config.epochs
    kept = [checkpoint_module.load_checkpoint(run / "last.pt")["state_dict"] for run in (once, every)]
    for name, value in kept[0].items():
        torch.testing.assert_close(value, kept[1][name], rtol=0, atol=0, msg=name)


def test_dropout_anywhere_draws_random_numbers():
    assert not recipe_module.draws_random_numbers(torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Dropout(0.0)))
    assert recipe_module.draws_random_numbers(torch.nn.Sequential(torch.nn.Dropout(0.1)))
    assert recipe_module.draws_random_numbers(torch.nn.LSTM(2, 2, num_layers=2, dropout=0.2))
    assert recipe_module.draws_random_numbers(torch.nn.MultiheadAttention(4, 2, dropout=0.1))
    assert not recipe_module.draws_random_numbers(torch.nn.MultiheadAttention(4, 2))
