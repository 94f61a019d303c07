"""Each reader against a fixture in its exact raw format."""

import functools
import logging
import operator

import numpy as np
import pytest

from harkit import HarkitError
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
    # channel hand_acc16_x is column 4 of the raw table, whose value is 10 * 4 + sin(t) + subject
    first = data.x[data.subject == 106][0, :, 0]
    t = np.arange(0, 171 * 3, 3)
    outside_gap = (t < 200) | (t >= 230)
    assert np.allclose(first[outside_gap] - 106 - 40, np.sin(t[outside_gap] / 10), atol=2e-3)
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


def warnings_of(caplog):
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def test_hapt_labels_outside_the_published_set_are_counted(hapt_dir, caplog):
    labels = hapt_dir / "HAPT Data Set" / "RawData" / "labels.txt"
    labels.write_text(labels.read_text() + "1 1 0 460 470\n2 2 99 400 420\n3 3 99 400 410\n")
    prepared = prepare("hapt", PrepareConfig(window=64, overlap=0.5, **NO_VAL), data_dir=hapt_dir)
    assert any("3 rows have activity ids outside HAPT's published 1..12 (0, 99)" in m for m in warnings_of(caplog))
    assert len(prepared.train) == 16 and len(prepared.test) == 8  # their samples stay unlabelled


def test_pamap2_unpublished_activity_ids_are_counted(tmp_path, caplog):
    root = raw.write_pamap2(tmp_path)
    path = root / "PAMAP2_Dataset" / "Protocol" / "subject106.dat"
    lines = path.read_text().splitlines()
    for i in range(10):  # activityIDs 14 and 99 do not exist
        fields = lines[i].split(" ")
        fields[1] = "14" if i < 6 else "99"
        lines[i] = " ".join(fields)
    path.write_text("\n".join(lines) + "\n")
    prepare("pamap2", PrepareConfig(**NO_VAL), data_dir=root)
    assert any(
        "subject106.dat: 10 rows have activityIDs PAMAP2 does not publish (14, 99)" in m for m in warnings_of(caplog)
    )


def test_opportunity_unpublished_codes_are_counted(tmp_path, caplog):
    root = raw.write_opportunity(tmp_path)
    path = root / "OpportunityUCIDataset" / "dataset" / "S1-Drill.dat"
    table = np.loadtxt(path)
    table[:5, 249] = 999999
    np.savetxt(path, table, fmt="%.6g")
    prepare("opportunity", PrepareConfig(**NO_VAL), data_dir=root)
    assert any(
        "S1-Drill.dat: 5 rows have gestures labels OPPORTUNITY does not publish (999999)" in m
        for m in warnings_of(caplog)
    )


def test_wisdm_unpublished_activities_are_counted(tmp_path, caplog):
    root, _ = raw.write_wisdm(tmp_path)
    path = root / "WISDM_ar_v1.1" / "WISDM_ar_v1.1_raw.txt"
    path.write_text(path.read_text() + "2,Flying,1400000000,1.0,2.0,3.0;\n2,Flying,1400000001,1.0,2.0,3.0;\n")
    prepare("wisdm", PrepareConfig(window=20, overlap=0.5, **NO_VAL), data_dir=root)
    assert any("2 records have activities WISDM does not publish (Flying)" in m for m in warnings_of(caplog))


def test_dsads_unknown_activity_folders_are_reported(tmp_path, caplog):
    root = raw.write_dsads(tmp_path)
    extra = root / "data" / "a20" / "p1"
    extra.mkdir(parents=True)
    (extra / "s01.txt").write_text((root / "data" / "a01" / "p1" / "s01.txt").read_text())
    prepared = prepare("dsads", PrepareConfig(**NO_VAL), data_dir=root)
    assert any("folders a20 are not among DSADS's 19 published activities" in m for m in warnings_of(caplog))
    assert len(prepared.train) == 2 * 2 * 6


# The raw column each output channel must come from, as SPEC.md's appendix publishes them (not the readers' code).
PAMAP2_COLUMNS = [*range(4, 16), *range(21, 33), *range(38, 50)]
OPPORTUNITY_COLUMNS = [*range(1, 46), *range(50, 59), *range(63, 72), *range(76, 85), *range(89, 98), *range(102, 134)]


def test_pamap2_every_channel_comes_from_its_published_column(tmp_path):
    root = raw.write_pamap2(tmp_path)
    data = everything(prepare("pamap2", PrepareConfig(**NO_VAL), data_dir=root))
    # fixture: column c holds 10 c + sin(t / 10) + subject, so each channel names its column
    columns = np.rint((data.x - data.subject[:, None, None]) / 10)
    assert len(PAMAP2_COLUMNS) == 36
    for channel, column in enumerate(PAMAP2_COLUMNS):
        assert (columns[:, :, channel] == column).all(), get_dataset("pamap2").channels[channel]
    names = get_dataset("pamap2").channels
    assert names[6:9] == ["hand_gyro_x", "hand_gyro_y", "hand_gyro_z"] and names[12] == "chest_acc16_x"


