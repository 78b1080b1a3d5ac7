"""GET /api/v1/plot: the stored series drawn as PNG or SVG, refused with a clear 400 when the
picture cannot be drawn as asked."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from api_support import END_MS, START_MS, LiveApp

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def http(api: LiveApp) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api.url, timeout=30) as client:
        yield client


def plot(http: httpx.Client, **params: object) -> httpx.Response:
    params.setdefault("from", START_MS)
    params.setdefault("to", END_MS)
    return http.get("/api/v1/plot", params=params)  # type: ignore[arg-type]


def test_a_server_s_power_and_load_as_png(http: httpx.Client) -> None:
    done = plot(
        http, entity="c01/r01/s03", metric=["power_watts", "cpu_utilization_ratio"], width=800
    )
    assert done.status_code == 200, done.text
    assert done.headers["content-type"] == "image/png"
    assert done.content.startswith(PNG_MAGIC)
    width = int.from_bytes(done.content[16:20], "big")  # the IHDR chunk's width
    assert width == 800


def test_svg_draws_the_same_data_the_same_way(http: httpx.Client) -> None:
    first = plot(http, entity="c01/r01/s0[12]", metric="cpu_temperature_celsius", format="svg")
    again = plot(http, entity="c01/r01/s0[12]", metric="cpu_temperature_celsius", format="svg")
    assert first.status_code == 200, first.text
    assert first.headers["content-type"].startswith("image/svg+xml")
    assert b"c01/r01/s01 cpu_temperature_celsius" in first.content
    assert b"c01/r01/s02 cpu_temperature_celsius" in first.content
    assert first.content == again.content


@pytest.mark.parametrize(
    ("params", "said"),
    [
        ({"entity": "c01/r01/s01", "metric": ["power_watts", "airflow_cfm", "inlet_*"]}, "units"),
        ({"entity": "**", "metric": "*"}, "at most 12"),
        ({"entity": "nowhere", "metric": "power_watts"}, "no stored series"),
        (
            {"entity": "c01/r01/s01", "metric": "power_watts", "from": END_MS, "to": START_MS},
            "before",
        ),
    ],
)
def test_a_picture_that_cannot_be_drawn_is_a_clear_400(
    http: httpx.Client, params: dict[str, object], said: str
) -> None:
    done = plot(http, **params)
    assert done.status_code == 400, done.text
    assert said in done.json()["detail"]


def test_format_and_size_are_checked(http: httpx.Client) -> None:
    for params, said in (
        ({"format": "gif"}, "format"),
        ({"width": 10}, "width"),
        ({"metric": None}, "metric"),  # a metric is required
    ):
        query = {"entity": "c01/r01/s01", "metric": "power_watts", **params}
        done = plot(http, **{k: v for k, v in query.items() if v is not None})
        assert done.status_code == 400, done.text
        assert said in done.text
