import numpy as np
import pytest

import rackwatch
from rackwatch.model import Batch, SeriesRegistry, entity


def test_batch_rejects_columns_of_different_lengths() -> None:
    with pytest.raises(ValueError, match="differ in length"):
        Batch.of([1, 2], [0], [1.0, 2.0])


def test_batch_rejects_wrong_dtypes() -> None:
    with pytest.raises(TypeError):
        Batch(np.zeros(1, np.int32), np.zeros(1, np.int32), np.zeros(1))  # type: ignore[arg-type]


def test_from_grid_is_time_major_and_concat_keeps_order() -> None:
    a = Batch.from_grid([0, 5], [3, 4], [[1.0, 2.0], [3.0, np.nan]])
    b = Batch.of([10], [3], [7.0])
    both = Batch.concat([a, b])
    assert both.ts.tolist() == [0, 0, 5, 5, 10]
    assert both.series.tolist() == [3, 4, 3, 4, 3]
    assert np.isnan(both.value[3]) and both.value[4] == 7.0


def test_registry_ids_are_dense_and_stable() -> None:
    reg = SeriesRegistry()
    ids = reg.intern_many([("a", "m"), ("b", "m"), ("a", "m")])
    assert ids.tolist() == [0, 1, 0]
    again = SeriesRegistry(reg.keys())
    assert again.get("b", "m") == 1 and len(again) == 2


@pytest.mark.parametrize(
    ("path", "pattern", "expected"),
    [
        ("c01/r01/s01", "c01/*/s01", True),
        ("c01/r01/s01/fan1", "c01/*/s01", False),
        ("c01/r01/s01/fan1", "**/fan1", True),
        ("c01/r01/s01/fan1", "c01/**", True),
        ("c01", "c01/**", True),
        ("c02/r01/s01", "c01/**", False),
        ("c01/r01/s10", "c01/r01/s1?", True),
    ],
)
def test_entity_glob(path: str, pattern: str, expected: bool) -> None:
    assert entity.matches(path, pattern) is expected


def test_entity_validate_says_which_segment_is_wrong() -> None:
    with pytest.raises(ValueError, match="'s 1'"):
        entity.validate("c01/s 1")
    assert entity.parent("c01/r01") == "c01" and entity.parent("c01") is None


def test_package_exports_what_it_declares() -> None:
    for name in rackwatch.__all__:
        assert hasattr(rackwatch, name), name
