"""Benchmark oxport against torch.onnx: every model through both exporters, each in a fresh process.

    make bench                                  # every model, 3 runs; rewrites the outputs below
    .venv/bin/python bench/run.py --quick       # a few small models, 1 run: outputs in bench/out/
    .venv/bin/python bench/run.py --models gpt2,depth512 --runs 1
    .venv/bin/python bench/run.py --report-only # rewrite the page and the plot from the results

A full run writes bench/results.json (every run and the medians), docs/benchmarks.md and
docs/bench_depth.png. A partial run (--quick or --models) writes the same three files to bench/out/
unless --out says where, so the committed page only ever shows full runs.
"""
from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import os
import platform
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import one
import zoo

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
EXPORTERS = ("torch.onnx", "oxport")
PAGE_STAGES = ("capture", "decompose", "translate", "optimize", "save")
PACKAGES = ("torch", "torchvision", "transformers", "onnx", "onnxruntime", "onnxscript", "numpy")
PLOT_NAME = "bench_depth.png"


# ---- running ----

def run_child(exporter: str, model: str, timeout: float, check: bool = False) -> dict:
    """One measurement in a fresh interpreter. Whatever goes wrong becomes a failed record. With
    `check`, oxport's child also compares its optimized model with an unoptimized export."""
    cmd = [sys.executable, os.path.join(BENCH, "one.py"), "--exporter", exporter, "--model", model]
    if check:
        cmd.append("--check-unoptimized")
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=env)
    except subprocess.TimeoutExpired:
        return {"model": model, "exporter": exporter, "status": "failed",
                "reason": f"timeout: no result after {timeout:.0f} s", "process_s": timeout}
    lines = [line for line in proc.stdout.splitlines() if line.startswith(one.MARKER)]
    if lines:
        record = json.loads(lines[-1][len(one.MARKER):])
    else:
        tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        record = {"model": model, "exporter": exporter, "status": "failed",
                  "reason": f"process exited with code {proc.returncode}: {tail}"}
    record["process_s"] = time.perf_counter() - t0
    return record


def run_all(models: list[str], runs: int, timeout: float) -> list[dict]:
    records = []
    total = len(models) * runs * len(EXPORTERS)
    for model in models:
        for i in range(runs):
            for exporter in EXPORTERS:
                r = run_child(exporter, model, timeout, check=i == 0)
                r["run"] = i
                records.append(r)
                done = (f"{r['end_to_end_s']:.2f} s export" if r["status"] == "ok"
                        else f"FAILED {r['reason'][:100]}")
                print(f"[{len(records):3}/{total}] {model:<20} {exporter:<10} run {i + 1}/{runs}: "
                      f"{done} ({r['process_s']:.1f} s process)", file=sys.stderr, flush=True)
    return records


# ---- medians ----

def flatten(record: dict) -> dict[str, float]:
    """The numeric figures of a record, stages as stage.<name>."""
    flat = {k: v for k, v in record.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "run"}
    flat.update({f"stage.{k}": v for k, v in record.get("stages", {}).items()})
    return flat


def summarize(records: list[dict]) -> dict:
    """Per model and exporter: the median of every figure over the runs that succeeded, and why the
    others failed."""
    out: dict = {}
    for r in records:
        out.setdefault(r["model"], {}).setdefault(r["exporter"], []).append(r)
    for by_exporter in out.values():
        for exporter, rs in by_exporter.items():
            ok = [flatten(r) for r in rs if r["status"] == "ok"]
            keys = {k for f in ok for k in f}   # some figures come from the first run only
            summary = {k: statistics.median(f[k] for f in ok if k in f) for k in sorted(keys)}
            summary.update(runs_ok=len(ok), runs_failed=len(rs) - len(ok))
            reasons = sorted({r.get("reason") or r.get("ort_error") for r in rs} - {None})
            if reasons:
                summary["reasons"] = reasons
            summary["inputs"] = next((r["inputs"] for r in rs if "inputs" in r), None)
            by_exporter[exporter] = summary
    return out


# ---- machine and versions ----

def machine() -> dict:
    cpu = platform.processor() or "unknown"
    mem = 0
    with open("/proc/cpuinfo") as f:
        cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    with open("/proc/meminfo") as f:
        mem = next((int(line.split()[1]) * 1024 for line in f if line.startswith("MemTotal:")), 0)
    return {"cpu": cpu, "cores": len(os.sched_getaffinity(0)), "memory_bytes": mem,
            "os": platform.platform()}


