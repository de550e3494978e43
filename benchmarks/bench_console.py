"""The flag console with many flags: time to rows, to filtered rows, to an update.

    python benchmarks/bench_console.py [--flags N] [--runs R] [--smoke]

A FlagServer with ``N`` flags (1,000 by default, two variations each) and
Debian's Chromium (headless, through Playwright: tests/chromium.py) on its
console, a fresh tab per run. Measured in the page, on its own clock
(``performance.now()``), each to the next frame painted after it:

- **rows**: from the start of navigation until the Flags table holds every
  row (the count reads "N flags"); **longest**: the longest task the page
  ran until then (its longest freeze: Chromium's long tasks, over 50 ms; 0
  when none was);
- **filter**: from typing into **Filter flags** (one ``input`` event, the
  text matching 10 flags) until the filtered table is painted, then the same
  for clearing it (every row back);
- **update**: from just before the service changes one flag until its row
  shows it (over the page's event stream; the whole state is sent and
  applied).

The median and the worst run of each are printed, in milliseconds. Timings
are printed, never asserted (tests/test_console_browser.py checks that 1,000
flags load and filter).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path
from typing import Any

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

#: Resolves once the next frame is painted (a rAF, then a task after it).
_NEXT_FRAME = "new Promise(r => requestAnimationFrame(() => setTimeout(r)))"

_ROWS = f"""async text => {{
    const count = document.getElementById("count");
    while (count.textContent !== text) {{
        await new Promise(r => requestAnimationFrame(r));
    }}
    await {_NEXT_FRAME};
    const now = performance.now();
    const tasks = await new Promise(resolve => {{
        new PerformanceObserver(list => resolve(list.getEntries()))
            .observe({{type: "longtask", buffered: true}});
        setTimeout(() => resolve([]), 100);
    }});
    return [now, Math.max(0, ...tasks.map(t => t.duration))];
}}"""
#: Watches a switch's aria-checked; ``window.updated`` resolves to the
#: time of the next frame painted after it changed.
_WATCH = f"""([name, checked]) => {{
    const all = document.querySelectorAll('button[role="switch"]');
    const target = [...all].find(b => b.getAttribute("aria-label") === name);
    window.updated = new Promise(resolve => {{
        new MutationObserver(async () => {{
            if (target.getAttribute("aria-checked") !== checked) return;
            await {_NEXT_FRAME};
            resolve(performance.now());
        }}).observe(target, {{attributes: true}});
    }});
    return performance.now();
}}"""
_FILTER = f"""async text => {{
    const input = document.getElementById("filter");
    const start = performance.now();
    input.value = text;
    input.dispatchEvent(new Event("input"));
    await {_NEXT_FRAME};
    return [performance.now() - start, document.getElementById("count").textContent];
}}"""


def flags(count: int) -> dict[str, Any]:
    """``count`` two-variation flags, keyed ``flag-0000`` on."""
    return {
        f"flag-{n:04d}": {
            "on": True,
            "variations": ["a", "b"],
            "fallthrough": {"variation": 0},
            "offVariation": 1,
        }
        for n in range(count)
    }


async def run(count: int, runs: int) -> dict[str, list[float]]:
    """The timings of ``runs`` fresh tabs on a console of ``count`` flags."""
    from aioflags.testing import FlagServer
    from tests.chromium import chromium

    times: dict[str, list[float]] = {
        "rows": [],
        "longest": [],
        "filter": [],
        "unfilter": [],
        "update": [],
    }
    needle = f"flag-{count // 10 - 1:03d}" if count >= 100 else "flag-000"
    async with FlagServer(flags(count)) as server, chromium() as browser:
        for n in range(runs):
            page = await browser.new_page(viewport={"width": 1280, "height": 800})
            await page.goto(f"{server.url}/ui/")
            rows, longest = await page.evaluate(_ROWS, f"{count} flags")
            times["rows"].append(rows)
            times["longest"].append(longest)
            took, shown = await page.evaluate(_FILTER, needle)
            assert shown.endswith(f"of {count} flags shown"), shown
            times["filter"].append(took)
            took, shown = await page.evaluate(_FILTER, "")
            assert shown == f"{count} flags", shown
            times["unfilter"].append(took)
            key = f"flag-{count // 2:04d}"
            on = n % 2 == 1
            start = await page.evaluate(_WATCH, [f"{key} on", str(on).lower()])
            server.set_flag(key, {**server.flags[key], "on": on})
            times["update"].append(await page.evaluate("() => window.updated") - start)
            await page.close()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--flags", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--smoke", action="store_true", help="a tiny run for CI")
    args = parser.parse_args()
    from tests import chromium

    if chromium.find() is None:
        print("bench_console: chromium not found (apt-get install chromium): skipped")
        return
    count, runs = (50, 1) if args.smoke else (args.flags, args.runs)
    times = anyio.run(run, count, runs)
    print(f"console with {count} flags, {runs} runs (ms; median, worst):")
    for name, values in times.items():
        print(f"  {name:<9} {statistics.median(values):8.1f} {max(values):8.1f}")


if __name__ == "__main__":
    main()
