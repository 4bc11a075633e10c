"""Measure one model through one exporter, in this (fresh) process, and print the figures as JSON.

    .venv/bin/python bench/one.py --exporter oxport --model resnet50

The JSON is the last stdout line, after the marker `BENCH_JSON `. Both exporters go through the
same steps: build the model, note the RSS, export and save (timed end to end and per stage), note
the peak RSS, then read the saved file, open it in ONNX Runtime, time inference and compare with
eager. An export that raises is reported with status "failed" and the first line of its message.

Stages (seconds): capture (torch.export), decompose (run_decompositions), translate (ATen → ONNX),
optimize, save. For torch.onnx, capture runs torch.onnx's own capture strategies, the
ExportedProgram then goes to torch.onnx.export(..., optimize=False) with run_decompositions timed by
a wrapper (translate is the rest of that call: building the op registry, type promotion,
translation), and ONNXProgram.optimize() and save() are timed apart: the same work as
torch.onnx.export(model, dynamo=True, optimize=True) followed by save.
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import resource
import statistics
import sys
import tempfile
import time

import torch
from torch.utils import _pytree

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import zoo

MARKER = "BENCH_JSON "
STAGES = ("capture", "decompose", "translate", "optimize", "save")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024   # Linux reports KiB


def current_rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def timed(fn, *args, **kwargs) -> tuple[object, float]:
    t0 = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - t0


def stopwatch(owner, attr: str) -> list[float]:
    """Wrap owner.attr so that every call adds its duration to the returned one-item list."""
    original = getattr(owner, attr)
    spent = [0.0]

    @functools.wraps(original)
    def wrapper(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            spent[0] += time.perf_counter() - t0

    setattr(owner, attr, wrapper)
    return spent


# ---- the two exporters: each imports what it needs, exports, saves, returns its stage times ----

def import_torch_export():
    """torch.export's lazily imported machinery (dynamo, sympy, aot_autograd, networkx), imported
    before the baseline by both children: torch.onnx's own imports pull much of it in, so otherwise
    oxport's capture stage would pay for imports that torch.onnx's does not."""
    import torch._dynamo
    import torch.export._trace
    import torch.fx.experimental.symbolic_shapes  # noqa: F401


def import_oxport():
    import oxport  # noqa: F401


def export_oxport(model, args, path: str) -> dict[str, float]:
    import oxport

    program = oxport.export(model, args, optimize=True, verbose=False)
    _, save = timed(program.save, path)
    t = dict(program.timings)
    stages = {s: t.pop(s, 0.0) for s in ("capture", "decompose", "optimize")}
    stages["translate"] = sum(t.values())   # walk + lower: whatever else oxport timed
    stages["save"] = save
    return stages


def import_torch_onnx():
    import onnxscript  # noqa: F401
    import torch.onnx  # noqa: F401
    from torch.onnx._internal.exporter import _capture_strategies, _core  # noqa: F401


def torch_onnx_capture(model, args):
    """What torch.onnx.export does first: its capture strategies in order, the first
    that succeeds."""
    from torch.onnx._internal.exporter import _capture_strategies

    failures = []
    for strategy in _capture_strategies.CAPTURE_STRATEGIES:
        result = strategy(verbose=False)(model, args, None, None)
        if result.success:
            return result.exported_program
        failures.append(result.exception)
    raise failures[0]   # the preferred strategy's (strict=False) reason


def export_torch_onnx(model, args, path: str) -> dict[str, float]:
    ep, capture = timed(torch_onnx_capture, model, args)
    decompose = stopwatch(torch.export.ExportedProgram, "run_decompositions")
    program, convert = timed(torch.onnx.export, ep, args, dynamo=True, optimize=False, verbose=False)
    _, optimize = timed(program.optimize)
    _, save = timed(program.save, path)
    return {"capture": capture, "decompose": decompose[0], "translate": convert - decompose[0],
            "optimize": optimize, "save": save}


EXPORTERS = {"oxport": (import_oxport, export_oxport),
             "torch.onnx": (import_torch_onnx, export_torch_onnx)}


# ---- what is measured on the saved model, the same for both ----

def inspect_file(path: str) -> dict:
    """Node count, initializer bytes (from dims and dtype, so external data counts too),
    bytes on disk."""
    import onnx

    proto = onnx.load(path, load_external_data=False)
    init_bytes = 0
    for t in proto.graph.initializer:
        n = 1
        for d in t.dims:
            n *= d
        init_bytes += n * onnx.helper.tensor_dtype_to_np_dtype(t.data_type).itemsize
    folder = os.path.dirname(path)
    return {"nodes": len(proto.graph.node), "initializers": len(proto.graph.initializer),
            "initializer_bytes": init_bytes,
            "file_bytes": sum(os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder))}


def run_onnxruntime(path: str, args, reps: int, budget_s: float) -> dict:
    """Session creation time, the first run's outputs, then the median of up to `reps` timed runs
    (at least 3, fewer than `reps` when they would take more than `budget_s`)."""
    import numpy as np
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    session, create = timed(ort.InferenceSession, path, sess_options=opts,
                            providers=["CPUExecutionProvider"])
    tensors = [a for a in _pytree.tree_leaves(args) if isinstance(a, torch.Tensor)]
    names = [i.name for i in session.get_inputs()]
    if len(names) != len(tensors):
        raise ValueError(f"the ONNX model takes {len(names)} inputs, the torch model {len(tensors)}")
    feeds = {n: t.detach().numpy() for n, t in zip(names, tensors)}
    outputs = session.run(None, feeds)   # warm-up, and the outputs to compare
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < reps and (len(times) < 3 or time.perf_counter() - start < budget_s):
        times.append(timed(session.run, None, feeds)[1])
    return {"session_s": create, "latency_s": statistics.median(times), "latency_runs": len(times),
            "outputs": [torch.from_numpy(np.asarray(o)) for o in outputs]}


def max_abs_diff(actual: list[torch.Tensor], expected) -> float:
    expected = [e for e in _pytree.tree_leaves(expected) if isinstance(e, torch.Tensor)]
    if len(actual) != len(expected):
        raise ValueError(f"the ONNX model has {len(actual)} outputs, eager {len(expected)}")
    diff = 0.0
    for a, e in zip(actual, expected):
        if tuple(a.shape) != tuple(e.shape):
            raise ValueError(f"output shape {tuple(a.shape)} differs from eager {tuple(e.shape)}")
        if a.numel():
            diff = max(diff, (a.double() - e.double()).abs().max().item())
    return diff


def first_line(e: BaseException) -> str:
    """The exception's type and first line; for oxport's UnsupportedOpError also the ops
    it lists."""
    text = str(e).strip()
    line = f"{type(e).__name__}: {text.splitlines()[0] if text else ''}"
    unsupported = getattr(e, "unsupported", None)
    if unsupported:
        line += " " + ", ".join(u.get("target", "?") for u in unsupported)
    return line


def check_unoptimized(model, args, folder: str, optimized: list[torch.Tensor]) -> dict:
    """oxport only, untimed: the same model exported with optimize=False, run in ONNX Runtime, and
    its outputs compared with the optimized model's. The difference is also given relative to the
    output scale (the largest |output| of the unoptimized model)."""
    import oxport

    path = os.path.join(folder, "unoptimized.onnx")
    oxport.export(model, args, optimize=False, verbose=False).save(path)
    plain = run_onnxruntime(path, args, 1, 0.0)["outputs"]
    scale = max((p.double().abs().max().item() for p in plain if p.numel()), default=0.0)
    diff = max_abs_diff(optimized, plain)
    return {"unoptimized_nodes": _nodes(path),
            "opt_vs_unopt_diff": diff, "opt_vs_unopt_rel": diff / scale if scale else diff}


def _nodes(path: str) -> int:
    import onnx

    return len(onnx.load(path, load_external_data=False).graph.node)


def measure(exporter: str, model_name: str, reps: int, budget_s: float, check: bool = False) -> dict:
    import_exporter, export = EXPORTERS[exporter]
    import_torch_export()
    import_exporter()
    model, args = zoo.MODELS[model_name]()
    record = {"model": model_name, "exporter": exporter,
              "params": sum(p.numel() for p in model.parameters()),
              "inputs": [f"{str(t.dtype).removeprefix('torch.')}{list(t.shape)}"
                         for t in _pytree.tree_leaves(args) if isinstance(t, torch.Tensor)],
              "rss_baseline_mb": current_rss_mb(), "peak_rss_before_mb": peak_rss_mb()}

    with tempfile.TemporaryDirectory(prefix="oxport-bench-") as folder:
        path = os.path.join(folder, "model.onnx")
        t0 = time.perf_counter()
        try:
            stages = export(model, args, path)
        except Exception as e:   # recorded, not raised: the bench goes on with the next run
            record.update(status="failed", reason=first_line(e),
                          failed_after_s=time.perf_counter() - t0)
            return record
        record["end_to_end_s"] = time.perf_counter() - t0
        record["stages"] = stages
        record["post_capture_s"] = record["end_to_end_s"] - stages["capture"]
        record["peak_rss_mb"] = peak_rss_mb()
        record["rss_increment_mb"] = record["peak_rss_mb"] - record["rss_baseline_mb"]
        record["status"] = "ok"
        record.update(inspect_file(path))
        try:
            ort = run_onnxruntime(path, args, reps, budget_s)
            with torch.no_grad():
                expected = model(*args)
            outputs = ort.pop("outputs")
            record["max_abs_diff"] = max_abs_diff(outputs, expected)
            record.update(ort)
            record["peak_rss_with_ort_mb"] = peak_rss_mb()
            if check and exporter == "oxport":
                record.update(check_unoptimized(model, args, folder, outputs))
        except Exception as e:
            record["ort_error"] = first_line(e)
    record.setdefault("peak_rss_with_ort_mb", peak_rss_mb())
    return record


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--exporter", required=True, choices=sorted(EXPORTERS))
    ap.add_argument("--model", required=True, choices=sorted(zoo.MODELS))
    ap.add_argument("--latency-runs", type=int, default=20, help="timed ONNX Runtime runs, at most")
    ap.add_argument("--latency-budget", type=float, default=5.0,
                    help="seconds after which fewer timed runs are made (never fewer than 3)")
    ap.add_argument("--check-unoptimized", action="store_true",
                    help="oxport: also export with optimize=False and compare the two in ONNX Runtime")
    opts = ap.parse_args()
    record = measure(opts.exporter, opts.model, opts.latency_runs, opts.latency_budget,
                     opts.check_unoptimized)
    print(MARKER + json.dumps(record), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
