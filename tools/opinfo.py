#!/usr/bin/env python3
"""Operator coverage: PyTorch's OpInfo samples through oxport and torch.onnx, side by side (issue
4).

For every OpInfo in torch.testing._internal.common_methods_invocations.op_db (each
(name, variant_test_name) is its own entry) and every dtype of DTYPES the OpInfo declares for CPU,
the first `--max-samples` samples of `op.sample_inputs('cpu', dtype, requires_grad=False)` are
wrapped in an nn.Module (tensors, also inside lists/tuples/kwargs, become inputs; everything else is
baked in), exported with `oxport.export(m, args, optimize=True)` and with
`torch.onnx.export(m, args, dynamo=True, optimize=True)`, run in ONNX Runtime (CPU) and compared
with eager by `torch.testing.assert_close` at its default tolerances (equal_nan=True), unless
TOLERANCES says otherwise. Ops in RANDOM_OPS compare shape and dtype only.

The sample cap, `--max-samples` (default 2), keeps the full run (about 3,000 pairs) near 1.5 hours
on 2 cores; OpInfo's first samples are its plainest ones, so the cap mostly drops the corner cases.

A pair (op, dtype) passes for an exporter when every tested sample passes. Once an exporter fails a
sample of a pair, its later samples of that pair are not run (the pair has failed already); the
record keeps the first failure. A sample that neither exporter can capture with torch.export is
"not exportable" and is left out; a pair left with no tested sample is "not exportable" and is out
of the denominators.

Every pair runs in a worker subprocess: a segfault or a sample that runs past `--timeout` is
recorded as `crash` for the exporter that was running, the worker is restarted and the run goes on.

    python tools/opinfo.py                         # everything -> docs/coverage.{json,md}
    python tools/opinfo.py --subset --out build/coverage
    python tools/opinfo.py --ops add,nn.functional.conv2d --dtypes float32
    python tools/opinfo.py --report-only --out docs   # rewrite the .md from the .json, or from the
                                                      # records so far of a run still going
"""
from __future__ import annotations

import argparse
import datetime
import itertools
import json
import math
import os
import platform
import queue
import select
import subprocess
import sys
import threading
import time
import traceback
import warnings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

DTYPES = ["float32", "float16", "bfloat16", "int64", "int32", "bool"]
EXPORTERS = ["oxport", "torch_onnx"]
CATEGORIES = ["capture", "unsupported", "lowering", "runtime", "mismatch", "crash"]
DEFAULT_MAX_SAMPLES = 2
DEFAULT_TIMEOUT = 60.0

# Ops whose output is random or whose values are unspecified (empty*): shape and dtype only.
RANDOM_OPS = {
    "bernoulli", "normal", "uniform", "exponential", "cauchy", "geometric", "log_normal",
    "multinomial", "rand_like", "randn_like", "randint_like", "randn", "rand", "randint",
    "nn.functional.dropout", "nn.functional.dropout2d", "nn.functional.dropout3d",
    "nn.functional.alpha_dropout", "nn.functional.feature_alpha_dropout",
    "empty", "empty_like", "empty_strided", "empty_permuted", "new_empty", "new_empty_strided",
}

# The one table of tolerance overrides: (op name, variant_test_name, dtype) -> (rtol, atol, reason).
# "*" matches any variant or dtype. Each override applies to both exporters alike.
TOLERANCES: dict[tuple[str, str, str], tuple[float, float, str]] = {
}

# The CI subset (--subset): ops across the families an exporter must get right, keyed
# "name" or "name.variant"; dtypes float32 and int64 where the OpInfo declares them.
SUBSET = [
    # elementwise
    "add", "sub", "mul", "div.no_rounding_mode", "div.floor_rounding", "pow", "abs", "neg", "exp",
    "log", "sqrt", "rsqrt", "sigmoid", "tanh", "sin", "clamp", "maximum", "eq", "lt",
    "logical_and", "where", "masked_fill",
    # activations
    "nn.functional.relu", "nn.functional.gelu", "nn.functional.silu", "nn.functional.hardswish",
    # reductions
    "sum", "mean", "amax", "argmax", "prod", "var", "max.reduction_with_dim",
    # matmul / linear
    "matmul", "mm", "bmm", "addmm", "nn.functional.linear", "einsum",
    # conv, pooling
    "nn.functional.conv1d", "nn.functional.conv2d", "nn.functional.max_pool2d",
    "nn.functional.avg_pool2d",
    # norms, softmax, attention
    "nn.functional.layer_norm", "nn.functional.batch_norm", "nn.functional.group_norm",
    "softmax", "log_softmax", "nn.functional.scaled_dot_product_attention",
    # indexing / gather / scatter
    "gather", "scatter", "index_select", "index_put", "take_along_dim", "nn.functional.embedding",
    # shape ops
    "cat", "stack", "reshape", "permute", "transpose", "squeeze", "unsqueeze", "expand", "flatten",
    "nn.functional.pad.constant", "nn.functional.interpolate.nearest",
    # scans, search, sort
    "cumsum", "topk", "sort",
    # factories
    "arange", "full_like",
]
SUBSET_DTYPES = ["float32", "int64"]


