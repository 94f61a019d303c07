"""HAPT's raw recordings as a folder of CSV files with a labels_file of intervals, against harkit's HAPT reader."""

import zipfile

import numpy as np
import pandas as pd
import pytest

from harkit.datasets import get_dataset
from harkit.datasets.hapt import BASIC
from tests.conftest import SHARED_HAPT

pytestmark = pytest.mark.skipif(not SHARED_HAPT.is_file(), reason="real HAPT archive not present")
EXPERIMENTS = (1, 2, 3, 4)  # users 1 and 2, two experiments each


def test_hapt_as_a_folder_labelled_by_intervals(tmp_path):
    """labels.txt gives inclusive sample ranges; as seconds they are [start / 50, (end + 1) / 50)."""
    folder = tmp_path / "hapt-folder"
    folder.mkdir()
    with zipfile.ZipFile(SHARED_HAPT) as archive:
        names = {n.split("/")[-1]: n for n in archive.namelist()}
        labels = pd.read_csv(archive.open(names["labels.txt"]), sep=" ", header=None, names=["e", "u", "a", "s", "f"])
        labels = labels[labels.e.isin(EXPERIMENTS) & (labels.a <= len(BASIC))]
        for (experiment, user), _ in labels.groupby(["e", "u"]):
            stem = f"exp{experiment:02d}_user{user:02d}.txt"
            acc = pd.read_csv(archive.open(names[f"acc_{stem}"]), sep=" ", header=None, names=["ax", "ay", "az"])
            gyro = pd.read_csv(archive.open(names[f"gyro_{stem}"]), sep=" ", header=None, names=["gx", "gy", "gz"])
            (folder / f"user{user:02d}").mkdir(exist_ok=True)
            pd.concat([acc, gyro], axis=1).to_csv(folder / f"user{user:02d}" / f"exp{experiment:02d}.csv", index=False)
    intervals = pd.DataFrame(
        {
            "recording": [f"user{u:02d}/exp{e:02d}.csv" for e, u in zip(labels.e, labels.u, strict=True)],
            "start": labels.s / 50,
            "end": (labels.f + 1) / 50,
            "label": [BASIC[a - 1] for a in labels.a],
        }
    )
    intervals.to_csv(folder / "labels.csv", index=False)
    (folder / "harkit.toml").write_text(
        'sampling_rate = 50\nchannels = ["ax", "ay", "az", "gx", "gy", "gz"]\nlabels_file = "labels.csv"\n'
        'subject_pattern = "user(\\\\d+)"\n' + f"classes = {BASIC!r}\n".replace("'", '"')
    )
    ours = {(r.subject, r.session): r for r in get_dataset(str(folder)).read(folder)}
    hapt = get_dataset("hapt")
    from harkit.datasets.download import default_cache_dir, locate

    root, _ = locate(hapt, SHARED_HAPT.parent, default_cache_dir(), allow_download=False)
    theirs = [r for r in hapt.read(root) if int(r.session[3:]) in EXPERIMENTS]
    assert len(ours) == len(theirs) == len(EXPERIMENTS)
    for reference in theirs:
        mine = ours[(reference.subject, f"user{reference.subject:02d}/{reference.session}.csv")]
        assert np.array_equal(mine.labels, reference.labels)  # every sample, every boundary
        assert np.allclose(mine.signals, reference.signals)
