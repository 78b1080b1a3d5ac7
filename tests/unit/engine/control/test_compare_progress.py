"""`rackwatch fans compare` shows how far each policy's run has got."""

from __future__ import annotations

from rackwatch.engine.control.compare import compare_policies


def test_each_policy_reports_its_progress_to_the_end() -> None:
    seen: dict[str, list[tuple[int, int]]] = {}
    compare_policies(
        "small",
        2 * 3600 + 5 * 60,  # not a whole number of blocks
        policies=["auto", "always-high"],
        on_progress=lambda policy, done, total: seen.setdefault(policy, []).append((done, total)),
    )
    assert set(seen) == {"auto", "always-high"}
    for calls in seen.values():
        done = [d for d, _ in calls]
        assert done == sorted(done) and done[-1] == calls[-1][1] == 1500  # 2 h 5 min of 5 s steps
