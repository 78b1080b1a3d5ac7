"""The web dashboard: static pages (no build step) served by `rackwatch run` at `/`.

`STATIC_DIR` holds index.html (the room overview), server.html (one server), alerts.html (the
alert history), css/, js/ (plain ES modules) and vendor/ (uPlot, MIT, and swagger-ui-dist for
/docs, Apache-2.0, each with its licence).
"""

from pathlib import Path

STATIC_DIR = Path(__file__).parent / "static"

__all__ = ["STATIC_DIR"]
