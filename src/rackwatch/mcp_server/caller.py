"""Who called `/mcp`: the `/mcp` gate leaves the checked `Caller` in the request's scope state
under `CALLER_KEY`, where the tools find it (`links.InProcessLink.may_control`). Apart from
`links`, so that the gate needs nothing of the SDK."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from rackwatch.api.auth import CONTROL, Caller

CALLER_KEY: Final = "rackwatch.mcp.caller"


def holds_control(state: Mapping[str, Any]) -> bool:
    """Whether the caller left in `state` (a scope's "state") holds a control token."""
    caller = state.get(CALLER_KEY)
    return isinstance(caller, Caller) and caller.token is not None and caller.token.allows(CONTROL)
