"""Folders of labelled CSV recordings described by a harkit.toml."""

import logging
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from harkit import HarkitError
from harkit.datasets import PrepareConfig, SubjectSplit, get_dataset, prepare
from harkit.datasets.folder import write_template

CHANNELS = ["ax", "ay", "az", "temperature"]


def write(folder, description, recordings):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "harkit.toml").write_text(description)
    for name, frame in recordings.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        frame.to_csv(folder / name, index=False)
    return folder


def recording(labels, subject=None, rate=20.0, start=0.0):
    n = len(labels)
    frame = pd.DataFrame({"time": start + np.arange(n) / rate})
    for i, name in enumerate(CHANNELS):
        frame[name] = np.arange(n) + 1000 * i
    frame["label"] = labels
    if subject is not None:
        frame["who"] = subject
    return frame


DESCRIPTION = """
sampling_rate = 20
channels = ["ax", "ay", "az", "temperature"]
label_column = "label"
null_labels = ["", "none"]
subject_column = "who"
timestamp_column = "time"
window = 10
overlap = 0.5
test_subjects = [3]
"""


@pytest.fixture
def folder(tmp_path):
    labels = ["walk"] * 30 + ["none"] * 5 + ["sit"] * 25
    return write(
        tmp_path / "mine",
        DESCRIPTION,
        {
            "a/s1.csv": recording(labels, 1),
            "a/s2.csv": recording(labels[::-1], 2),
            "b/s3.csv": recording(["sit"] * 20 + [""] * 3 + ["walk"] * 20, 3),
        },
    )


def test_windows_labels_and_subjects(folder):
    prepared = prepare(str(folder), PrepareConfig(val_fraction=0.0, normalize=False))
    assert prepared.meta["classes"] == ["sit", "walk"]
    # walk 30 -> 5 windows, sit 25 -> 4 (step 5), for subjects 1 and 2; subject 3: 20 and 20 -> 3 + 3
    assert prepared.meta["counts"] == {"train": [8, 10], "val": [0, 0], "test": [3, 3]}
    assert prepared.meta["subjects"]["test"] == [3]
    assert prepared.meta["sensors"] == [[0, 1, 2]]  # ax, ay, az; temperature is no sensor axis
    assert np.all(np.diff(prepared.train.x[:, :, 0], axis=1) == 1)  # whole windows inside one recording
    # LOSO works as on a built-in dataset
    loso = prepare(str(folder), PrepareConfig(split=SubjectSplit("loso", fold=0), val_fraction=0.0))
    assert loso.meta["subjects"]["test"] == [1]


def test_subject_from_file_name_and_named_subjects(tmp_path):
    description = DESCRIPTION.replace('subject_column = "who"', 'subject_pattern = "(alice|bob)"').replace(
        "test_subjects = [3]\n", ""
    )
    folder = write(
        tmp_path / "named",
        description,
        {
            "alice_1.csv": recording(["walk"] * 20),
            "bob_1.csv": recording(["walk"] * 20 + ["sit"] * 20),
        },
    )
    dataset = get_dataset(str(folder))
    facts = dataset.describe_recordings()
    assert facts["subjects"] == {1: "alice", 2: "bob"} and facts["test_subjects"] == [2]
    assert facts["classes"]["sit"] == {"samples": 20, "seconds": 1.0}


def test_timestamps_are_checked(tmp_path):
    def prepare_one(frame, extra=""):
        folder = write(
            tmp_path / str(len(list(tmp_path.iterdir()))),
            DESCRIPTION + extra,
            {"x.csv": frame, "y.csv": recording(["walk"] * 40, 3)},
        )
        return prepare(str(folder), PrepareConfig(val_fraction=0.0))

    with pytest.raises(HarkitError, match=r"x\.csv: sampled at 50 Hz, not the declared 20 Hz"):
        prepare_one(recording(["walk"] * 40, 1, rate=50.0))
    gap = recording(["walk"] * 40, 1)
    gap.loc[20:, "time"] += 3.0
    with pytest.raises(HarkitError, match=r"x\.csv: a gap of 3\.05 s before data row 21"):
        prepare_one(gap)
    backwards = recording(["walk"] * 40, 1)
    backwards.loc[7, "time"] = 0.0
    with pytest.raises(HarkitError, match=r"x\.csv: time does not increase at data row 8"):
        prepare_one(backwards)
    resampled = prepare_one(recording(["walk"] * 100, 1, rate=50.0), extra="resample = true\n")
    # 100 samples at 50 Hz = 1.98 s -> 40 samples at 20 Hz -> 7 windows of 10 with step 5
    assert resampled.meta["counts"]["train"] == [7]


def test_bad_input_names_the_file(tmp_path, caplog):
    frame = recording(["walk"] * 40, 1).drop(columns=["az"])
    folder = write(tmp_path / "missing", DESCRIPTION, {"bad.csv": frame})
    with pytest.raises(HarkitError, match=r"bad\.csv lacks the columns \['az'\]"):
        prepare(str(folder))
    frame = recording(["walk"] * 40, 1).astype({"ay": object})
    frame.loc[12, "ay"] = "1,5"
    folder = write(tmp_path / "text", DESCRIPTION, {"bad.csv": frame})
    with pytest.raises(HarkitError, match=r"bad\.csv: non-numeric value '1,5' in channel 'ay' at data row 13"):
        prepare(str(folder))
    folder = write(tmp_path / "one", DESCRIPTION, {"only.csv": recording(["walk"] * 40 + ["sit"] * 40, 1)})
    with pytest.raises(HarkitError, match="one subject only"):
        prepare(str(folder))
    folder = write(
        tmp_path / "short",
        DESCRIPTION,
        {
            "s1.csv": recording(["walk"] * 40, 1),
            "s3.csv": recording(["walk"] * 40 + ["sit"] * 30, 3),
            "tiny1.csv": recording(["walk"] * 5, 1),
            "tiny2.csv": recording(["sit"] * 9, 2),
        },
    )
    with caplog.at_level(logging.WARNING):
        prepare(str(folder), PrepareConfig(val_fraction=0.0))
    assert "skipped 2 recordings shorter than one window" in caplog.text
    assert "classes ['sit'] occur in one subject only" in caplog.text
    with pytest.raises(HarkitError, match="unknown settings"):
        get_dataset(str(write(tmp_path / "typo", DESCRIPTION + "windw = 3\n", {})))


def test_end_to_end_train_evaluate_export_predict(tmp_path, tiny_config):
    from harkit.export import export_onnx
    from harkit.predict import predict_recording
    from harkit.training.engine import train

    folder = tmp_path / "template"
    write_template(folder)
    config = replace(
        tiny_config,
        dataset=str(folder),
        data_dir=None,
        window=None,
        overlap=None,
        epochs=2,
        batch_size=16,
        augment=replace(tiny_config.augment, rotation=20),
    )
    run = train(config, tmp_path / "run", progress=False)
    import json

    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["per_class"][0]["class"] == "sitting" and metrics["test_subjects"] == [3]
    export_onnx(run)
    new = pd.read_csv(folder / "subject1_session1.csv").drop(columns=["activity", "subject"])
    new.to_csv(tmp_path / "new.csv", index=False)
    result = predict_recording(run, tmp_path / "new.csv", tmp_path / "predictions")
    assert result["backend"] == "onnxruntime" and len(result["predictions"]) == (1500 - 128) // 64 + 1
