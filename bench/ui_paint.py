"""First paint of the clinician's page (`/ui`) in headless Debian Chromium, cold each time.

Each run opens a new browser context (empty cache: the HTML, with its stylesheet inlined,
and the nine script modules are fetched again) and reads the browser's own Paint Timing
entries: ``first-paint`` and ``first-contentful-paint``, in ms from the start of navigation;
also when the scripts had run (the key status filled in). Medians and the spread are printed.

Usage: start the app (``make run``, or ``python -m app``), then
``.venv/bin/python bench/ui_paint.py [--url http://127.0.0.1:8000/ui] [--runs 20]``.
"""

from __future__ import annotations

import argparse
import statistics
from typing import Any

from playwright.sync_api import sync_playwright

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
TIMINGS = """() => {
  const paint = Object.fromEntries(performance.getEntriesByType('paint')
    .map(e => [e.name, e.startTime]));
  const nav = performance.getEntriesByType('navigation')[0];
  return {fp: paint['first-paint'], fcp: paint['first-contentful-paint'],
          html: nav.responseEnd, dcl: nav.domContentLoadedEventEnd};
}"""


def measure(url: str, runs: int) -> dict[str, list[float]]:
    """``runs`` cold loads of ``url``: ms to first paint, first contentful paint, HTML
    received, DOMContentLoaded (the module scripts have run by then)."""
    out: dict[str, list[float]] = {"fp": [], "fcp": [], "html": [], "dcl": []}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            for _ in range(runs + 1):  # the first load warms the browser process, not kept
                context = browser.new_context()
                page = context.new_page()
                page.goto(url, wait_until="load")
                page.wait_for_selector("#key-status:not(:empty)")
                timing: dict[str, Any] = page.evaluate(TIMINGS)
                context.close()
                for key, values in out.items():
                    values.append(float(timing[key]))
            for values in out.values():
                del values[0]
        finally:
            browser.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", default="http://127.0.0.1:8000/ui")
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    results = measure(args.url, args.runs)
    names = {"fp": "first paint", "fcp": "first contentful paint", "html": "HTML received",
             "dcl": "DOMContentLoaded"}  # fmt: skip
    print(f"{args.url}: {args.runs} cold loads, headless chromium ({CHROMIUM})")
    for key, values in results.items():
        ordered = sorted(values)
        p90 = ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]
        print(
            f"  {names[key]:<24} median {statistics.median(values):6.1f} ms"
            f"   p90 {p90:6.1f} ms   max {ordered[-1]:6.1f} ms"
        )


if __name__ == "__main__":
    main()
