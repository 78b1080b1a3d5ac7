import numpy as np

from rackwatch.engine.live import LiveState
from rackwatch.model import Batch


def test_latest_value_wins_whatever_the_row_order() -> None:
    live = LiveState(capacity=2)
    live.update(Batch.of([10, 5, 7], [0, 0, 3], [1.0, 2.0, np.nan]))
    assert live.get(0) == (10, 1.0)
    ts, value = live.get(3) or (0, 0.0)
    assert ts == 7 and np.isnan(value)  # a NULL reading is a real (NaN) latest value
    live.update(Batch.of([8], [0], [9.0]))  # older than what we have: ignored
    assert live.get(0) == (10, 1.0)
    assert live.get(1) is None and live.get(99) is None
