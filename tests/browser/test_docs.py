"""`/docs` (Swagger UI) works without internet, and the tabs of these tests cannot reach it.

The tab fixture (conftest.py) aborts every request that leaves this machine, so a page that
still loaded Swagger UI from a CDN would show no operation here, and the test would fail.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.browser


def test_docs_lists_the_operations_offline(
    live_server: str, open_tab: Any, screenshot_dir: Path
) -> None:
    tab = open_tab()
    loaded: list[str] = []
    tab.page.on("requestfinished", lambda request: loaded.append(request.url))
    tab.page.goto(f"{live_server}/docs")

    # Swagger UI renders one block per operation, grouped by tag.
    tab.page.wait_for_selector(".opblock-tag-section .opblock")
    paths = tab.page.locator(".opblock-summary-path").evaluate_all(
        "ps => ps.map(p => p.dataset.path ?? p.textContent.trim())"
    )
    for path in ("/api/v1/series", "/api/v1/events", "/api/v1/alerts", "/api/v1/twin/faults"):
        assert path in paths, paths
    assert tab.page.locator(".opblock-get").count() >= 8
    assert tab.page.locator(".opblock-post").count() >= 3
    assert "rackwatch" in tab.page.text_content(".info .title")
    # From this server's own copy, and no validator badge (it would call swagger.io).
    assert any(url.endswith("/vendor/swagger-ui/swagger-ui-bundle.js") for url in loaded)
    assert any(url.endswith("/vendor/swagger-ui/swagger-ui.css") for url in loaded)
    assert tab.page.locator(".validator-badge, img[src*='validator']").count() == 0

    tab.page.screenshot(path=screenshot_dir / "docs.png")
    tab.assert_no_errors()


def test_redoc_redirects_to_the_local_docs(live_server: str, open_tab: Any) -> None:
    tab = open_tab()
    tab.page.goto(f"{live_server}/redoc")
    tab.page.wait_for_selector(".opblock")
    assert tab.page.url == f"{live_server}/docs"
    tab.assert_no_errors()


def test_tabs_refuse_requests_to_other_machines(live_server: str, open_tab: Any) -> None:
    # The guard itself: a page that reaches out is stopped, and the test would be told.
    tab = open_tab()
    tab.page.goto(f"{live_server}/docs")
    outcome = tab.page.evaluate(
        """async () => {
             try { await fetch('https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui.css');
                   return 'loaded'; }
             catch (e) { return 'refused'; }
           }"""
    )
    assert outcome == "refused"
    assert tab.external == ["GET https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui.css"]
    with pytest.raises(AssertionError, match=r"cdn\.jsdelivr\.net"):
        tab.assert_no_errors()
    tab.external.clear()  # seen; the tab may close cleanly
