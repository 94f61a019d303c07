"""Folders of labelled CSV recordings described by a harkit.toml."""

import logging
from dataclasses import replace
from pathlib import Path

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
    assert "2 labelled recordings are shorter than one window (10 samples)" in caplog.text
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
    assert result["backend"] == "onnxruntime" and len(result["predictions"]) >= (1500 - 128) // 64 + 1


BASE = """
sampling_rate = 20
channels = ["ax", "ay", "az", "temperature"]
window = 10
overlap = 0.5
"""


def signals_only(n, rate=20.0):
    return recording(["x"] * n, rate=rate).drop(columns=["label"])


def test_labels_from_the_file_path(tmp_path, caplog):
    description = BASE + 'label_pattern = "(walk|sit)"\nsubject_pattern = "s(\\\\d+)"\n'
    folder = write(
        tmp_path / "p",
        description,
        {
            "walk/s1.csv": signals_only(30),
            "sit/s1.csv": signals_only(20),
            "walk/s2.csv": signals_only(20),
            "sit/s2.csv": signals_only(30),
            "new/s2.csv": signals_only(40),  # no label in its path: not trained on
        },
    )
    with caplog.at_level(logging.WARNING):
        prepared = prepare(str(folder), PrepareConfig(val_fraction=0.0), use_cache=False)
    assert prepared.meta["classes"] == ["sit", "walk"]
    # subject 1: sit 20 -> 3 windows, walk 30 -> 5; subject 2 (the default test subject): sit 5, walk 3
    assert prepared.meta["counts"] == {"train": [3, 5], "val": [0, 0], "test": [5, 3]}
    assert "1 of 5 recordings have no labels and are not trained on (predict can label them): new/s2.csv" in caplog.text


def intervals_folder(tmp_path, labels: str, extra=""):
    description = BASE + 'labels_file = "labels.csv"\nsubject_pattern = "s(\\\\d+)"\n' + extra
    folder = write(
        tmp_path / f"i{len(list(tmp_path.iterdir()))}",
        description,
        {"s1.csv": signals_only(60), "day/s2.csv": signals_only(60), "s3.csv": signals_only(60)},
    )
    (folder / "labels.csv").write_text(labels)
    return folder


def test_labels_from_a_file_of_intervals(tmp_path):
    labels = (
        "recording,start,end,label\n"
        "s1.csv,0,1.5,walk\n"  # samples 0..29 (t < 1.5 s at 20 Hz)
        "s1.csv,2.0,3.0,sit\n"  # samples 40..59
        "day/s2.csv,0.5,1.0,sit\n"  # samples 10..19
        "day/s2.csv,1.0,2.5,walk\n"  # samples 20..49, right after
    )  # s3.csv has no labels: allowed
    folder = intervals_folder(tmp_path, labels)
    dataset = get_dataset(str(folder))
    recordings = {r.session: r for r in dataset.read(folder)}
    assert dataset.classes == ["sit", "walk"] and dataset.unlabelled_recordings == ["s3.csv"]
    s1 = recordings["s1.csv"].labels
    assert (s1[:30] == 1).all() and (s1[30:40] == -1).all() and (s1[40:] == 0).all()
    s2 = recordings["day/s2.csv"].labels
    assert (s2[:10] == -1).all() and (s2[10:20] == 0).all() and (s2[20:50] == 1).all() and (s2[50:] == -1).all()
    assert (recordings["s3.csv"].labels == -1).all()
    # the labels file itself is no recording
    assert sorted(recordings) == ["day/s2.csv", "s1.csv", "s3.csv"]
    prepared = prepare(str(folder), PrepareConfig(split=SubjectSplit("subjects", (2,)), val_fraction=0.0))
    assert prepared.meta["counts"]["train"] == [3, 5] and prepared.meta["counts"]["test"] == [1, 5]


