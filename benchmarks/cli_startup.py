"""Start-up time of the command line against importing click alone, timed side by side.

    python benchmarks/cli_startup.py            # 15 runs of each, alternating; medians
    python benchmarks/cli_startup.py -n 31

Runs ``peewee-checkpoints --help`` (the console script next to this Python) and
``python -c "import click"`` in turn, each a fresh process, and prints both medians (wall time)
and their ratio, the figure of issue 16's target (at most 2x).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path


def _wall(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=15, help="runs of each command (median)")
    args = parser.parse_args(argv)
    script = Path(sys.executable).with_name("peewee-checkpoints")
    cli = [str(script) if script.exists() else shutil.which("peewee-checkpoints") or "false",
           "--help"]
    click = [sys.executable, "-c", "import click"]
    os.chdir(Path(__file__).resolve().parent)  # no checkpoints.toml from the caller's folder
    for cmd in (cli, click):  # warm the file cache
        _wall(cmd)
    ours: list[float] = []
    theirs: list[float] = []
    for i in range(args.n):
        pair = [(cli, ours), (click, theirs)]
        for cmd, times in pair if i % 2 == 0 else reversed(pair):
            times.append(_wall(cmd))
    a, b = statistics.median(ours) * 1000, statistics.median(theirs) * 1000
    print(f"peewee-checkpoints --help {a:7.1f} ms   python -c 'import click' {b:7.1f} ms   "
          f"ratio {a / b:.2f}x (median of {args.n}, alternating)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
