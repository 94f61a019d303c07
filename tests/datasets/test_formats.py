"""Data as it comes: a UEA/UCR .ts pair and an .npz of windows, given by path where a dataset key goes."""

import numpy as np
import pytest

from harkit import HarkitError
from harkit.datasets import PrepareConfig, get_dataset, prepare
from harkit.datasets.uea import read_ts

HEADER = """# a toy problem written as aeon/sktime write .ts files
@problemName Toy
@timeStamps false
@missing {missing}
@univariate false
@dimensions 2
@equalLength {equal}
{length}@classLabel true walk sit run
@data
"""


def ts_file(path, rows, equal=True, missing=False):
    length = f"@seriesLength {len(rows[0][0])}\n" if equal else ""
    body = "".join(":".join(",".join(str(v) for v in dim) for dim in dims) + f":{label}\n" for *dims, label in rows)
    path.write_text(HEADER.format(missing=str(missing).lower(), equal=str(equal).lower(), length=length) + body)
    return path


def random_rows(rng, n, lengths, labels=("walk", "sit", "run")):
    rows = []
    for i in range(n):
        length = lengths[i % len(lengths)]
        rows.append((rng.normal(size=length).round(4), rng.normal(size=length).round(4), labels[i % len(labels)]))
    return rows


@pytest.mark.parametrize("lengths", [(8,), (5, 8, 6)], ids=["equal", "unequal"])
def test_ts_reader_against_the_rows_and_aeon(tmp_path, lengths):
    rng = np.random.default_rng(0)
    rows = random_rows(rng, 7, lengths)
    path = ts_file(tmp_path / "Toy_TRAIN.ts", rows, equal=len(lengths) == 1)
    x, labels, classes = read_ts(path)
    assert x.shape == (7, 8, 2) and classes == ["walk", "sit", "run"]
    assert labels.tolist() == [r[2] for r in rows]
    for i, (a, b, _) in enumerate(rows):
        assert np.allclose(x[i, : len(a), 0], a) and np.allclose(x[i, : len(b), 1], b)
        assert np.isnan(x[i, len(a) :]).all()  # shorter series end in missing values
    aeon = pytest.importorskip("aeon.datasets")
    theirs, their_labels = aeon.load_from_ts_file(str(path))
    assert their_labels.tolist() == labels.tolist()
    for i in range(7):
        series = np.asarray(theirs[i])  # [dimensions, length]
        assert np.allclose(series.T, x[i, : series.shape[1]])


def test_missing_values_and_mistakes(tmp_path):
    path = tmp_path / "m.ts"
    path.write_text(HEADER.format(missing="true", equal="true", length="") + "1,?,3:4,5,6:walk\n1,2,3:4,5,6:sit\n")
    x, _, _ = read_ts(path)
    assert np.isnan(x[0, 1, 0]) and np.isfinite(x[1]).all()
    path.write_text(HEADER.format(missing="false", equal="true", length="") + "1,2,3:4,5,6:walk\n1,2,3:4,1e400,6:sit\n")
    with pytest.raises(HarkitError, match=r"m\.ts: series 2 .*dimension 1: the value '1e400' is not a finite number"):
        read_ts(path)
    path.write_text(HEADER.format(missing="false", equal="true", length="") + "1,2,3:4,5,6:walk\n1,2,x:4,5,6:sit\n")
    with pytest.raises(HarkitError, match=r"series 2 .*dimension 0: the value 'x' is not a finite number"):
        read_ts(path)
    path.write_text(HEADER.format(missing="false", equal="true", length="") + "1,2,3:4,5:walk\n")
    with pytest.raises(HarkitError, match=r"the dimensions of series 1 have different lengths \[3, 2\]"):
        read_ts(path)
    path.write_text(HEADER.format(missing="false", equal="true", length="") + "1,2,3:4,5,6:jump\n")
    (tmp_path / "m_TRAIN.ts").write_text(path.read_text())
    (tmp_path / "m_TEST.ts").write_text(path.read_text())
    with pytest.raises(HarkitError, match=r"labels \['jump'\] are not among the classes"):
        get_dataset(str(tmp_path))