def test_interval_file_mistakes_name_the_row(tmp_path):
    header = "recording,start,end,label\n"
    cases = {
        "s1.csv,0,1,walk\ns9.csv,0,1,sit\n": r"data row 2 names the recording 's9\.csv', which is not one of the 3",
        "s1.csv,0,1,walk\ns1.csv,2,1,sit\n": r"end 1 is not after start 2 at data row 2",
        "s1.csv,0,1,walk\ns1.csv,0.5,x,sit\n": r"end 'x' at data row 2 is not a finite number of seconds",
        "s1.csv,0,1,walk\ns1.csv,2,3,sit\ns1.csv,0.9,1.2,sit\n": r"data rows 1 and 3 of 's1\.csv' overlap",
    }
    for rows, message in cases.items():
        with pytest.raises(HarkitError, match=message):
            get_dataset(str(intervals_folder(tmp_path, header + rows))).read(None)
    with pytest.raises(HarkitError, match=r"lacks the columns \['end'\]"):
        get_dataset(str(intervals_folder(tmp_path, "recording,start,stop,label\n"))).read(None)
    with pytest.raises(HarkitError, match=r"no recording in .* has a label from labels_file 'labels\.csv'"):
        get_dataset(str(intervals_folder(tmp_path, header))).read(None)


def test_recordings_without_the_label_column_are_unlabelled(folder, caplog):
    recording(["walk"] * 40, 1).drop(columns=["label"]).to_csv(folder / "a" / "new.csv", index=False)
    dataset = get_dataset(str(folder))
    with caplog.at_level(logging.WARNING):
        recordings = dataset.read(folder)
    assert dataset.unlabelled_recordings == ["a/new.csv"] and "a/new.csv" in caplog.text
    assert len(recordings) == 4 and dataset.describe_recordings()["unlabelled_recordings"] == ["a/new.csv"]


@pytest.mark.parametrize(
    ("column", "unit"),
    [
        # epochs of 2023 in every unit: float64 seconds would round these to about 0.2 us
        ([f"1700000000.{i * 50_000_000:09d}" for i in range(20)], None),
        ([f"1700000000{i * 50:03d}" for i in range(20)], "ms"),
        ([str(1_700_000_000_000_000 + i * 50_000) for i in range(20)], "us"),
        ([str(1_700_000_000_000_000_000 + i * 50_000_000) for i in range(20)], "ns"),
        ([f"2024-03-31T01:59:59.{i * 50:03d}+02:00" for i in range(20)], None),
        ([f"2024-03-31 23:59:59.{i * 50:03d}" for i in range(20)], None),
    ],
)
def test_timestamps_in_every_unit_and_iso_8601(tmp_path, column, unit):
    frame = recording(["walk"] * 20, 1)
    frame["time"] = column
    extra = f'timestamp_unit = "{unit}"\n' if unit else ""
    folder = write(tmp_path / "t", DESCRIPTION + extra, {"x.csv": frame})
    tables = get_dataset(str(folder))._load(folder / "x.csv")
    assert np.array_equal(tables.seconds, np.arange(20) / 20)  # exact: every step is 50 ms
    nanoseconds = [1_700_000_000 * 10**9 + i * 70_000_000 for i in range(20)]
    seconds = pd.Series([f"{t // 10**9}.{t % 10**9:09d}" for t in nanoseconds])
    frame["time"] = seconds
    write(folder, DESCRIPTION, {"x.csv": frame})
    with pytest.raises(HarkitError, match=r"sampled at 14\.29 Hz, not the declared 20 Hz"):
        get_dataset(str(folder))._load(folder / "x.csv")


