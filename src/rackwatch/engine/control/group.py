"""Several fan controllers behind one fan API: the twin's and the MQTT devices' (`rackwatch
run --mqtt` with the twin on). Each target goes to the controller(s) that drive it: a fan or a
server to its one controller, a rack or a cluster to every controller with fans under it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from rackwatch.engine.control.controller import FanController, FanStatus
from rackwatch.errors import CommandRejected


class FanTargets(Protocol):
    def fans_of(self, target: str) -> npt.NDArray[np.int64]: ...

    def fans_under(self, entity: str) -> npt.NDArray[np.int64]: ...


class FanControl(Protocol):
    """What the fan API drives: one `FanController`, or a `ControllerGroup` of several."""

    @property
    def layout(self) -> FanTargets: ...

    def status(self) -> list[FanStatus]: ...

    async def set_mode(self, entity: str, mode: Any, by: str) -> None: ...

    async def set_level(self, target: str, level: Any, by: str) -> None: ...


class GroupTargets:
    """`fans_of` and `fans_under` over every controller's layout (CommandRejected, with the
    first controller's explanation, when none knows the target)."""

    def __init__(self, controllers: Sequence[FanController]) -> None:
        self._controllers = controllers

    def fans_of(self, target: str) -> npt.NDArray[np.int64]:
        return _first(self._controllers, lambda c: c.layout.fans_of(target))

    def fans_under(self, entity: str) -> npt.NDArray[np.int64]:
        return _first(self._controllers, lambda c: c.layout.fans_under(entity))


def _first(controllers: Sequence[FanController], ask: Any) -> npt.NDArray[np.int64]:
    refusal: CommandRejected | None = None
    for controller in controllers:
        try:
            found: npt.NDArray[np.int64] = ask(controller)
        except CommandRejected as exc:
            refusal = refusal or exc
            continue
        return found
    raise refusal or CommandRejected("no fan controller is running")


class ControllerGroup:
    """The fan API's view of several controllers (see the module text)."""

    def __init__(self, controllers: Sequence[FanController]) -> None:
        if not controllers:
            raise ValueError("a controller group needs at least one controller")
        self.controllers = tuple(controllers)
        self.layout = GroupTargets(self.controllers)

    def status(self) -> list[FanStatus]:
        return [fan for controller in self.controllers for fan in controller.status()]

    async def set_mode(self, entity: str, mode: Any, by: str) -> None:
        """Every controller with fans at or below `entity` takes the mode."""
        driving = [c for c in self.controllers if _knows(c, entity, under=True)]
        if not driving:
            self.layout.fans_under(entity)  # raises, saying why
        for controller in driving:
            await controller.set_mode(entity, mode, by)

    async def set_level(self, target: str, level: Any, by: str) -> None:
        """The controller that drives the fan or server `target` sets it."""
        for controller in self.controllers:
            if _knows(controller, target, under=False):
                await controller.set_level(target, level, by)
                return
        self.layout.fans_of(target)  # raises, saying why


def _knows(controller: FanController, entity: str, *, under: bool) -> bool:
    try:
        if under:
            controller.layout.fans_under(entity)
        else:
            controller.layout.fans_of(entity)
    except CommandRejected:
        return False
    return True
