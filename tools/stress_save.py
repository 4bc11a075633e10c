"""make stress (issue 15): ONNXProgram.save killed (SIGKILL) or failed (EIO) by strace's fault
injection at a rename, an fsync, a write, an unlink or an open of the save, --trials times with
external data and --trials times without; each trial checks that the model loads with its data and
equals the old or the new one, and that the next save leaves no temporary or unreferenced data
file (tests/python/test_save_atomic.py has the trial). Prints survived/corrupted per mode; exit
status 1 when any trial did not survive. Not in CI: each trial is a child process exporting a
model (~5-15 s)."""
from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "python"))
import test_save_atomic as save_kill


def points(calls: dict[str, tuple[int, int]], trials: int, rng: random.Random) -> list[tuple[str, int, str]]:
    """Every rename and fsync of the save, killed and failed, then writes, unlinks and opens of
    the save chosen at random."""
    out = [(call, n, action) for call in ("rename", "fsync") for n in range(1, calls[call][1] + 1)
           for action in ("kill", "error")]
    others = [c for c in ("write", "unlink", "openat") if calls[c][1]]
    while len(out) < trials:
        call = rng.choice(others)
        out.append((call, rng.randint(1, calls[call][1]), rng.choice(("kill", "error"))))
    return out[:trials]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=50, help="trials per mode (default 50)")
    ap.add_argument("--seed", type=int, default=15)
    args = ap.parse_args()
    if save_kill.STRACE is None:
        print("stress_save: strace is not installed; nothing run")
        return 1
    rng = random.Random(args.seed)
    programs = {v: save_kill.program(v) for v in (1, 2, 3)}
    bad = 0
    with tempfile.TemporaryDirectory(prefix="oxport-stress-") as tmp:
        folder = os.path.join(tmp, "m")
        for ext in (True, False):
            os.makedirs(folder, exist_ok=True)
            mode = "external data" if ext else "inline"
            expected = save_kill.expected_models(folder, ext, programs)
            calls = save_kill.save_calls(folder, ext, programs[1])
            survived, failures, t0 = 0, [], time.time()
            for i, (call, n, action) in enumerate(points(calls, args.trials, rng)):
                why = save_kill.trial(folder, ext, call, n, action, programs, expected, calls[call][0])
                if why:
                    failures.append(why)
                else:
                    survived += 1
                for f in os.listdir(folder):
                    os.remove(os.path.join(folder, f))
                print(f"  {mode}: trial {i + 1}/{args.trials} {call} #{n} {action}: {why or 'survived'}",
                      flush=True)
            print(f"{mode}: {survived}/{args.trials} survived, {len(failures)} corrupted or left files "
                  f"({time.time() - t0:.0f} s; the save makes {calls['rename'][1]} renames, "
                  f"{calls['fsync'][1]} fsyncs, {calls['write'][1]} writes, {calls['unlink'][1]} unlinks, "
                  f"{calls['openat'][1]} opens)", flush=True)
            for why in failures:
                print("    " + why)
            bad += len(failures)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