def test_exact_epoch_conversion():
    from harkit.datasets.timestamps import parse_timestamps

    text = pd.Series(["1700000000.123456789", "1700000000.5", "-0.25", "1e3"])
    assert parse_timestamps(text, None, "f").tolist() == [
        1_700_000_000_123_456_789,
        1_700_000_000_500_000_000,
        -250_000_000,
        1_000_000_000_000,
    ]
    assert float(text[0]) * 1e9 != 1_700_000_000_123_456_789  # what float64 would have given
    assert parse_timestamps(pd.Series(["1700000000123456789"]), "ns", "f").tolist() == [1_700_000_000_123_456_789]
    with pytest.raises(HarkitError, match=r"f: the timestamp 'soon' at data row 2 is neither a number nor an ISO"):
        parse_timestamps(pd.Series(["2024-01-01T00:00:00", "soon"]), None, "f")
    with pytest.raises(HarkitError, match=r"f: the timestamp 'nan' at data row 2 is not a finite number"):
        parse_timestamps(pd.Series(["1", "nan"]), None, "f")
    with pytest.raises(HarkitError, match=r"is a date-time, but timestamp_unit = 'ms' is for epoch numbers"):
        parse_timestamps(pd.Series(["2024-01-01T00:00:00"]), "ms", "f")


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('window = "abc"', r"window must be an integer, got 'abc'"),
        ("window = 12.5", r"window must be an integer, got 12\.5"),
        ('sampling_rate = "fast"', r"sampling_rate must be a finite number, got 'fast'"),
        ("sampling_rate = nan", r"sampling_rate must be a finite number, got nan"),
        ('overlap = "half"', r"overlap must be a finite number, got 'half'"),
        ('resample = "yes"', r"resample must be true or false"),
        ('channels = "ax"', r"channels must be a list of strings"),
        ("test_subjects = [1.5]", r"test_subjects must be a list of strings or integers"),
        # the ranges are those of the command line (PrepareConfig)
        ("window = 0", r"window must be at least 2 samples, got 0"),
        ("overlap = 1.0", r"overlap must be in \[0, 1\), got 1\.0"),
        ("sampling_rate = -5", r"sampling_rate must be a number above 0, got -5"),
        ('split = "random"', r'split must be "subject" or "time"'),
        ('timestamp_unit = "min"', r"timestamp_unit must be one of s, ms, us, ns"),
        ('label_pattern = "(walk"', r"label_pattern '\(walk' is not a regular expression"),
    ],
)
def test_settings_of_the_wrong_kind_name_the_key(tmp_path, line, message):
    key = line.split(" = ")[0]
    kept = "\n".join(row for row in DESCRIPTION.splitlines() if not row.startswith(key + " "))
    if key == "label_pattern":
        kept = kept.replace('label_column = "label"', "")
    folder = write(tmp_path / "bad", kept + "\n" + line + "\n", {})
    with pytest.raises(HarkitError, match=r"harkit\.toml: " + message):
        get_dataset(str(folder))


def test_two_label_sources_are_refused(tmp_path):
    folder = write(tmp_path / "two", DESCRIPTION + 'label_pattern = "(walk)"\n', {})
    with pytest.raises(HarkitError, match="set exactly one of label_column, label_pattern or labels_file"):
        get_dataset(str(folder))


@pytest.mark.parametrize("value", ["1e400", "inf", "-inf", "1e39"])
def test_non_finite_values_name_the_file_and_row(tmp_path, value):
    frame = recording(["walk"] * 40, 1).astype({"az": object})
    frame.loc[7, "az"] = value
    folder = write(tmp_path / "inf", DESCRIPTION, {"s1.csv": frame, "s3.csv": recording(["walk"] * 40, 3)})
    with pytest.raises(HarkitError, match=r"s1\.csv: non-finite value .* in channel 'az' at data row 8"):
        prepare(str(folder), use_cache=False)


