"""Export the three foundation models with oxport, run each in ONNX Runtime, compare with eager.

    make demo      (or: .venv/bin/python demo/demo.py [--out DIR] [--opset N])

Prints per model: node and initializer counts, file size, time per stage and max |onnx - eager|.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import demo_models
import oxport


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "out"))
    ap.add_argument("--opset", type=int, default=None)
    opts = ap.parse_args()
    os.makedirs(opts.out, exist_ok=True)

    rows = []
    failed = False
    for name, build in demo_models.MODELS.items():
        print(f"== {name}", flush=True)
        model, args = build()
        with torch.no_grad():
            expected = model(*args)
        program = oxport.export(model, args, dynamo=True, opset_version=opts.opset)
        program.optimize()
        path = os.path.join(opts.out, f"{name}.onnx")
        t0 = time.perf_counter()
        program.save(path)
        program.timings["save"] = time.perf_counter() - t0
        (actual,) = program(*args)
        diff = (actual - expected).abs().max().item()
        try:
            torch.testing.assert_close(actual, expected)
            verdict = "ok"
        except AssertionError:
            verdict = "MISMATCH"
            failed = True
        proto = program.model_proto
        rows.append((name, len(proto.graph.node), len(proto.graph.initializer), os.path.getsize(path),
                     program.timings, diff, verdict))

    stages = ["capture", "decompose", "walk", "lower", "optimize", "save"]
    print()
    header = f"{'model':<12} {'nodes':>5} {'inits':>5} {'file':>10}  " + " ".join(
        f"{s:>9}" for s in stages) + f"  {'max|onnx-eager|':>15}"
    print(header)
    print("-" * len(header))
    for name, nodes, inits, size, timings, diff, verdict in rows:
        times = " ".join(f"{timings[s] * 1e3:>7.1f}ms" if s in timings else f"{'-':>9}" for s in stages)
        print(f"{name:<12} {nodes:>5} {inits:>5} {size:>8} B  {times}  {diff:>15.3e} {verdict}")
    print(f"\nmodels written to {opts.out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