@pytest.mark.parametrize("lengths", [(12,), (9, 12, 10)], ids=["equal", "unequal"])
def test_ts_pair_is_a_dataset(tmp_path, lengths):
    rng = np.random.default_rng(1)
    folder = tmp_path / "Toy"
    folder.mkdir()
    equal = len(lengths) == 1
    ts_file(folder / "Toy_TRAIN.ts", random_rows(rng, 30, lengths), equal=equal)
    ts_file(folder / "Toy_TEST.ts", random_rows(rng, 12, lengths), equal=equal)
    dataset = get_dataset(str(folder), sampling_rate=50)
    assert dataset.classes == ["walk", "sit", "run"] and dataset.channels == ["dim_0", "dim_1"]
    assert dataset.window == 12 and dataset.rate == 50
    prepared = prepare(str(folder), PrepareConfig(val_fraction=0.2), cache_dir=tmp_path / "cache", sampling_rate=50)
    # the published test file is the test part; validation is a fifth of the training series
    assert len(prepared.test) == 12 and len(prepared.train) == 24 and len(prepared.val) == 6
    assert prepared.meta["counts"]["test"] == [4, 4, 4]
    assert np.isfinite(prepared.train.x).all()  # padding became the training mean
    assert sorted((tmp_path / "Toy").iterdir()) == [folder / "Toy_TEST.ts", folder / "Toy_TRAIN.ts"]
    with pytest.raises(HarkitError, match=r"takes the options \['name', 'sampling_rate'\], not \['rate'\]"):
        get_dataset(str(folder), rate=5)


def test_npz_of_windows(tmp_path):
    rng = np.random.default_rng(2)
    x = rng.normal(size=(50, 16, 3)).astype(np.float32)
    y = np.array(["sit", "walk"] * 25)
    subject = np.repeat(np.arange(1, 6), 10)
    path = tmp_path / "windows.npz"
    np.savez(path, x=x, y=y, subject=subject, channels=np.array(["ax", "ay", "az"]), sampling_rate=np.float64(25))
    dataset = get_dataset(str(path))
    assert dataset.classes == ["sit", "walk"] and dataset.channels == ["ax", "ay", "az"] and dataset.rate == 25
    prepared = prepare(str(path), PrepareConfig(val_fraction=0.25), cache_dir=tmp_path / "cache")
    assert prepared.meta["subjects"]["test"] == [5] and len(prepared.test) == 10
    assert len(prepared.train) + len(prepared.val) == 40 and len(prepared.val) == 10
    # integer labels indexing `classes`; no subjects: a seeded fifth of the windows is tested, with a warning
    np.savez(path, x=x, y=np.arange(50) % 2, classes=np.array(["a", "b"]))
    prepared = prepare(str(path), PrepareConfig(val_fraction=0.0), cache_dir=tmp_path / "cache")
    assert len(prepared.test) == 10 and get_dataset(str(path)).classes == ["a", "b"]


def test_npz_is_never_unpickled(tmp_path):
    path = tmp_path / "objects.npz"
    np.savez(path, x=np.zeros((4, 8, 1)), y=np.array(["a", None, "b", "a"], dtype=object))
    with pytest.raises(HarkitError, match=r"the array 'y' holds Python objects, which harkit never unpickles"):
        get_dataset(str(path))
    np.savez(path, x=np.full((4, 8, 1), np.inf), y=np.zeros(4, int))
    with pytest.raises(HarkitError, match=r"x\[0, 0, 0\] is not finite"):
        get_dataset(str(path))
    np.savez(path, x=np.zeros((4, 8)), y=np.zeros(4, int))
    with pytest.raises(HarkitError, match=r"x must be numbers of shape \[n, time, channels\]"):
        get_dataset(str(path))
    (tmp_path / "plain").mkdir()
    with pytest.raises(HarkitError, match="is not a dataset harkit can read"):
        get_dataset(str(tmp_path / "plain"))


def test_the_command_line_describes_and_refuses(tmp_path):
    from typer.testing import CliRunner

    from harkit.cli import app

    def invoke(*args):
        return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False, env={"COLUMNS": "200"})

    rng = np.random.default_rng(3)
    folder = tmp_path / "Toy"
    folder.mkdir()
    ts_file(folder / "Toy_TRAIN.ts", random_rows(rng, 9, (9, 12)), equal=False)
    ts_file(folder / "Toy_TEST.ts", random_rows(rng, 6, (9, 12)), equal=False)
    result = invoke("datasets", "--describe", folder)
    assert result.exit_code == 0, result.output
    assert (
        "15 recordings, 1 Hz, window 12" in result.output and "Toy_TEST.ts (6 series; 9 to train on)" in result.output
    )
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "harkit.toml").write_text('sampling_rate = 50\nchannels = ["a"]\nlabel_column = "l"\nwindow = "big"\n')
    result = invoke("prepare", bad)
    assert result.exit_code == 2 and "window must be an integer, got 'big'" in result.output
    assert "Traceback" not in result.output