def test_harkit_outputs_in_the_folder_are_never_recordings(folder):
    run = folder / "runs" / "mine-sann-1"
    run.mkdir(parents=True)
    (run / "history.csv").write_text("epoch,loss\n1,0.5\n")
    other = folder / "results" / "trial"
    other.mkdir(parents=True)
    (other / "config.json").write_text("{}")
    recording(["walk"] * 40, 1).to_csv(other / "copy.csv", index=False)
    predictions = folder / "out"
    predictions.mkdir()
    (predictions / "predictions.csv").write_text("start_s,end_s,label\n")
    (predictions / "timeline.csv").write_text("start_s,end_s,label\n")
    dataset = get_dataset(str(folder))
    assert [p.relative_to(folder).as_posix() for p in dataset.files()] == ["a/s1.csv", "a/s2.csv", "b/s3.csv"]
    # and they do not change the fingerprint that keys the cache
    before = dataset.find(None, folder, False)[1]
    (run / "history.csv").write_text("epoch,loss\n1,0.5\n2,0.4\n")
    assert dataset.find(None, folder, False)[1] == before


def test_nothing_is_written_in_or_beside_the_data_folder(folder, tmp_path):
    cache = tmp_path / "elsewhere" / "cache"
    cache.mkdir(parents=True)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if "elsewhere" not in p.parts)
    prepared = prepare(str(folder), PrepareConfig(val_fraction=0.0), cache_dir=cache)
    prepare(str(folder), PrepareConfig(val_fraction=0.0), cache_dir=cache)  # and read back from the cache
    after = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if "elsewhere" not in p.parts)
    assert after == before
    assert Path(prepared.meta["cache"]).is_relative_to(cache)


def test_a_missing_window_says_the_default_and_the_fix(tmp_path, caplog):
    description = DESCRIPTION.replace("window = 10\n", "")
    short = {f"s{s}.csv": recording(["walk"] * 50 + ["sit"] * 50, s) for s in (1, 2, 3)}
    folder = write(tmp_path / "small", description, short)
    with caplog.at_level(logging.WARNING), pytest.raises(HarkitError, match="window 128 is longer than every"):
        prepare(str(folder), use_cache=False)
    assert (
        "harkit.toml sets no window, so the default of 128 samples (6.4 s at 20 Hz) is used, but the longest "
        "labelled segment has 50 samples; set window = 50 (or less) in harkit.toml, or pass --window"
    ) in caplog.text
    # --window wins over the default, and recordings are no longer dropped for the default's sake
    prepared = prepare(str(folder), PrepareConfig(window=20, val_fraction=0.0), use_cache=False)
    assert prepared.meta["window"] == 20 and prepared.meta["counts"]["train"] == [8, 8]


def test_every_setting_is_documented_in_the_template_and_readme():
    import tomllib

    from harkit.datasets.folder import SETTINGS, TEMPLATE

    readme = (Path(__file__).parents[2] / "README.md").read_text()
    section = readme[readme.index("## Your own recordings") :]
    section = section[: section.index("\n## ", 3)]
    for key in SETTINGS:
        assert f"\n{key} = " in TEMPLATE or f"\n# {key} = " in TEMPLATE, key
        assert f"{key} = " in section, key
    tomllib.loads(TEMPLATE)  # and the template itself is valid


def test_test_subjects_by_name(tmp_path):
    description = DESCRIPTION.replace('subject_column = "who"', 'subject_pattern = "(alice|bob|carol)"')
    description = description.replace("test_subjects = [3]", 'test_subjects = ["alice"]')
    recordings = {f"{n}.csv": recording(["walk"] * 20 + ["sit"] * 20) for n in ("alice", "bob", "carol")}
    folder = write(tmp_path / "named", description, recordings)
    prepared = prepare(str(folder), PrepareConfig(val_fraction=0.0), use_cache=False)
    assert prepared.meta["subjects"] == {"train": [2, 3], "val": [], "test": [1]}  # alice is subject 1
    (folder / "harkit.toml").write_text(description.replace('["alice"]', '["dave"]'))
    with pytest.raises(HarkitError, match=r"test_subjects \['dave'\] of harkit.toml are not among the subjects"):
        prepare(str(folder), use_cache=False)
