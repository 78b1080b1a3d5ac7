import math

import numpy as np
import pytest

from rackwatch.model.entity import validate
from rackwatch.model.series import SeriesRegistry
from rackwatch.sources.readings import Reading, segment, to_batch


def test_readings_become_one_batch_at_the_collection_instant_nan_kept_infinity_left_out() -> None:
    registry = SeriesRegistry()
    batch = to_batch(
        [
            Reading("host/a", "uptime_seconds", 5.0),
            Reading("host/a", "memory_used_bytes", math.nan),  # answered nothing this time
            Reading("host/a/gpu0", "gpu_power_watts", math.inf),  # never a number
        ],
        registry,
        1_000,
    )
    assert batch.ts.tolist() == [1_000, 1_000]
    assert [registry.keys()[i] for i in batch.series.tolist()] == [
        ("host/a", "uptime_seconds"),
        ("host/a", "memory_used_bytes"),
    ]
    assert batch.value[0] == 5.0 and np.isnan(batch.value[1])
    assert len(to_batch([], registry, 2_000)) == 0


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("/", "unnamed"),
        ("/boot/efi", "boot_efi"),
        ("Package id 0", "Package_id_0"),
        ("wlp0s20f3", "wlp0s20f3"),
        ("a" * 200, "a" * 64),
        ("é/€", "unnamed"),
    ],
)
def test_a_free_form_name_becomes_one_valid_entity_segment(name: str, expected: str) -> None:
    assert segment(name) == expected
    assert validate(f"host/h/{segment(name)}")  # a valid entity path
