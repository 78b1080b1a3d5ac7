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


def test_equal_timestamps_keep_the_later_row_and_the_meter_counts_every_sample() -> None:
    live = LiveState(capacity=1)
    live.update(Batch.of([5, 5, 4], [0, 0, 0], [1.0, 2.0, 3.0]))
    assert live.get(0) == (5, 2.0) and live.n_samples == 3


def test_listeners_see_each_batch_after_it_is_folded_in_and_a_failing_one_is_isolated() -> None:
    live = LiveState(capacity=1)
    seen: list[tuple[int, float] | None] = []

    def broken(_batch: Batch) -> None:
        raise RuntimeError("a reader's bug")

    def reader(_batch: Batch) -> None:
        seen.append(live.get(0))

    live.listen(broken)
    live.listen(reader)
    live.update(Batch.of([5], [0], [1.0]))
    assert seen == [(5, 1.0)]  # the table already held the batch; the broken one did not stop it
    live.unlisten(reader)
    live.update(Batch.of([10], [0], [2.0]))
    assert seen == [(5, 1.0)] and live.get(0) == (10, 2.0)
