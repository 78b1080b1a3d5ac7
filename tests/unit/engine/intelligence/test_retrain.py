"""The retrainer: trains from a real store, hands the model over, survives failures, and a
restart loads the last model."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from rackwatch.app import MODELS_DIR, build_retrainer
from rackwatch.engine.anomaly import ResidualModel
from rackwatch.engine.intelligence.models import ModelStore
from rackwatch.engine.intelligence.retrain import Retrainer
from rackwatch.errors import ConfigError, StoreError
from rackwatch.model import SeriesRegistry
from rackwatch.settings import load_settings
from rackwatch.sources.twin import TwinSource
from rackwatch.store.base import Latest, Query, QueryResult
from rackwatch.store.duckdb import DuckDBStore
from rackwatch.twin import Twin

T0 = 1_767_225_600_000
STEPS_PER_HOUR = 720


class FakeUser:
    """Any object with `use_model`: records what it was given."""

    def __init__(self) -> None:
        self.models: list[tuple[ResidualModel, str, int]] = []

    def use_model(self, model: ResidualModel, version: str, trained_at_ms: int) -> None:
        self.models.append((model, version, trained_at_ms))


class Room:
    """A DuckDB store filled by the `small` twin (5 servers, 5-s steps) on demand."""

    def __init__(self, path: Path) -> None:
        self.registry = SeriesRegistry()
        self.store = DuckDBStore(
            path, self.registry, wal_sync_seconds=0, clock=lambda: T0 + 86_400_000
        )
        self.source = TwinSource(Twin("small", seed=1, start_ms=T0), self.registry)

    def run(self, steps: int) -> None:
        batch, _ = self.source.read(steps)
        self.store.write(batch)


@pytest.fixture
def room(tmp_path: Path) -> Iterator[Room]:
    room = Room(tmp_path / "data")
    yield room
    room.store.close()


async def until(condition: Callable[[], bool], timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def test_it_trains_from_the_store_hands_over_and_a_restart_loads_the_last_model(
    tmp_path: Path, room: Room
) -> None:
    room.run(STEPS_PER_HOUR + 60)  # just over the hour of history wanted
    models = ModelStore(tmp_path / "models")

    async def first() -> tuple[FakeUser, Retrainer]:
        user = FakeUser()
        retrainer = Retrainer(room.store, models, user, interval_s=3600)
        task = asyncio.create_task(retrainer.run())
        await until(lambda: bool(user.models))
        await until(lambda: retrainer.status()["next_due_ms"] is not None)
        status = retrainer.status()
        await stop(task)
        return user, status

    user, status = asyncio.run(first())
    [(model, version, trained_at_ms)] = user.models
    assert version == "v1" and len(model.entities) == 5
    assert status["version"] == "v1" and status["trained_at_ms"] == trained_at_ms
    assert status["n_devices"] == 5 and status["n_versions"] == 1 and status["n_trainings"] == 1
    assert status["last_error"] is None and status["last_outcome"] == "trained v1"
    assert status["trained_from_ms"] == T0
    assert status["trained_to_ms"] == T0 + (STEPS_PER_HOUR + 59) * 5000
    assert status["next_due_ms"] >= trained_at_ms + 3_599_000
    [saved] = models.versions()
    assert saved.n_devices == 5 and saved.trained_at_ms == trained_at_ms

    async def restart() -> tuple[FakeUser, dict[str, object]]:
        user = FakeUser()
        retrainer = Retrainer(room.store, ModelStore(tmp_path / "models"), user, interval_s=3600)
        task = asyncio.create_task(retrainer.run())
        await until(lambda: retrainer.status()["next_due_ms"] is not None)
        await asyncio.sleep(0.05)  # it would train now if it were due
        status = retrainer.status()
        await stop(task)
        return user, status

    user2, status2 = asyncio.run(restart())
    [(loaded, version2, at2)] = user2.models  # loaded, not retrained: it is not due yet
    assert (version2, at2) == ("v1", trained_at_ms) and loaded.entities == model.entities
    assert status2["last_outcome"] == "loaded v1" and status2["n_trainings"] == 0
    assert status2["next_due_ms"] == pytest.approx(trained_at_ms + 3_600_000, abs=1000)


def test_the_first_training_waits_for_an_hour_of_history(tmp_path: Path, room: Room) -> None:
    room.run(STEPS_PER_HOUR // 2)

    async def main() -> tuple[str, FakeUser, Retrainer]:
        user = FakeUser()
        retrainer = Retrainer(
            room.store, ModelStore(tmp_path / "models"), user, interval_s=3600, retry_s=0.05
        )
        task = asyncio.create_task(retrainer.run())
        await until(lambda: retrainer.last_outcome.startswith("30 min of history"))
        waiting = retrainer.last_outcome
        assert not user.models
        await asyncio.to_thread(room.run, STEPS_PER_HOUR // 2 + 1)  # 3,600 s from first to last
        await until(lambda: bool(user.models))
        await stop(task)
        return waiting, user, retrainer

    waiting, user, retrainer = asyncio.run(main())
    assert "60 min wanted" in waiting
    assert user.models[0][1] == "v1" and retrainer.n_errors == 0


def test_a_large_room_trains_on_a_shorter_window(tmp_path: Path, room: Room) -> None:
    room.run(2 * STEPS_PER_HOUR)

    async def main() -> Retrainer:
        user = FakeUser()
        retrainer = Retrainer(
            room.store,
            ModelStore(tmp_path / "models"),
            user,
            min_history_s=1800,
            max_samples=15_000,  # the small room stores about 18,000 of them an hour
        )
        task = asyncio.create_task(retrainer.run())
        await until(lambda: bool(user.models))
        await stop(task)
        return retrainer

    version = asyncio.run(main()).current
    assert version is not None and version.n_rows <= 16_000
    end = T0 + (2 * STEPS_PER_HOUR - 1) * 5000
    assert version.trained_to_ms == end
    assert 1_800_000 <= end - version.trained_from_ms < 3_600_000


class FlakyStore:
    """The room's store, whose queries fail `n_failures` times first."""

    def __init__(self, store: DuckDBStore, n_failures: int) -> None:
        self.store = store
        self.n_failures = n_failures

    def query(self, q: Query) -> QueryResult:
        if self.n_failures:
            self.n_failures -= 1
            raise StoreError("disk busy")
        return self.store.query(q)

    def latest(self, entity: str = "**", metrics: str | Sequence[str] | None = None) -> Latest:
        return self.store.latest(entity, metrics)


