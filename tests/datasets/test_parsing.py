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


@pytest.mark.parametrize("value", ["1e400", "inf", "-Infinity", "3e39"])
def test_a_value_too_large_for_a_float_names_the_file_row_and_column(tmp_path, value):
    path = tmp_path / "acc_exp01_user01.txt"
    path.write_text(f"1 2 3\n4 5 6\n7 {value} 9\n")
    with pytest.raises(HarkitError, match=rf"acc_exp01_user01\.txt, line 3, column 2: {value} is not a finite number"):
        read_space_separated(path, columns=3, single_space=True)
    path.write_text("1 NaN 3\n")  # NaN marks a gap (PAMAP2, OPPORTUNITY): allowed, filled later
    assert np.isnan(read_space_separated(path, columns=3)[0, 1])
