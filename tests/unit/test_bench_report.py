"""`make bench`'s report: the Markdown table and ratios, and the chart, from measured results."""

from __future__ import annotations

import argparse
import struct
from pathlib import Path

from bench.chart import draw
from bench.report import render
from bench.servers import Result, Server


def server(key: str, name: str, rps: tuple[float, float], p99: float) -> Server:
    s = Server(key, name, [], {}, "/health", "/predict", Path("bodies.txt"))
    s.ready_s, s.rss_mib = 4.2, 300.0
    s.results = [
        Result(key, 1, rps[0], 1.5, p99 / 2, 0, int(rps[0] * 10)),
        Result(key, 8, rps[1], 6.0, p99, 0, int(rps[1] * 10)),
    ]
    return s


SERVERS = [
    server("a", "HealthPredict POST /predict", (600, 1200), 12.0),
    server("b", "mlflow models serve", (60, 50), 300.0),
    server("d", "bare FastAPI", (800, 1000), 20.0),
]
BATCH = [Result("e", 1, 6.5, 150, 260, 0, 65, (38.04, 27.5)), Result("e", 2, 5.0, 400, 580, 0, 50)]
ARGS = argparse.Namespace(duration=10, warmup=3, only="a,b,d,e", hp_env=[], batch=1000)


def test_table_and_ratios() -> None:
    text = render(SERVERS, BATCH, ARGS, (0.5,), (1.0,))
    assert "| (a) HealthPredict POST /predict | 600 | 1.50 ms | 1,200 |" in text
    assert "- a/b: 1 conn 10.0, 8 conn 24.0" in text
    assert "- a/d: 1 conn 0.8, 8 conn 1.2" in text
    assert "| 1 | 6.5 | 6,500 | 150 ms | 260 ms | 0 | 38.0 + 27.5 ms |" in text
    assert "| 2 | 5.0 | 5,000 | 400 ms | 580 ms | 0 | - |" in text  # CPU not measured


def test_chart_is_a_png_of_the_expected_size(tmp_path: Path) -> None:
    path = draw(SERVERS, BATCH, 1000, tmp_path / "2026-01-01.png")
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (15 * 110, int(4.8 * 110))
    assert len(data) > 20_000  # bars, labels and text, not an empty canvas


def test_batch_only_chart(tmp_path: Path) -> None:
    """`--only e` measures no single requests: the chart is the batch panel alone."""
    bare = [Server("a", "HealthPredict POST /predict", [], {}, "/health", "/predict", Path("b"))]
    data = draw(bare, BATCH, 1000, tmp_path / "2026-01-01-e.png").read_bytes()
    assert struct.unpack(">II", data[16:24]) == (int(5.5 * 110), int(4.8 * 110))