def test_a_failed_training_is_reported_and_tried_again(tmp_path: Path, room: Room) -> None:
    room.run(STEPS_PER_HOUR + 60)

    async def main() -> tuple[dict[str, object], FakeUser, Retrainer, bool]:
        user = FakeUser()
        store = FlakyStore(room.store, n_failures=1)
        retrainer = Retrainer(store, ModelStore(tmp_path / "models"), user, interval_s=0.2)
        task = asyncio.create_task(retrainer.run())
        await until(lambda: retrainer.n_errors == 1)
        failed = retrainer.status()
        await until(lambda: bool(user.models))
        alive = not task.done()
        await stop(task)
        return failed, user, retrainer, alive

    failed, user, retrainer, alive = asyncio.run(main())
    assert failed["last_error"] == "StoreError: disk busy" and failed["version"] is None
    assert alive and user.models[0][1] == "v1"
    assert retrainer.last_error is None and retrainer.n_errors == 1


def test_a_model_directory_that_cannot_be_written_does_not_end_the_task(
    tmp_path: Path, room: Room
) -> None:
    room.run(STEPS_PER_HOUR + 60)
    blocked = tmp_path / "models"
    blocked.write_text("a file where the directory should be")

    async def main() -> Retrainer:
        retrainer = Retrainer(room.store, ModelStore(blocked), FakeUser(), interval_s=0.05)
        task = asyncio.create_task(retrainer.run())
        await until(lambda: retrainer.n_errors >= 2)
        assert not task.done()
        await stop(task)
        return retrainer

    retrainer = asyncio.run(main())
    assert retrainer.current is None and "FileExistsError" in str(retrainer.last_error)


class BlockingStore(FlakyStore):
    """Its query waits until released: a long fit in progress when the task is cancelled."""

    def __init__(self, store: DuckDBStore) -> None:
        super().__init__(store, n_failures=0)
        self.entered = threading.Event()
        self.release = threading.Event()

    def query(self, q: Query) -> QueryResult:
        self.entered.set()
        self.release.wait(10)
        return self.store.query(q)


def test_cancel_during_a_training_stops_cleanly_and_saves_nothing(
    tmp_path: Path, room: Room
) -> None:
    room.run(STEPS_PER_HOUR + 60)
    store = BlockingStore(room.store)
    models = ModelStore(tmp_path / "models")

    async def main() -> FakeUser:
        user = FakeUser()
        retrainer = Retrainer(store, models, user, interval_s=3600)
        task = asyncio.create_task(retrainer.run())
        await asyncio.to_thread(store.entered.wait, 10)
        task.cancel()
        asyncio.get_running_loop().call_later(0.05, store.release.set)
        with pytest.raises(asyncio.CancelledError):
            await task  # returns once the thread has given up
        return user

    user = asyncio.run(main())
    assert not user.models and models.versions() == []


def test_settings_and_wiring(tmp_path: Path, room: Room) -> None:
    settings = load_settings(
        data_dir=tmp_path,
        intelligence={"retrain_hours": 0.5, "train_window_hours": 6, "keep_models": 4},
    )
    retrainer = build_retrainer(settings, room.store, FakeUser())
    assert (retrainer.interval_s, retrainer.window_s) == (1800, 6 * 3600)
    assert retrainer.models.directory == tmp_path / MODELS_DIR and retrainer.models.keep == 4
    off = build_retrainer(
        load_settings(data_dir=tmp_path, intelligence={"retrain_hours": 0}), room.store, FakeUser()
    )
    assert off.interval_s is None
    for bad in ({"retrain_hours": 0.05}, {"retrain_hours": 200}, {"keep_models": 0}):
        with pytest.raises(ConfigError, match="intelligence"):
            load_settings(intelligence=bad)


def test_with_retraining_off_the_last_model_is_still_loaded(tmp_path: Path, room: Room) -> None:
    room.run(STEPS_PER_HOUR + 60)
    models = ModelStore(tmp_path / "models")

    async def main(interval_s: float | None) -> FakeUser:
        user = FakeUser()
        retrainer = Retrainer(room.store, models, user, interval_s=interval_s)
        task = asyncio.create_task(retrainer.run())
        if interval_s is None:
            await asyncio.wait_for(task, 10)  # loads, then ends
            assert retrainer.status()["next_due_ms"] is None
        else:
            await until(lambda: bool(user.models))
            await stop(task)
        return user

    assert not asyncio.run(main(None)).models  # nothing saved yet
    asyncio.run(main(3600))
    [(_, version, _)] = asyncio.run(main(None)).models
    assert version == "v1"
