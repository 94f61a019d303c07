import numpy as np
import pytest

from harkit import HarkitError
from harkit.datasets.parsing import map_files, read_space_separated


def test_map_files_keeps_order_and_raises_the_first_error(tmp_path):
    paths = []
    for i in range(6):
        path = tmp_path / f"{i}.txt"
        path.write_text("\n".join(f"{i} {row}.5" for row in range(i + 1)) + "\n")
        paths.append(path)
    tables = map_files(lambda p: read_space_separated(p, columns=2, single_space=True), paths)
    assert [len(t) for t in tables] == [1, 2, 3, 4, 5, 6]
    assert [t[0, 0] for t in tables] == [0, 1, 2, 3, 4, 5]
    np.testing.assert_array_equal(tables[2][:, 1], [0.5, 1.5, 2.5])

    paths[3].write_text("1 2 3\n")
    with pytest.raises(HarkitError, match=r"3\.txt has 3 columns, expected 2"):
        map_files(lambda p: read_space_separated(p, columns=2), paths)
