"""REST routers under /api/v1, one per resource."""

from rackwatch.api.routes import events, inventory, live, series, status

ROUTERS = [inventory.router, live.router, series.router, events.router, status.router]

__all__ = ["ROUTERS"]