def versions() -> dict:
    v = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            v[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            v[name] = "not installed"

    def git(*args):
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    v["oxport"] = commit + (" with uncommitted changes" if git("status", "--porcelain") else "")
    return v


# ---- the page ----

def fmt_s(s) -> str:
    if s is None:
        return "—"
    return f"{s * 1000:.1f} ms" if s < 1 else f"{s:.2f} s"


def fmt_mb(mb) -> str:
    return "—" if mb is None else (f"{mb:.0f} MB" if mb < 10000 else f"{mb / 1024:.2f} GB")


def fmt_bytes(b) -> str:
    return "—" if b is None else fmt_mb(b / 2**20) if b >= 2**20 else f"{b / 1024:.1f} KB"


def fmt_count(n) -> str:
    return "—" if n is None else f"{n:.0f}" if n < 1e5 else f"{n / 1e6:.1f} M"


def fmt_diff(d) -> str:
    return "—" if d is None else f"{d:.1e}"


def ratio(ox, to) -> str:
    """oxport / torch.onnx; small ratios as 1/N, which reads better than 0.00."""
    if ox is None or not to:
        return "—"
    r = ox / to
    return f"{r:.2f}" if r >= 0.1 or r == 0 else f"1/{1 / r:.0f}"


def cell(m: dict, key: str, fmt) -> str:
    return fmt(m[key]) if key in m else ("failed" if m.get("runs_failed") else "—")


ROWS = [   # (label, key in the medians, format, whether a ratio means something)
    ("end to end (export + save)", "end_to_end_s", fmt_s, True),
    *[(f"· {s}", f"stage.{s}", fmt_s, True) for s in PAGE_STAGES],
    ("after capture (all but capture)", "post_capture_s", fmt_s, True),
    ("peak RSS of the export", "peak_rss_mb", fmt_mb, True),
    ("RSS before export (imports + model)", "rss_baseline_mb", fmt_mb, True),
    ("RSS added by the export", "rss_increment_mb", fmt_mb, True),
    ("nodes", "nodes", fmt_count, True),
    ("initializer bytes", "initializer_bytes", fmt_bytes, True),
    ("file size (model + data)", "file_bytes", fmt_bytes, True),
    ("ORT session creation", "session_s", fmt_s, True),
    ("ORT inference latency", "latency_s", fmt_s, True),
    ("max abs(onnx − eager)", "max_abs_diff", fmt_diff, False),
]


def model_section(name: str, by: dict) -> list[str]:
    to, ox = by.get("torch.onnx", {}), by.get("oxport", {})
    params = to.get("params") or ox.get("params")
    inputs = ", ".join(to.get("inputs") or ox.get("inputs") or [])
    lines = [f"### {name}", ""]
    if params is not None:
        lines += [f"{fmt_count(params)} parameters; input {inputs}.", ""]
    lines += ["| | torch.onnx | oxport | oxport / torch.onnx |", "| --- | ---: | ---: | ---: |"]
    for label, key, fmt, has_ratio in ROWS:
        r = ratio(ox.get(key), to.get(key)) if has_ratio else ""
        lines.append(f"| {label} | {cell(to, key, fmt)} | {cell(ox, key, fmt)} | {r} |")
    for exporter, m in (("torch.onnx", to), ("oxport", ox)):
        for reason in m.get("reasons", []):
            what = f"failed in {m['runs_failed']} of {m['runs_ok'] + m['runs_failed']} runs" \
                if m.get("runs_failed") else "exported, but ONNX Runtime"
            lines.append(f"\n{exporter} {what}: `{reason}`")
    return lines + [""]


def depth_table(medians: dict) -> list[str]:
    lines = ["| depth | nodes | torch.onnx | oxport | oxport / torch.onnx |",
             "| ---: | ---: | ---: | ---: | ---: |"]
    for d in zoo.DEPTHS:
        by = medians.get(f"depth{d}")
        if by:
            to, ox = by.get("torch.onnx", {}), by.get("oxport", {})
            nodes = to.get("nodes") or ox.get("nodes")
            lines.append(f"| {d} | {fmt_count(nodes)} | {cell(to, 'end_to_end_s', fmt_s)} | "
                         f"{cell(ox, 'end_to_end_s', fmt_s)} | "
                         f"{ratio(ox.get('end_to_end_s'), to.get('end_to_end_s'))} |")
    return lines


def write_page(results: dict, path: str, plotted: bool) -> None:
    med, mach, ver = results["medians"], results["machine"], results["versions"]
    lines = [
        f"<!-- Generated by `{results['command']}` (bench/run.py). Do not edit: run it again. -->",
        "# Benchmarks: oxport and torch.onnx",
        "",
        f"Generated by `{results['command']}` (`bench/run.py`) on {results['date']}; "
        f"the raw figures of every run are in `bench/results.json`.",
        "",
        f"Every figure is the median of {results['runs']} runs. Each run is a fresh process that builds "
        "the model (seeded: the same weights and inputs for both exporters), exports it and saves it "
        "(weights inline, or as external data over 2 GB), then opens the file in ONNX Runtime (CPU) "
        "and compares its outputs with eager PyTorch. oxport runs "
        "`oxport.export(model, args, optimize=True)` then `save`; torch.onnx runs the same work as "
        "`torch.onnx.export(model, args, dynamo=True, optimize=True)` then `save`, split so that each "
        "stage is timed: its own capture strategies (`torch.export`, strict=False first), "
        "`torch.onnx.export(exported_program, optimize=False)` with `run_decompositions` timed apart "
        "(*decompose*; the rest of the call — building the op registry, type promotion, "
        "translation — is *translate*), then `optimize()` and `save()`. Both processes import "
        "torch.export's lazily loaded modules before the clock starts, as torch.onnx's own imports "
        "mostly do, so that capture times compare.",
        "",
        "Ratios are oxport / torch.onnx: below 1, oxport is faster or smaller; under 0.1 they are "
        "written 1/N. Peak RSS is the "
        "process's high-water mark at the end of the save, before ONNX Runtime is loaded; "
        "*RSS before export* is the resident size after the imports and the model build. ONNX "
        "Runtime latency is the median of up to 20 runs after a warm-up (fewer, never under 3, "
        "when they pass 5 s).",
        "",
        "## Machine and versions",
        "",
        "| | |", "| --- | --- |",
        f"| CPU | {mach['cpu']}, {mach['cores']} cores |",
        f"| memory | {mach['memory_bytes'] / 2**30:.1f} GiB |",
        f"| OS | {mach['os']} |",
        *[f"| {k} | {v} |" for k, v in ver.items()],
        f"| whole benchmark | {results['total_s'] / 60:.1f} min |",
        "",
        "## Summary",
        "",
        "| model | params | torch.onnx end to end | oxport end to end | ratio "
        "| torch.onnx after capture | oxport after capture | ratio "
        "| torch.onnx peak RSS | oxport peak RSS | ratio |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, by in med.items():
        to, ox = by.get("torch.onnx", {}), by.get("oxport", {})
        row = [name, fmt_count(to.get("params") or ox.get("params"))]
        for key, fmt in (("end_to_end_s", fmt_s), ("post_capture_s", fmt_s), ("peak_rss_mb", fmt_mb)):
            row += [cell(to, key, fmt), cell(ox, key, fmt), ratio(ox.get(key), to.get(key))]
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", "## Stages", "", "Median seconds per stage.", "",
              "| model | exporter | " + " | ".join(PAGE_STAGES) + " | end to end |",
              "| --- | --- |" + " ---: |" * (len(PAGE_STAGES) + 1)]
    for name, by in med.items():
        for exporter in EXPORTERS:
            m = by.get(exporter, {})
            cells = [cell(m, f"stage.{s}", fmt_s) for s in PAGE_STAGES] + [cell(m, "end_to_end_s", fmt_s)]
            lines.append(f"| {name} | {exporter} | " + " | ".join(cells) + " |")
    lines += ["", "## Optimizer", "",
              "Nodes in the saved model; the time of the optimizer alone (torch.onnx: "
              "`ONNXProgram.optimize()`, onnxscript's optimizer; oxport: the C passes inside "
              "`export(optimize=True)`); and, for oxport, its optimized model's ONNX Runtime outputs "
              "against those of the same model exported with `optimize=False` (first run only): the max "
              "abs difference, and that difference over the output scale (the largest |output|).", "",
              "| model | torch.onnx nodes | oxport nodes | oxport unoptimized | torch.onnx optimize | "
              "oxport optimize | ratio | opt − unopt | relative |",
              "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name, by in med.items():
        to, ox = by.get("torch.onnx", {}), by.get("oxport", {})
        lines.append(f"| {name} | {cell(to, 'nodes', fmt_count)} | {cell(ox, 'nodes', fmt_count)} | "
                     f"{cell(ox, 'unoptimized_nodes', fmt_count)} | {cell(to, 'stage.optimize', fmt_s)} | "
                     f"{cell(ox, 'stage.optimize', fmt_s)} | "
                     f"{ratio(ox.get('stage.optimize'), to.get('stage.optimize'))} | "
                     f"{cell(ox, 'opt_vs_unopt_diff', fmt_diff)} | {cell(ox, 'opt_vs_unopt_rel', fmt_diff)} |")
    if any(f"depth{d}" in med for d in zoo.DEPTHS):
        lines += ["", "## Depth sweep", "",
                  "The same block, `x + GELU(LayerNorm(Linear(x)))` with hidden size 256, repeated "
                  "N times; input 16 × 256. End-to-end export time:", ""]
        lines += depth_table(med)
        if plotted:
            lines += ["", f"![export time against depth]({PLOT_NAME})", "",
                      f"[The plot]({PLOT_NAME}): solid lines end to end, dashed lines after capture."]
    lines += ["", "## Large models", "",
              "The 2.5 GB Llama export with external data and the fake-mode Llama-2-7B export are measured "
              "by `make large` (`bench/large.py`), which writes [large.md](large.md); its last figures:", ""]
    large = os.path.join(ROOT, "docs", "large.md")
    if os.path.exists(large):
        with open(large) as f:
            lines += [line.rstrip("\n") for line in f if not line.startswith("## ")]
    else:
        lines += ["(not run yet: `make large`)"]
    lines += ["", "## Per model", ""]
    for name, by in med.items():
        lines += model_section(name, by)
    with open(path, "w") as f:
        f.write("\n".join(lines).rstrip() + "\n")


def write_plot(medians: dict, path: str) -> bool:
    """Export time against depth, log-log, both exporters. False when there is nothing to plot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    plotted = False
    for exporter, color in zip(EXPORTERS, ("tab:orange", "tab:blue")):
        for key, style, label in (("end_to_end_s", "-o", "end to end"),
                                  ("post_capture_s", "--s", "after capture")):
            points = [(d, medians[f"depth{d}"][exporter][key]) for d in zoo.DEPTHS
                      if key in medians.get(f"depth{d}", {}).get(exporter, {})]
            if points:
                ax.plot(*zip(*points), style, color=color, label=f"{exporter}, {label}")
                plotted = True
    if plotted:
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xticks(zoo.DEPTHS, [str(d) for d in zoo.DEPTHS])
        ax.set_xlabel("blocks (Linear + LayerNorm + GELU, residual)")
        ax.set_ylabel("seconds (median)")
        ax.set_title("Export time against depth")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(path, dpi=110)
    plt.close(fig)
    return plotted


def write_outputs(results: dict, out: dict) -> None:
    plotted = write_plot(results["medians"], out["plot"])
    write_page(results, out["page"], plotted)
    print(f"wrote {out['page']}" + (f" and {out['plot']}" if plotted else ""), file=sys.stderr)


# ---- main ----

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3, help="runs per model and exporter (default 3)")
    ap.add_argument("--models", help="comma-separated names, of: " + ", ".join(zoo.MODELS))
    ap.add_argument("--quick", action="store_true", help="1 run of a few small models: " + ", ".join(zoo.QUICK))
    ap.add_argument("--timeout", type=float, default=900, help="seconds before a run is killed (default 900)")
    ap.add_argument("--out", help="folder for results.json, benchmarks.md and the plot "
                                  "(default: bench/ and docs/ for a full run, bench/out/ otherwise)")
    ap.add_argument("--report-only", action="store_true", help="rewrite page and plot from results.json")
    opts = ap.parse_args()

    models = list(zoo.MODELS)
    if opts.quick:
        models, opts.runs = list(zoo.QUICK), 1
    if opts.models:
        models = [m.strip() for m in opts.models.split(",") if m.strip()]
        unknown = [m for m in models if m not in zoo.MODELS]
        if unknown:
            ap.error(f"unknown models {unknown}; known: {', '.join(zoo.MODELS)}")
    partial = opts.quick or opts.models is not None
    folder = opts.out or (os.path.join(BENCH, "out") if partial else None)
    out = ({"results": os.path.join(folder, "results.json"), "page": os.path.join(folder, "benchmarks.md"),
            "plot": os.path.join(folder, PLOT_NAME)} if folder else
           {"results": os.path.join(BENCH, "results.json"),
            "page": os.path.join(ROOT, "docs", "benchmarks.md"), "plot": os.path.join(ROOT, "docs", PLOT_NAME)})
    for path in out.values():
        os.makedirs(os.path.dirname(path), exist_ok=True)

    if opts.report_only:
        with open(out["results"]) as f:
            write_outputs(json.load(f), out)
        return 0

    t0 = time.perf_counter()
    records = run_all(models, opts.runs, opts.timeout)
    command = "make bench" if not partial and opts.runs == 3 else \
        "bench/run.py " + " ".join(sys.argv[1:])
    results = {"command": command, "date": datetime.date.today().isoformat(),
               "total_s": time.perf_counter() - t0, "runs": opts.runs,
               "machine": machine(), "versions": versions(),
               "medians": summarize(records), "records": records}
    with open(out["results"], "w") as f:
        json.dump(results, f, indent=1)
    write_outputs(results, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