def test_opportunity_every_channel_comes_from_its_published_column(tmp_path):
    root = raw.write_opportunity(tmp_path)
    data = everything(prepare("opportunity", PrepareConfig(**NO_VAL), data_dir=root))
    # fixture: column c holds c plus noise of sd 0.1; S1-ADL1 lacks the BACK IMU (filled with 0), so leave it out
    keep = ~((data.subject == 1) & (data.session == "ADL1"))
    assert keep.sum() > 0 and len(OPPORTUNITY_COLUMNS) == 113
    columns = np.rint(data.x[keep])
    for channel, column in enumerate(OPPORTUNITY_COLUMNS):
        assert (columns[:, :, channel] == column).all(), get_dataset("opportunity").channels[channel]
    names = get_dataset("opportunity").channels
    assert names[36:39] == ["imu_BACK_acc_x", "imu_BACK_acc_y", "imu_BACK_acc_z"]
    assert names[45] == "imu_RUA_acc_x" and names[81] == "imu_L-SHOE_Eu_x" and names[97] == "imu_R-SHOE_Eu_x"


def test_dsads_every_channel_comes_from_its_column(tmp_path):
    root = raw.write_dsads(tmp_path)
    data = everything(prepare("dsads", PrepareConfig(**NO_VAL), data_dir=root))
    # fixture: column c holds (activity, subject, file) digits + c / 100
    columns = np.rint((data.x - np.floor(data.x)) * 100)
    for channel in range(45):
        assert (columns[:, :, channel] == channel).all(), channel
    names = get_dataset("dsads").channels
    assert names[:3] == ["torso_acc_x", "torso_acc_y", "torso_acc_z"] and names[9] == "right_arm_acc_x"


def test_hapt_and_wisdm_every_channel_comes_from_its_column(hapt_dir, tmp_path):
    x = everything(prepare("hapt", PrepareConfig(window=64, **NO_VAL), data_dir=hapt_dir))
    index, subject = x.x[:, :, 0], x.subject[:, None]
    experiment = subject  # the fixture's experiment n is user n's
    expected = [index, subject, 10 * experiment, -index, -subject - 0.25, -10 * experiment - 0.5]
    for channel, values in enumerate(expected):
        assert np.allclose(x.x[:, :, channel], values), get_dataset("hapt").channels[channel]
    root, _ = raw.write_wisdm(tmp_path / "wisdm")
    w = everything(prepare("wisdm", PrepareConfig(window=20, overlap=0.5, **NO_VAL), data_dir=root))
    record = w.x[:, :, 0] - 0.5  # x = i.5, y = user.25, z = -i.125
    assert np.allclose(w.x[:, :, 1], w.subject[:, None] + 0.25)
    assert np.allclose(w.x[:, :, 2], -record - 0.125)


def test_normalisation_without_validation_uses_training_statistics(hapt_dir):
    prepared = prepare("hapt", PrepareConfig(window=64, val_fraction=0.0), data_dir=hapt_dir)
    raw_train = prepare("hapt", PrepareConfig(window=64, val_fraction=0.0, normalize=False), data_dir=hapt_dir)
    assert len(prepared.val) == 0 and prepared.val.x.shape[1:] == (64, 6)
    flat = np.asarray(raw_train.train.x, np.float64).reshape(-1, 6)
    np.testing.assert_allclose(prepared.meta["mean"], flat.mean(axis=0), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(prepared.meta["std"], flat.std(axis=0), rtol=1e-4)
    test_flat = np.asarray(raw_train.test.x, np.float64).reshape(-1, 6)
    expected = (test_flat - flat.mean(axis=0)) / flat.std(axis=0)
    np.testing.assert_allclose(np.asarray(prepared.test.x).reshape(-1, 6), expected, rtol=1e-4, atol=1e-4)


def test_values_too_large_for_a_float_name_the_file_and_line(tmp_path):
    root = raw.write_dsads(tmp_path / "dsads")
    path = root / "data" / "a02" / "p7" / "s03.txt"
    lines = path.read_text().splitlines()
    lines[9] = "1e400," + lines[9].split(",", 1)[1]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(HarkitError, match=r"a02/p7/s03\.txt, line 10, column 1: the value is not a finite number"):
        prepare("dsads", PrepareConfig(**NO_VAL), data_dir=root)
    wisdm, _ = raw.write_wisdm(tmp_path / "wisdm")
    path = wisdm / "WISDM_ar_v1.1" / "WISDM_ar_v1.1_raw.txt"
    path.write_text(path.read_text() + "2,Sitting,1400000000,inf,2.0,3.0;\n")
    with pytest.raises(HarkitError, match=r"record of user 2 at timestamp 1400000000 holds a value that is not"):
        prepare("wisdm", PrepareConfig(window=20, **NO_VAL), data_dir=wisdm)
    hapt = raw.write_hapt(tmp_path / "hapt")
    path = hapt / "HAPT Data Set" / "RawData" / "gyro_exp02_user02.txt"
    lines = path.read_text().splitlines()
    lines[4] = lines[4].rsplit(" ", 1)[0] + " 1e400"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(HarkitError, match=r"gyro_exp02_user02\.txt, line 5, column 3: 1e400 is not a finite number"):
        prepare("hapt", PrepareConfig(window=64, **NO_VAL), data_dir=hapt)
