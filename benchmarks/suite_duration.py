"""How long the README's test command takes: runs `python -m pytest` once and records the wall time.

Run it from a fresh clone (the README's set-up commands first), since that is what CI runs. The
result records the machine, the test counts from pytest's closing line, and the slowest tests.

usage: python benchmarks/suite_duration.py [--out benchmarks/results/suite_duration.json] [-- PYTEST ARGS]
"""

import argparse
import json
import pathlib
import re
import subprocess
import sys
import time

from machine import machine_info

REPO = pathlib.Path(__file__).resolve().parents[1]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "suite_duration.json"))
    parser.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
    args = parser.parse_args()
    command = [sys.executable, "-m", "pytest", "--durations=15", *args.pytest_args]
    start = time.perf_counter()
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    sys.stdout.write(result.stdout[-20000:])
    sys.stderr.write(result.stderr[-5000:])
    closing = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    counts = {kind: int(n) for n, kind in re.findall(r"(\d+) (passed|failed|skipped|errors?|deselected)", closing)}
    slowest = re.findall(r"^([\d.]+)s (call|setup|teardown)\s+(\S+)$", result.stdout, flags=re.M)
    report = {"machine": machine_info(), "command": " ".join(["python", "-m", "pytest", *args.pytest_args]),
              "exit_code": result.returncode, "wall_seconds": round(seconds, 1), "counts": counts,
              "closing_line": closing,
              "slowest": [{"seconds": float(s), "phase": phase, "test": test} for s, phase, test in slowest]}
    pathlib.Path(args.out).write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    print(json.dumps({k: v for k, v in report.items() if k != "slowest"}, indent=1))
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
