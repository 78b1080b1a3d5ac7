"""The web dashboard: static pages (no build step) served by `rackwatch run` at `/`.

`STATIC_DIR` holds index.html (the room overview), server.html (one server), css/, js/ (plain
ES modules) and vendor/uplot (the chart library, MIT, with its licence).
"""

from pathlib import Path

STATIC_DIR = Path(__file__).parent / "static"

__all__ = ["STATIC_DIR"]
