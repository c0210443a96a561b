"""Command-line start time: seconds until ``worldmodels --help`` and ``worldmodels presets`` return.

    python benchmarks/cli_start.py --repeats 5

Each row runs the command in a fresh Python process, best of --repeats. The references, measured in the same
run: the bare interpreter (``python -c pass``, the floor), and importing what the stages run on (torch, Ray,
pycma), which every command paid before commands imported only what they use.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

ROWS = (
    ("python -c pass (floor)", ["-c", "pass"]),
    ("import torch, ray, cma (what every command loaded before)", ["-c", "import torch, ray, cma"]),
    ("worldmodels --help", ["-m", "worldmodels.cli", "--help"]),
    ("worldmodels presets", ["-m", "worldmodels.cli", "presets"]),
    ("worldmodels calibrate --help", ["-m", "worldmodels.cli", "calibrate", "--help"]),
)


def best_seconds(arguments: list[str], repeats: int) -> float:
    """Fastest wall time of ``python ARGUMENTS`` over ``repeats`` runs."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, *arguments], check=True, capture_output=True)
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5, help="runs per row; the fastest counts (default: %(default)s)")
    args = parser.parse_args()
    floor = best_seconds(["-c", "pass"], args.repeats)
    print(f"| command | seconds (best of {args.repeats}) | above the floor |")
    print("|---|---|---|")
    for name, arguments in ROWS:
        seconds = floor if arguments == ["-c", "pass"] else best_seconds(arguments, args.repeats)
        print(f"| {name} | {seconds:.2f} | {seconds - floor:+.2f} |")


if __name__ == "__main__":
    main()
