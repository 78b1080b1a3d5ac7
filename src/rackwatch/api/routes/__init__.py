"""REST routers under /api/v1, one per resource. Every route states its access
(`auth.READ_ACCESS` / `auth.ControlAccess`); a test checks that none is left open. A router
whose routes take a body is an `APIRouter(route_class=auth.AccessFirstRoute)`, so access is
checked before the body is read (a test checks that too)."""

from rackwatch.api.routes import (
    alerts,
    energy,
    events,
    fans,
    health,
    hosts,
    incidents,
    ingest,
    inventory,
    live,
    maintenance,
    plot,
    recommend,
    reports,
    series,
    states,
    status,
    twin,
)

ROUTERS = [
    inventory.router,
    live.router,
    series.router,
    plot.router,
    events.router,
    status.router,
    alerts.router,
    states.router,
    hosts.router,
    energy.router,
    recommend.router,
    reports.router,
    health.router,
    incidents.router,
    maintenance.router,
    fans.router,
    twin.router,
    ingest.router,
]

__all__ = ["ROUTERS"]