# ----------------------------------------------------------------------------------------------
# The per-sample part: runs in a worker (or in-process, for tests).

def _torch():
    import torch
    return torch


def load_ops():
    """{key: OpInfo} for op_db, key "name" or "name.variant"."""
    warnings.filterwarnings("ignore")
    from torch.testing._internal.common_methods_invocations import op_db
    ops = {}
    for op in op_db:
        ops[op_key(op)] = op
    return ops


def op_key(op) -> str:
    return f"{op.name}.{op.variant_test_name}" if op.variant_test_name else op.name


def op_dtypes(op, wanted=DTYPES) -> list[str]:
    torch = _torch()
    declared = op.supported_dtypes("cpu")
    return [d for d in wanted if getattr(torch, d) in declared]


def get_samples(op, dtype: str, max_samples: int):
    """The first max_samples samples, generated from a fixed seed so that a restarted worker sees
    the same ones."""
    torch = _torch()
    torch.manual_seed(0)
    return list(itertools.islice(op.sample_inputs("cpu", getattr(torch, dtype), requires_grad=False),
                                 max_samples))


def build_module(fn, sample):
    """(module, args): every tensor of (input, args, kwargs) becomes a positional input of the
    module; everything else is baked in."""
    torch = _torch()
    from torch.utils import _pytree as pytree
    leaves, spec = pytree.tree_flatten((sample.input, tuple(sample.args), dict(sample.kwargs)))
    is_tensor = [isinstance(x, torch.Tensor) for x in leaves]
    consts = [None if t else x for t, x in zip(is_tensor, leaves)]
    tensors = tuple(x for t, x in zip(is_tensor, leaves) if t)

    class SampleModule(torch.nn.Module):
        def forward(self, *inputs):
            it = iter(inputs)
            filled = [next(it) if t else c for t, c in zip(is_tensor, consts)]
            inp, args, kwargs = pytree.tree_unflatten(filled, spec)
            return fn(inp, *args, **kwargs)

    return SampleModule().eval(), tensors


def _clone(args):
    return tuple(a.clone() for a in args)


def flatten_outputs(out) -> list:
    """Tensor leaves of an output pytree; Python scalars become 0-d tensors."""
    torch = _torch()
    from torch.utils import _pytree as pytree
    flat = []
    for leaf in pytree.tree_leaves(out):
        if isinstance(leaf, torch.Tensor):
            flat.append(leaf)
        elif isinstance(leaf, (bool, int, float)):
            flat.append(torch.tensor(leaf))
        elif leaf is not None:
            flat.append(leaf)
    return flat


def tolerance(name: str, variant: str, dtype: str):
    """(rtol, atol, reason) from TOLERANCES, or None."""
    for k in ((name, variant, dtype), (name, variant, "*"), (name, "*", dtype), (name, "*", "*")):
        if k in TOLERANCES:
            return TOLERANCES[k]
    return None


def _split_key(key: str):
    """("name", "variant") of a key; names themselves hold dots (nn.functional.x)."""
    ops = _KEYS.get(key)
    return ops if ops else (key, "")


_KEYS: dict[str, tuple[str, str]] = {}


def _max_abs_diff(a, e) -> float | None:
    torch = _torch()
    try:
        if a.shape != e.shape:
            return None
        if a.numel() == 0:
            return 0.0
        if a.is_complex() or e.is_complex():
            d = (a.to(torch.complex128) - e.to(torch.complex128)).abs()
        else:
            d = (a.to(torch.float64) - e.to(torch.float64)).abs()
        both_nan = a.to(torch.float64).isnan() & e.to(torch.float64).isnan() if not d.is_complex() else None
        if both_nan is not None:
            d = torch.where(both_nan, torch.zeros_like(d), d)
        d = torch.where(d.isnan(), torch.full_like(d, math.inf), d)
        return float(d.max())
    except Exception:
        return None


def compare(actual, expected, *, random=False, tol=None) -> dict:
    """{"status": "pass"} or a mismatch record. actual, expected: lists of tensors."""
    torch = _torch()
    if len(actual) != len(expected):
        return {"status": "mismatch", "message": f"{len(actual)} outputs, eager has {len(expected)}",
                "max_abs_diff": None}
    worst = None
    for i, (a, e) in enumerate(zip(actual, expected)):
        if not isinstance(e, torch.Tensor):
            return {"status": "mismatch", "message": f"output {i}: eager gives {type(e).__name__}",
                    "max_abs_diff": None}
        if random:
            if tuple(a.shape) != tuple(e.shape) or a.dtype != e.dtype:
                return {"status": "mismatch", "message": f"output {i}: {a.dtype}{list(a.shape)}, eager "
                        f"{e.dtype}{list(e.shape)} (random op: shape and dtype only)", "max_abs_diff": None}
            continue
        kw = {} if tol is None else {"rtol": tol[0], "atol": tol[1]}
        try:
            torch.testing.assert_close(a, e, equal_nan=True, **kw)
        except AssertionError as err:
            diff = _max_abs_diff(a, e)
            msg = "; ".join(x.strip() for x in str(err).split("\n") if x.strip())
            if diff is not None:
                worst = diff if worst is None else max(worst, diff)
            return {"status": "mismatch", "message": f"output {i}: {msg}"[:300],
                    "max_abs_diff": diff}
    return {"status": "pass"}


