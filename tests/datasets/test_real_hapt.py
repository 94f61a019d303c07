"""The real HAPT archive, when `../shared/datasets` is beside the checkout."""

import numpy as np
import pytest

from harkit.datasets import prepare
from harkit.datasets.hapt import UCI_HAR_TEST_SUBJECTS
from tests.conftest import SHARED_HAPT

pytestmark = pytest.mark.skipif(not SHARED_HAPT.is_file(), reason="real HAPT archive not present")


def test_real_hapt_default_protocol():
    prepared = prepare("hapt", data_dir=SHARED_HAPT.parent)
    meta = prepared.meta
    assert meta["channels"] == ["acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z"]
    assert meta["window"] == 128 and meta["step"] == 64
    assert meta["classes"] == ["WALKING", "WALKING_UPSTAIRS", "WALKING_DOWNSTAIRS", "SITTING", "STANDING", "LAYING"]
    assert meta["subjects"]["test"] == list(UCI_HAR_TEST_SUBJECTS)
    assert len(meta["subjects"]["train"]) + len(meta["subjects"]["val"]) == 21
    assert prepared.train.x.shape[1:] == (128, 6)
    # counts measured once and pinned: a change in windowing shows up here
    assert len(prepared.test) == 2996
    assert len(prepared.train) + len(prepared.val) == 7415
    assert meta["counts"]["test"] == [496, 471, 420, 508, 556, 545]
    assert all(np.bincount(prepared.train.y, minlength=6) > 500)
