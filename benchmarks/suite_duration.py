"""How long the README's test command takes: runs `python -m pytest` once and records the wall time.

Run it from a fresh clone (the README's set-up commands first), since that is what CI runs. The
result records the machine, the test counts from pytest's closing line, and the slowest tests.

Every test's time is recorded (`--durations=0`), summed by test file: the costliest files and tests
are where the suite's time goes. `--from-log` reads a log that the same command (with `-v
--durations=0`) already wrote, with its wall time from pytest's closing line, instead of running the
suite again.

usage: python benchmarks/suite_duration.py [--out benchmarks/results/suite_duration.json] [--from-log LOG]
       [-- PYTEST ARGS]
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
    parser.add_argument("--from-log", help="a log of `python -m pytest -v --durations=0` to read instead of running")
    parser.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
    args = parser.parse_args()
    if args.from_log:
        output, exit_code, seconds = pathlib.Path(args.from_log).read_text(encoding="utf-8"), None, None
        pytest_args = ["-v", "--durations=0"]
    else:
        pytest_args = ["--durations=0", *args.pytest_args]
        start = time.perf_counter()
        result = subprocess.run([sys.executable, "-m", "pytest", *pytest_args], cwd=REPO, capture_output=True,
                                text=True)
        seconds = round(time.perf_counter() - start, 1)
        output, exit_code = result.stdout, result.returncode
        sys.stderr.write(result.stderr[-5000:])
    closings = re.findall(r"^=+ (.*\d+ passed.*) =+$", output, flags=re.M) or [""]
    closing = closings[-1]
    counts = {kind: int(n) for n, kind in re.findall(r"(\d+) (passed|failed|skipped|errors?|deselected)", closing)}
    if seconds is None:  # the log's own wall time, "in 1234.56s"
        seconds = float(re.search(r" in ([\d.]+)s", closing).group(1))
        exit_code = 0 if counts.get("passed") and not (counts.get("failed") or counts.get("error") or
                                                        counts.get("errors")) else 1
    durations = re.findall(r"^([\d.]+)s (call|setup|teardown)\s+(\S+)$", output, flags=re.M)
    per_file = {}
    for duration, _, test in durations:
        per_file[test.split("::")[0]] = per_file.get(test.split("::")[0], 0.0) + float(duration)
    report = {"machine": machine_info(), "command": " ".join(["python", "-m", "pytest", *pytest_args]),
              "exit_code": exit_code, "wall_seconds": seconds, "counts": counts, "closing_line": closing,
              "per_file_seconds": {name: round(total, 1) for name, total in
                                   sorted(per_file.items(), key=lambda item: -item[1])},
              "slowest": [{"seconds": float(s), "phase": phase, "test": test} for s, phase, test in durations[:60]]}
    pathlib.Path(args.out).write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    print(json.dumps({k: v for k, v in report.items() if k != "slowest"}, indent=1))
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