def _chain(e):
    seen = []
    while e is not None and e not in seen:
        seen.append(e)
        e = e.__cause__ or e.__context__
    return seen


_ANSI = None


def _msg(e) -> str:
    global _ANSI
    if _ANSI is None:
        import re
        _ANSI = re.compile(r"\x1b\[[0-9;]*m")
    s = _ANSI.sub("", f"{type(e).__name__}: {e}")
    s = " ".join(s.split())
    return s[:400]


def classify_export_error(exporter: str, e: BaseException) -> dict:
    if exporter == "oxport":
        import oxport
        if isinstance(e, oxport.CaptureError):
            return {"status": "capture", "message": _msg(e)}
        if isinstance(e, oxport.UnsupportedOpError):
            targets = sorted({str(u.get("target")) for u in e.unsupported})
            return {"status": "unsupported", "message": "; ".join(targets), "unsupported": targets}
        if isinstance(e, oxport.OnnxRuntimeError):
            return {"status": "runtime", "message": _msg(e)}
        return {"status": "lowering", "message": _msg(e)}
    from torch.onnx._internal.exporter import _errors as terr
    chain = _chain(e)
    if any(isinstance(x, terr.TorchExportError) for x in chain):
        return {"status": "capture", "message": _msg(e)}
    if any(isinstance(x, terr.DispatchError) for x in chain):
        d = next(x for x in chain if isinstance(x, terr.DispatchError))
        return {"status": "unsupported", "message": _msg(d)}
    # ConversionError says only which step failed: the innermost cause says why
    inner = chain[-1]
    return {"status": "lowering", "message": _msg(inner) if inner is not e else _msg(e)}


def export_with(exporter: str, module, args):
    if exporter == "oxport":
        import oxport
        return oxport.export(module, args, optimize=True, verbose=False)
    torch = _torch()
    return torch.onnx.export(module, args, dynamo=True, optimize=True, verbose=False)


