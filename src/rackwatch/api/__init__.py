"""The HTTP surfaces: REST under /api/v1, the WebSocket /ws, Prometheus /metrics and the
dashboard, built by `create_app(ApiContext(...))`; `serve` runs it inside an event loop."""

from rackwatch.api.app import create_app
from rackwatch.api.deps import ApiContext

__all__ = ["ApiContext", "create_app"]
