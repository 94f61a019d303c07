"""Each reader against a fixture in its exact raw format."""

import functools
import operator

import numpy as np
import pytest

from harkit.datasets import PrepareConfig, SubjectSplit, get_dataset, list_datasets, prepare, sensor_groups
from tests.fixtures import raw

NO_VAL = dict(val_fraction=0.0, normalize=False)


def everything(prepared):
    from harkit.datasets import Windows

    parts = [prepared.train, prepared.val, prepared.test]
    return Windows.concatenate(parts, prepared.train.x.shape[1], prepared.train.x.shape[2])


def test_registry_lists_six_datasets_with_facts():
    assert list_datasets() == ["dsads", "hapt", "opportunity", "pamap2", "uci-har", "wisdm"]
    expected = {
        "uci-har": (9, 6, 128),
        "wisdm": (3, 6, 200),
        "pamap2": (36, 12, 171),
        "opportunity": (113, 17, 30),
        "dsads": (45, 19, 125),
        "hapt": (6, 6, 128),
    }
    for key, (channels, classes, window) in expected.items():
        dataset = get_dataset(key)
        assert (len(dataset.channels), len(dataset.classes), dataset.window) == (channels, classes, window)
        assert dataset.source.url.startswith("https://")
        assert len(set(dataset.channels)) == len(dataset.channels)


def test_sensor_groups_follow_channel_names():
    assert sensor_groups(get_dataset("hapt").channels) == [(0, 1, 2), (3, 4, 5)]
    assert len(sensor_groups(get_dataset("pamap2").channels)) == 12
    assert len(sensor_groups(get_dataset("dsads").channels)) == 15


def test_hapt_fixture_windows_labels_and_split(hapt_dir):
    prepared = prepare("hapt", PrepareConfig(window=64, overlap=0.5, **NO_VAL), data_dir=hapt_dir)
    # walking 200 and sitting 200 (user 1), standing 150 and laying 200 (user 2), upstairs 120 and
    # downstairs 160 (user 3): 5 + 5 + 3 + 5 + 2 + 4 windows; transitions are not windowed
    assert len(prepared.train) == 16 and len(prepared.test) == 8
    assert prepared.meta["subjects"] == {"train": [1, 3], "val": [], "test": [2]}
    assert prepared.meta["counts"]["train"] == [5, 2, 4, 5, 0, 0]
    assert prepared.meta["counts"]["test"] == [0, 0, 0, 0, 3, 5]
    x = prepared.train.x
    # acc_x holds the sample index, so windows are consecutive samples starting at the segment start
    assert x[0, :, 0].tolist() == list(range(10, 74))
    assert np.all(np.diff(x[:, :, 0], axis=1) == 1)
    assert (x[:, :, 1] == prepared.train.subject[:, None]).all()
    assert (x[:, :, 3] == -x[:, :, 0]).all()  # gyro columns are read and joined


def test_hapt_transitions_option_adds_six_classes(hapt_dir):
    prepared = prepare("hapt", PrepareConfig(window=32, overlap=0.0, **NO_VAL), data_dir=hapt_dir, transitions=True)
    assert len(prepared.meta["classes"]) == 12
    counts = np.add(prepared.meta["counts"]["train"], prepared.meta["counts"]["test"])
    assert counts[6] == 1 and counts[7] == 0  # STAND_TO_SIT has 50 samples, SIT_TO_STAND 31


def test_uci_har_reads_all_nine_signal_files(tmp_path):
    root = raw.write_uci_har(tmp_path)
    prepared = prepare("uci-har", PrepareConfig(**NO_VAL), data_dir=root)
    assert prepared.train.x.shape == (4, 128, 9) and prepared.test.x.shape == (3, 128, 9)
    assert prepared.train.y.tolist() == [0, 3, 5, 1]
    assert prepared.train.subject.tolist() == [1, 1, 3, 3]
    assert prepared.test.subject.tolist() == [2, 2, 2]
    for channel in range(9):  # body_gyro x, y and z included: each file lands in its own channel
        assert prepared.train.x[1, 0, channel] == channel * 1000 + 128
    assert prepared.meta["channels"][3:6] == ["body_gyro_x", "body_gyro_y", "body_gyro_z"]
    with pytest.raises(Exception, match="already windowed"):
        prepare("uci-har", PrepareConfig(window=64), data_dir=root)