def run_exporter(exporter: str, module, args, expected, *, random=False, tol=None) -> dict:
    """Export, run in ONNX Runtime and compare one sample with one exporter."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            prog = export_with(exporter, module, _clone(args))
        except Exception as e:
            return classify_export_error(exporter, e)
        try:
            actual = prog(*_clone(args))
            actual = flatten_outputs(actual)
        except Exception as e:
            return {"status": "runtime", "message": _msg(e)}
        finally:
            try:
                prog.release()
            except Exception:
                pass
    return compare(actual, expected, random=random, tol=tol)


def eager(module, args):
    return flatten_outputs(module(*_clone(args)))


def run_sample(op, dtype: str, sample, exporters=EXPORTERS, on_start=None) -> dict:
    """{"eager_error": msg} or {exporter: result} for one sample."""
    torch = _torch()
    module, args = build_module(op.op, sample)
    random = op.name in RANDOM_OPS
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.manual_seed(0)
            expected = eager(module, args)
    except Exception as e:
        return {"eager_error": _msg(e)}
    tol = tolerance(op.name, op.variant_test_name, dtype)
    out = {}
    for ex in exporters:
        if on_start:
            on_start(ex)
        t0 = time.time()
        with torch.no_grad():
            torch.manual_seed(0)
            r = run_exporter(ex, module, args, expected, random=random, tol=tol)
        r["seconds"] = round(time.time() - t0, 2)
        out[ex] = r
    return out


# ----------------------------------------------------------------------------------------------
# The worker: reads tasks as JSON lines on stdin, writes events as JSON lines on its own fd.

def worker_main(max_samples: int):
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)                      # whatever the libraries print goes to stderr
    sys.stdout = sys.stderr
    parent = os.getppid()

    def orphaned():                    # the driver was killed: do not outlive it
        while os.getppid() == parent:
            time.sleep(2)
        os._exit(1)
    threading.Thread(target=orphaned, daemon=True).start()
    import torch
    torch.set_num_threads(1)
    ops = load_ops()

    def emit(**kw):
        proto.write(json.dumps(kw) + "\n")
        proto.flush()

    emit(event="ready")
    for line in sys.stdin:
        task = json.loads(line)
        op = ops[task["key"]]
        dtype = task["dtype"]
        exporters = list(task["exporters"])
        try:
            samples = get_samples(op, dtype, max_samples)
        except Exception as e:
            emit(event="done", nsamples=0, error=_msg(e))
            continue
        for i in range(task["start"], len(samples)):
            if not exporters:
                break
            emit(event="at", sample=i, exporter="eager")
            try:
                res = run_sample(op, dtype, samples[i], exporters,
                                 on_start=lambda ex, i=i: emit(event="at", sample=i, exporter=ex))
            except Exception as e:
                res = {"eager_error": "harness: " + _msg(e) + " " + traceback.format_exc(limit=3)[-300:]}
            emit(event="sample", sample=i, result=res)
            if "eager_error" not in res:
                both_capture = all(res.get(x, {}).get("status") == "capture" for x in EXPORTERS)
                if task.get("keep_on_capture"):   # reuse: the other exporter's capture failures are unknown here
                    both_capture = all(res[x]["status"] == "capture" for x in exporters)
                if not both_capture:
                    exporters = [x for x in exporters if res[x]["status"] == "pass"]
        emit(event="done", nsamples=len(samples))


class Worker:
    def __init__(self, max_samples: int, timeout: float, log):
        self.max_samples, self.timeout, self.log = max_samples, timeout, log
        self.proc = None
        self.tasks = 0

    def start(self):
        env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
        self.proc = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--worker", "--max-samples", str(self.max_samples)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, env=env, cwd=ROOT, bufsize=0)
        self.tasks = 0
        self.buf = b""
        self.eof = False
        ev = self.read(300)
        if not ev or ev.get("event") != "ready":
            raise RuntimeError(f"worker did not start: {ev}")

    def stop(self):
        if self.proc:
            try:
                self.proc.kill()
                self.proc.wait(5)
            except Exception:
                pass
            self.proc = None

    def read(self, timeout):
        """The next event, or None on a timeout or a dead worker."""
        fd = self.proc.stdout.fileno()
        deadline = time.time() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.time()
            if left <= 0:
                return None
            r, _, _ = select.select([fd], [], [], left)
            if not r:
                return None
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                self.eof = True
                return None
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        try:
            return json.loads(line)
        except ValueError:
            return self.read(max(0.0, deadline - time.time()))

    def run(self, key: str, dtype: str, start: int, exporters: list[str], keep_on_capture=False):
        """Yields events; ends with {"event": "done"} or {"event": "crash", ...}."""
        if self.proc is None or self.proc.poll() is not None or self.tasks >= 100:
            for attempt in range(3):
                self.stop()
                try:
                    self.start()
                    break
                except Exception as e:    # e.g. the extension being reinstalled under us
                    self.stop()
                    if attempt == 2:
                        yield {"event": "crash", "at": None, "message": f"worker could not start: {e}"}
                        return
                    time.sleep(30)
        self.tasks += 1
        self.proc.stdin.write((json.dumps(dict(key=key, dtype=dtype, start=start, exporters=exporters,
                                                    keep_on_capture=keep_on_capture))
                               + "\n").encode())
        self.proc.stdin.flush()
        at = None
        timeout = 300  # sample generation
        while True:
            ev = self.read(timeout)
            if ev is None:
                if self.eof:
                    try:
                        self.proc.wait(10)
                    except subprocess.TimeoutExpired:
                        pass
                dead = self.proc.poll()
                why = (f"worker died with {_signal_name(dead)}" if dead is not None
                       else f"timeout: no result after {timeout:.0f} s")
                self.stop()
                yield {"event": "crash", "at": at, "message": why}
                return
            if ev["event"] == "at":
                at = (ev["sample"], ev["exporter"])
                timeout = self.timeout
            yield ev
            if ev["event"] == "done":
                return


def _signal_name(rc):
    import signal
    if rc is not None and rc < 0:
        try:
            return f"signal {signal.Signals(-rc).name}"
        except ValueError:
            return f"signal {-rc}"
    return f"exit code {rc}"


def run_pair(worker: Worker, key: str, dtype: str, reuse: dict | None = None) -> dict:
    """Runs every sample of (op, dtype), restarting the worker after a crash, and folds the samples
    into the pair's record. With `reuse` (this pair's record from an earlier run with the same
    torch, onnx, onnxscript and onnxruntime), only oxport runs and torch.onnx's result is taken from
    it."""
    samples: dict[int, dict] = {}
    run_set = ["oxport"] if reuse else list(EXPORTERS)
    exporters = list(run_set)
    start = 0
    nsamples = None
    error = None
    t0 = time.time()
    while True:
        crashed = None
        for ev in worker.run(key, dtype, start, exporters,
                             keep_on_capture=bool(reuse and reuse.get("not_exportable_samples"))):
            if ev["event"] == "sample":
                samples.setdefault(ev["sample"], {}).update(ev["result"])
            elif ev["event"] == "done":
                nsamples = ev["nsamples"]
                error = ev.get("error")
            elif ev["event"] == "crash":
                crashed = ev
        if crashed is None:
            break
        at = crashed["at"]
        if at is None:       # died generating samples, or did not start
            error = crashed["message"] if "start" in crashed["message"] else "sample generation: " + crashed["message"]
            nsamples = 0
            break
        i, ex = at
        rec = samples.setdefault(i, {})
        if ex == "eager":
            rec.clear()
            rec["eager_error"] = "crash: " + crashed["message"]
            start = i + 1
        else:
            rec[ex] = {"status": "crash", "message": crashed["message"]}
            # the exporters that ran this sample before the crash keep their result
            exporters = [x for x in exporters if x != ex and x not in rec]
            if exporters:
                start = i          # the rest of this sample for the others, then go on
            else:
                exporters = [x for x in run_set if all(samples[j].get(x, {}).get("status", "pass") == "pass"
                                                         for j in samples if "eager_error" not in samples[j])]
                start = i + 1
        # exporters that failed already have no more to run
        exporters = [x for x in exporters if all(samples[j].get(x, {}).get("status", "pass") == "pass"
                                                 for j in samples if "eager_error" not in samples[j]
                                                 and not _both_capture(samples[j]))]
        if not exporters:
            break
    if reuse:
        # The earlier run left out the samples neither exporter could capture; the first that many
        # samples oxport cannot capture stand for them.
        left = reuse.get("not_exportable_samples", 0)
        for i in sorted(samples):
            r = samples[i]
            if left and r.get("oxport", {}).get("status") == "capture":
                r["torch_onnx"] = {"status": "capture", "message": "(reused: not capturable)"}
                left -= 1
    rec = fold(key, dtype, samples, nsamples, error, time.time() - t0)
    if reuse and rec["status"] == "tested":
        rec["torch_onnx"] = dict(reuse["torch_onnx"], reused=True)
    return rec


def _both_capture(s):
    return all(s.get(x, {}).get("status") == "capture" for x in EXPORTERS)


def fold(key, dtype, samples, nsamples, error, seconds) -> dict:
    name, variant = _split_key(key)
    rec = {"op": key, "name": name, "variant": variant, "dtype": dtype,
           "samples": nsamples or 0, "random": name in RANDOM_OPS, "seconds": round(seconds, 1)}
    tested = [i for i in sorted(samples) if "eager_error" not in samples[i] and not _both_capture(samples[i])]
    not_exportable = [i for i in sorted(samples) if "eager_error" not in samples[i] and _both_capture(samples[i])]
    eager_err = [i for i in sorted(samples) if "eager_error" in samples[i]]
    rec["tested_samples"] = len(tested)
    rec["not_exportable_samples"] = len(not_exportable)
    rec["eager_error_samples"] = len(eager_err)
    if error:
        rec["error"] = error
    if not tested:
        if not_exportable:
            rec["status"] = "not_exportable"
            rec["message"] = samples[not_exportable[0]]["oxport"]["message"][:300]
        else:
            rec["status"] = "no_samples"
            rec["message"] = error or (samples[eager_err[0]]["eager_error"][:300] if eager_err else "no samples")
        for ex in EXPORTERS:
            rec[ex] = {"status": rec["status"]}
        return rec
    rec["status"] = "tested"
    for ex in EXPORTERS:
        res = {"status": "pass"}
        for i in tested:
            r = samples[i].get(ex)
            if r is None:
                continue        # not run: the exporter had failed an earlier sample
            if r["status"] != "pass":
                res = dict(r, sample=i)
                break
        res.pop("seconds", None)
        rec[ex] = res
    return rec


# ----------------------------------------------------------------------------------------------
# The driver.

def plan(args) -> list[tuple[str, str]]:
    ops = load_ops()
    for k, op in ops.items():
        _KEYS[k] = (op.name, op.variant_test_name)
    if args.subset:
        keys = list(SUBSET)
        wanted = args.dtypes or SUBSET_DTYPES
    else:
        keys = list(ops)
        wanted = args.dtypes or DTYPES
    if args.ops:
        sel = set(args.ops)
        keys = [k for k in (ops if not args.subset else keys) if k in sel or ops[k].name in sel]
        missing = sel - set(keys) - {ops[k].name for k in keys}
        if missing:
            sys.exit(f"unknown ops: {', '.join(sorted(missing))}")
    missing = [k for k in keys if k not in ops]
    if missing:
        sys.exit(f"not in op_db: {', '.join(missing)}")
    return [(k, d) for k in keys for d in op_dtypes(ops[k], wanted)]


def versions() -> dict:
    import onnx
    import onnxruntime
    import onnxscript
    import torch
    try:
        from importlib.metadata import version

        import oxport._program  # noqa: F401
        ox = version("oxport")
    except Exception:
        ox = "?"
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", "src", "python"],
                               cwd=ROOT, capture_output=True, text=True).stdout.strip()
        commit += " (with uncommitted changes in src/ or python/)" if dirty else ""
    except Exception:
        commit = "?"
    return {"python": platform.python_version(), "torch": torch.__version__, "onnx": onnx.__version__,
            "onnxruntime": onnxruntime.__version__, "onnxscript": onnxscript.__version__,
            "oxport": ox, "commit": commit}


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs ({cpu})"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ops", type=lambda s: [x for x in s.split(",") if x],
                   help="only these ops: names (all their variants) or name.variant, comma-separated")
    p.add_argument("--dtypes", type=lambda s: [x for x in s.split(",") if x],
                   help=f"comma-separated, from {','.join(DTYPES)}")
    p.add_argument("--subset", action="store_true", help="the CI subset (SUBSET, float32 and int64)")
    p.add_argument("--jobs", type=int, default=2, help="worker processes (default 2)")
    p.add_argument("--out", default=os.path.join(ROOT, "docs"), help="where coverage.{json,md} go")
    p.add_argument("--max-samples", type=int, default=DEFAULT_MAX_SAMPLES,
                   help=f"samples per (op, dtype) (default {DEFAULT_MAX_SAMPLES})")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
                   help=f"seconds per sample and exporter before it counts as a crash (default {DEFAULT_TIMEOUT:g})")
    p.add_argument("--work", default=os.path.join(ROOT, "build", "coverage"),
                   help="where the running log of workers and the records so far (coverage.partial.jsonl) go")
    p.add_argument("--report-only", action="store_true",
                   help="write coverage.md in --out from coverage.partial.jsonl in --work if there is one "
                        "(a run still going or stopped), else from coverage.json in --out")
    p.add_argument("--reuse-torch-onnx", metavar="JSON",
                   help="take torch.onnx's result for each tested pair from this earlier coverage.json "
                        "instead of exporting again (refused unless its torch, onnx, onnxscript and "
                        "onnxruntime versions are the ones installed); only oxport runs on those pairs")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        return worker_main(args.max_samples)
    if args.dtypes:
        bad = set(args.dtypes) - set(DTYPES)
        if bad:
            sys.exit(f"unknown dtypes: {', '.join(sorted(bad))}")
    os.makedirs(args.out, exist_ok=True)
    os.makedirs(args.work, exist_ok=True)
    jpath = os.path.join(args.out, "coverage.json")
    ppath = os.path.join(args.work, "coverage.partial.jsonl")
    if args.report_only:
        if not os.path.exists(ppath):
            with open(jpath) as f:
                doc = json.load(f)
        else:
            with open(ppath) as f:
                lines = [json.loads(line) for line in f if line.strip()]
            meta = next((x["meta"] for x in lines if "meta" in x),
                        {"command": "(a run still going or stopped)", "partial": True, "max_samples": "?"})
            records = [x for x in lines if "meta" not in x]
            meta["pairs_done"] = len(records)
            doc = {"meta": meta, "records": records}
        write_markdown(doc, os.path.join(args.out, "coverage.md"))
        return 0

    pairs = plan(args)
    reused: dict = {}
    reuse_meta = None
    if args.reuse_torch_onnx:
        with open(args.reuse_torch_onnx) as f:
            old = json.load(f)
        ov, nv = old["meta"].get("versions", {}), versions()
        diff = [k for k in ("torch", "onnx", "onnxscript", "onnxruntime", "python") if ov.get(k) != nv.get(k)]
        if diff:
            sys.exit(f"--reuse-torch-onnx: {args.reuse_torch_onnx} was made with other versions of "
                     f"{', '.join(diff)}; rerun without it")
        if old["meta"].get("max_samples") != args.max_samples:
            sys.exit(f"--reuse-torch-onnx: {args.reuse_torch_onnx} used --max-samples "
                     f"{old['meta'].get('max_samples')}, this run {args.max_samples}")
        reused = {(r["op"], r["dtype"]): r for r in old["records"] if r.get("status") == "tested"}
        # a file that reused an earlier one passes on where its torch.onnx results came from
        reuse_meta = dict(old["meta"].get("reused_torch_onnx") or
                          {"date": old["meta"].get("date"), "commit": ov.get("commit")},
                          **{"from": args.reuse_torch_onnx})
    command = "python tools/opinfo.py " + " ".join(a for a in (argv if argv is not None else sys.argv[1:]))
    meta = {"command": command.strip(), "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": machine(), "versions": versions(), "max_samples": args.max_samples,
            "timeout": args.timeout, "jobs": args.jobs, "subset": args.subset,
            "dtypes": args.dtypes or (SUBSET_DTYPES if args.subset else DTYPES), "pairs_planned": len(pairs)}
    if reuse_meta:
        meta["reused_torch_onnx"] = reuse_meta
    print(f"{len(pairs)} (op, dtype) pairs, {args.jobs} workers, up to {args.max_samples} samples each",
          flush=True)
    todo: queue.Queue = queue.Queue()
    for i, pr in enumerate(pairs):
        todo.put((i, pr))
    results: dict[int, dict] = {}
    lock = threading.Lock()
    t0 = time.time()
    # both stay open for the whole run and are closed at its end
    log = open(os.path.join(args.work, "workers.log"), "w")  # noqa: SIM115
    partial = open(ppath, "w")  # noqa: SIM115
    partial.write(json.dumps({"meta": dict(meta, partial=True)}) + "\n")

    def drive():
        w = Worker(args.max_samples, args.timeout, log)
        try:
            while True:
                try:
                    i, (key, dtype) = todo.get_nowait()
                except queue.Empty:
                    return
                try:
                    rec = run_pair(w, key, dtype, reused.get((key, dtype)))
                except Exception as e:
                    w.stop()
                    rec = fold(key, dtype, {}, 0, "harness: " + _msg(e), 0.0)
                with lock:
                    results[i] = rec
                    partial.write(json.dumps(rec) + "\n")
                    partial.flush()
                    n = len(results)
                    ox, to = rec["oxport"]["status"], rec["torch_onnx"]["status"]
                    print(f"[{n}/{len(pairs)} {time.time() - t0:6.0f}s] {key} {dtype}: oxport {ox}, "
                          f"torch.onnx {to}", flush=True)
        finally:
            w.stop()

    threads = [threading.Thread(target=drive, daemon=True) for _ in range(max(1, args.jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    meta["seconds"] = round(time.time() - t0)
    doc = {"meta": meta, "records": [results[i] for i in sorted(results)]}
    with open(jpath, "w") as f:
        json.dump(doc, f, indent=1)
    partial.close()
    os.remove(ppath)
    log.close()
    write_markdown(doc, os.path.join(args.out, "coverage.md"))
    s = summarize(doc["records"])
    print(f"wrote {jpath} and coverage.md: {s['tested']} pairs tested, oxport {s['pass']['oxport']}, "
          f"torch.onnx {s['pass']['torch_onnx']}", flush=True)
    return 0


# ----------------------------------------------------------------------------------------------
# The page.

def summarize(records) -> dict:
    tested = [r for r in records if r["status"] == "tested"]
    s = {"tested": len(tested),
         "not_exportable": sum(r["status"] == "not_exportable" for r in records),
         "no_samples": sum(r["status"] == "no_samples" for r in records),
         "pass": {ex: sum(r[ex]["status"] == "pass" for r in tested) for ex in EXPORTERS},
         "categories": {ex: {c: sum(r[ex]["status"] == c for r in tested) for c in CATEGORIES} for ex in EXPORTERS}}
    s["onnx_only"] = [r for r in tested if r["torch_onnx"]["status"] == "pass" and r["oxport"]["status"] != "pass"]
    s["oxport_only"] = [r for r in tested if r["oxport"]["status"] == "pass" and r["torch_onnx"]["status"] != "pass"]
    return s


def _pct(a, b):
    return f"{100.0 * a / b:.1f}%" if b else "–"


def reason(r: dict) -> str:
    st = r["status"]
    if st == "pass":
        return "pass"
    if st == "unsupported" and r.get("unsupported"):
        return "unsupported: " + ", ".join(r["unsupported"])
    if st == "mismatch":
        d = r.get("max_abs_diff")
        ds = f" (max abs diff {d:.3g})" if isinstance(d, (int, float)) else ""
        return f"mismatch{ds}: {r.get('message', '')}"
    return f"{st}: {r.get('message', '')}"


def _cell(text: str, n=160) -> str:
    text = " ".join(str(text).split()).replace("|", "\\|")
    return text if len(text) <= n else text[:n - 1] + "…"


def write_markdown(doc: dict, path: str):
    meta, records = doc["meta"], doc["records"]
    s = summarize(records)
    v = meta.get("versions", {})
    L = ["# Operator coverage: OpInfo samples through oxport and torch.onnx", ""]
    took = ""
    if meta.get("seconds"):
        sec = meta["seconds"]
        took = f"{sec / 3600:.1f} h" if sec >= 3600 else f"{sec / 60:.0f} min"
    L.append("Generated by `tools/opinfo.py` (issue 4); do not edit by hand. `make coverage` regenerates "
             "`docs/coverage.{json,md}` from every OpInfo; `make coverage-ci` runs the CI subset into "
             "`build/coverage/`. `python tools/opinfo.py --report-only --out DIR` rewrites the page from the "
             "json.")
    L.append("")
    if meta.get("partial"):
        L += [f"**Partial run**: the figures below cover only the {len(records)} pairs finished so far"
              + (f" of {meta['pairs_planned']}" if meta.get("pairs_planned") else "") + ".", ""]
    L.append(f"- command: `{meta.get('command', '?')}`")
    if v:
        L.append(f"- versions: torch {v.get('torch')}, onnx {v.get('onnx')}, onnxruntime {v.get('onnxruntime')}, "
                 f"onnxscript {v.get('onnxscript')}, oxport {v.get('oxport')} at commit {v.get('commit')}, "
                 f"Python {v.get('python')}")
    if meta.get("machine"):
        L.append(f"- machine: {meta['machine']}; {meta.get('jobs')} worker processes at nice 19 beside other "
                 f"work; run on {meta.get('date')}" + (f", took {took}" if took else ""))
    L.append(f"- samples: the first {meta.get('max_samples')} of `op.sample_inputs('cpu', dtype, requires_grad=False)` "
             f"per (op, dtype), seed 0; dtypes {', '.join(meta.get('dtypes', DTYPES))} where the OpInfo declares "
             f"them for CPU; a pair passes when all its tested samples pass (an exporter's later samples are "
             f"skipped once it has failed one); timeout {meta.get('timeout', DEFAULT_TIMEOUT):g} s per sample "
             f"and exporter")
    ru = meta.get("reused_torch_onnx")
    if ru:
        n = sum(1 for r in records if r.get("torch_onnx", {}).get("reused"))
        L.append(f"- torch.onnx's results for {n} of the tested pairs are those of the run of {ru.get('date')} "
                 f"(`{ru.get('from')}`, same torch, onnx, onnxscript, onnxruntime and Python), taken by "
                 f"`--reuse-torch-onnx`: they do not depend on oxport; only oxport was exported again on them. "
                 f"`make coverage` without it runs both")
    L.append("- comparison: `torch.testing.assert_close(onnx, eager, equal_nan=True)` at default tolerances, except "
             "the overrides in `TOLERANCES` in `tools/opinfo.py`; random ops (`RANDOM_OPS`) compare shape and "
             "dtype only")
    L.append(f"- not exportable: {s['not_exportable']} pairs whose every sample `torch.export` cannot capture for "
             f"either exporter are left out of every figure below; {s['no_samples']} pairs had no sample eager "
             f"could run")
    L.append("")
    t = s["tested"]
    po, pt = s["pass"]["oxport"], s["pass"]["torch_onnx"]
    L += ["## Totals", "", "| | pairs | % of tested |", "| --- | ---: | ---: |",
          f"| (op, dtype) pairs tested | {t} | |",
          f"| oxport passes | {po} | {_pct(po, t)} |",
          f"| torch.onnx passes | {pt} | {_pct(pt, t)} |",
          f"| torch.onnx passes, oxport fails | {len(s['onnx_only'])} | "
          f"{_pct(len(s['onnx_only']), pt)} of torch.onnx's passes |",
          f"| oxport passes, torch.onnx fails | {len(s['oxport_only'])} | "
          f"{_pct(len(s['oxport_only']), po)} of oxport's passes |",
          ""]
    L.append(f"oxport passes {_pct(pt - len(s['onnx_only']), pt)} of the pairs torch.onnx passes.")
    L += ["", "## Failures by category", "", "| category | oxport | torch.onnx |", "| --- | ---: | ---: |"]
    for c in CATEGORIES:
        L.append(f"| {c} | {s['categories']['oxport'][c]} | {s['categories']['torch_onnx'][c]} |")
    L += ["", "Categories: `capture` torch.export failed inside the exporter; `unsupported` no lowering for an ATen "
          "op (oxport's UnsupportedOpError, torch.onnx's DispatchError); `lowering` any other export error; "
          "`runtime` ONNX Runtime (or feeding it) failed; `mismatch` the outputs differ from eager; `crash` the "
          "worker died or ran past the timeout.", ""]

    # unsupported overloads, by number of pairs
    counts: dict[str, list] = {}
    gap: dict[str, int] = {}
    for r in records:
        if r["status"] != "tested":
            continue
        for tgt in r["oxport"].get("unsupported", []):
            counts.setdefault(tgt, []).append(r["op"])
            if r["torch_onnx"]["status"] == "pass":
                gap[tgt] = gap.get(tgt, 0) + 1
    if counts:
        L += ["## ATen overloads oxport lacks", "",
              "Every overload oxport's UnsupportedOpError names (in a pair's first failing sample), with the "
              "number of pairs it fails and, of those, the number torch.onnx passes (a pair can name several "
              "overloads).", "",
              "| overload | pairs torch.onnx passes | pairs | ops |", "| --- | ---: | ---: | --- |"]
        for tgt, lst in sorted(counts.items(), key=lambda kv: (-gap.get(kv[0], 0), -len(kv[1]), kv[0])):
            L.append(f"| `{tgt}` | {gap.get(tgt, 0)} | {len(lst)} | {_cell(', '.join(sorted(set(lst))), 200)} |")
        L.append("")

    L += ["## torch.onnx passes, oxport fails", "",
          "Grouped by op, most dtypes first; the reason is oxport's first failing sample (for `unsupported`, "
          "the overloads that sample's error lists).", "",
          "| op | dtypes | oxport's reason |", "| --- | --- | --- |"]
    by_op: dict[str, list] = {}
    for r in s["onnx_only"]:
        by_op.setdefault(r["op"], []).append(r)
    for op in sorted(by_op, key=lambda k: (-len(by_op[k]), k)):
        rs = by_op[op]
        reasons: dict[str, list] = {}
        for r in rs:
            reasons.setdefault(reason(r["oxport"]), []).append(r["dtype"])
        for i, (why, dts) in enumerate(reasons.items()):
            L.append(f"| {op if i == 0 else ''} | {', '.join(dts)} | {_cell(why)} |")
    L.append("")
    if s["oxport_only"]:
        L += ["## oxport passes, torch.onnx fails", "", "| op | dtype | torch.onnx's reason |", "| --- | --- | --- |"]
        for r in s["oxport_only"]:
            L.append(f"| {r['op']} | {r['dtype']} | {_cell(reason(r['torch_onnx']))} |")
        L.append("")

    L += ["## Every pair", "", "| op | dtype | samples | oxport | torch.onnx |", "| --- | --- | ---: | --- | --- |"]
    for r in records:
        if r["status"] == "tested":
            ox, to = _cell(reason(r["oxport"]), 120), _cell(reason(r["torch_onnx"]), 120)
            n = str(r["tested_samples"])
        else:
            ox = to = r["status"].replace("_", " ")
            n = "0"
        L.append(f"| {r['op']} | {r['dtype']} | {n} | {ox} | {to} |")
    L.append("")
    with open(path, "w") as f:
        f.write("\n".join(L))


if __name__ == "__main__":
    sys.exit(main())