def test_wisdm_cleans_malformed_records(tmp_path):
    root, clean = raw.write_wisdm(tmp_path)
    prepared = prepare("wisdm", PrepareConfig(window=20, overlap=0.5, **NO_VAL), data_dir=root)
    data = everything(prepared)
    expected = {key: (n - 20) // 10 + 1 for key, n in clean.items()}
    classes = get_dataset("wisdm").classes
    for (user, activity), count in expected.items():
        mask = (data.subject == user) & (data.y == classes.index(activity))
        assert mask.sum() == count, (user, activity)
    assert prepared.meta["subjects"]["test"] == [31]
    # x holds the record index + 0.5 and y the user + 0.25: nothing from broken lines slipped in
    assert (data.x[:, :, 1] == data.subject[:, None] + 0.25).all()
    assert np.all(np.diff(data.x[:, :, 0], axis=1) == 1)


def test_pamap2_downsamples_fills_gaps_and_drops_transients(tmp_path):
    root = raw.write_pamap2(tmp_path)
    prepared = prepare("pamap2", PrepareConfig(**NO_VAL), data_dir=root)
    data = everything(prepared)
    assert data.x.shape[1:] == (171, 36)
    assert not np.isnan(data.x).any()
    # at 33.3 Hz: subject 101 lying 400 samples -> 3 windows, walking 300 -> 2; 105: 400 -> 3, 200 -> 1;
    # 106 rope jumping 434 -> 4 (step 86)
    assert prepared.meta["step"] == 86
    counts = {(s, c): int(((data.subject == s) & (data.y == c)).sum()) for s in (101, 105, 106) for c in (0, 3, 4, 11)}
    assert counts[(101, 0)] == 3 and counts[(101, 3)] == 2
    assert counts[(105, 0)] == 3 and counts[(105, 4)] == 1
    assert counts[(106, 11)] == 4
    assert prepared.meta["subjects"]["test"] == [105]
    assert prepared.meta["channels"][:3] == ["hand_acc16_x", "hand_acc16_y", "hand_acc16_z"]
    # channel hand_acc16_x is column 4 of the raw table, whose value is 4 + sin(t) + subject
    first = data.x[data.subject == 106][0, :, 0]
    t = np.arange(0, 171 * 3, 3)
    outside_gap = (t < 200) | (t >= 230)
    assert np.allclose(first[outside_gap] - 106 - 4, np.sin(t[outside_gap] / 10), atol=2e-3)
    # inside the 100 Hz gap (samples 200-229) values are interpolated between its edges
    inside = first[~outside_gap]
    assert inside.min() >= min(first[66], first[77]) - 1e-3 and inside.max() <= max(first[66], first[77]) + 1e-3


def test_opportunity_gestures_split_by_recording(tmp_path):
    root = raw.write_opportunity(tmp_path)
    prepared = prepare("opportunity", PrepareConfig(**NO_VAL), data_dir=root)
    assert prepared.train.x.shape[1:] == (30, 113)
    assert not np.isnan(prepared.train.x).any() and not np.isnan(prepared.test.x).any()
    classes = get_dataset("opportunity").classes
    # test = S2-ADL4 and S3-ADL5: open door 1 (60 -> 3), clean table (45 -> 2), close door 1 (30 -> 1)
    test_counts = np.bincount(prepared.test.y, minlength=17)
    assert test_counts[classes.index("Open Door 1")] == 3
    assert test_counts[classes.index("Clean Table")] == 2
    assert test_counts[classes.index("Close Door 1")] == 1
    assert len(prepared.test) == 6
    # train: open door 90 -> 5, close door 60 -> 3, drink 75 -> 4, toggle 45 -> 2
    assert len(prepared.train) == 14
    with_null = prepare("opportunity", PrepareConfig(**NO_VAL), data_dir=root, null_class=True)
    assert with_null.meta["classes"][0] == "Null" and len(with_null.meta["classes"]) == 18
    assert len(with_null.train) > len(prepared.train)
    locomotion = prepare("opportunity", PrepareConfig(**NO_VAL), data_dir=root, task="locomotion")
    assert locomotion.meta["classes"] == ["Stand", "Walk", "Sit", "Lie"]


def test_opportunity_whole_missing_sensor_becomes_training_mean(tmp_path):
    root = raw.write_opportunity(tmp_path)
    prepared = prepare("opportunity", PrepareConfig(val_fraction=0.0), data_dir=root)
    back = prepared.meta["channels"].index("imu_BACK_acc_x")
    s1 = (prepared.train.session == "ADL1") & (prepared.train.subject == 1)
    assert s1.sum() == 8
    assert (prepared.train.x[s1][:, :, back] == 0).all()


def test_dsads_joins_segments_per_activity_and_subject(tmp_path):
    root = raw.write_dsads(tmp_path)
    prepared = prepare("dsads", PrepareConfig(**NO_VAL), data_dir=root)
    # 4 files of 125 samples -> 500 samples; window 125, step 75 -> 6 windows per activity and subject
    assert len(prepared.train) == 2 * 2 * 6 and len(prepared.test) == 2 * 6
    assert prepared.meta["subjects"]["test"] == [7]
    x = prepared.train.x
    # second window starts at sample 75 of file 1 and ends in file 2 (value encodes the file)
    assert x[1, 0, 0] == pytest.approx(100 + 10 + 1) and x[1, -1, 0] == pytest.approx(100 + 10 + 2)


def test_loso_and_kfold_cover_every_subject_once(hapt_dir):
    seen = []
    for fold in range(3):
        prepared = prepare(
            "hapt", PrepareConfig(window=64, split=SubjectSplit("loso", fold=fold), **NO_VAL), data_dir=hapt_dir
        )
        seen += prepared.meta["subjects"]["test"]
        assert not set(prepared.meta["subjects"]["test"]) & set(prepared.meta["subjects"]["train"])
    assert sorted(seen) == [1, 2, 3]
    folds = [
        prepare(
            "hapt", PrepareConfig(window=64, split=SubjectSplit("kfold", folds=3, fold=f), **NO_VAL), data_dir=hapt_dir
        ).meta["subjects"]["test"]
        for f in range(3)
    ]
    assert sorted(functools.reduce(operator.iadd, folds, [])) == [1, 2, 3]


def test_validation_comes_from_training_subjects(hapt_dir):
    prepared = prepare("hapt", PrepareConfig(window=64, val_fraction=0.5, normalize=False), data_dir=hapt_dir)
    subjects = prepared.meta["subjects"]
    assert len(subjects["val"]) == 1 and len(subjects["train"]) == 1
    assert not set(subjects["val"]) & set(subjects["test"])


def test_normalisation_uses_training_statistics_only(hapt_dir):
    prepared = prepare("hapt", PrepareConfig(window=64, val_fraction=0.0), data_dir=hapt_dir)
    flat = prepared.train.x.reshape(-1, 6)
    assert np.allclose(flat.mean(axis=0), 0, atol=1e-4)
    assert np.allclose(flat.std(axis=0), 1, atol=1e-3)
    assert abs(prepared.test.x[:, :, 1].mean()) > 0.1  # the test subject differs; it was not re-centred


def test_errors_name_the_problem(hapt_dir):
    with pytest.raises(Exception, match="longer than every labelled segment"):
        prepare("hapt", PrepareConfig(window=1000), data_dir=hapt_dir)
    with pytest.raises(Exception, match="valid names: dsads, hapt"):
        get_dataset("hapd")
    with pytest.raises(Exception, match="not in the data"):
        prepare("hapt", PrepareConfig(window=64, split=SubjectSplit("subjects", (99,))), data_dir=hapt_dir)
    with pytest.raises(Exception, match="unknown channels"):
        prepare("hapt", PrepareConfig(window=64, channels=("acc_q",)), data_dir=hapt_dir)


def test_channel_subset(hapt_dir):
    prepared = prepare("hapt", PrepareConfig(window=64, channels=("gyro_x", "acc_x"), **NO_VAL), data_dir=hapt_dir)
    assert prepared.meta["channels"] == ["gyro_x", "acc_x"]
    assert (prepared.train.x[:, :, 0] == -prepared.train.x[:, :, 1]).all()
