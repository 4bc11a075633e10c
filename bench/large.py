"""Large models (issue 7): what oxport costs in memory and time when the weights are big.

    nice -n 19 .venv/bin/python bench/large.py            # `make large`; writes bench/large.json
                                                          # and docs/large.md
    .venv/bin/python bench/large.py --only real|fake      # one of the two runs

(a) real: a Llama config with about 2.5 GB of float32 random weights. Export with oxport, save with
    external data, load the saved file in ONNX Runtime and compare with eager. The peak RSS of the
    export and of the save is sampled from /proc/self/statm every 5 ms (ru_maxrss cannot tell the
    two apart in one process), against the weight size; target: peak <= weights * 1.25 + 1 GiB.
(b) fake: under oxport.enable_fake_mode(), the Llama-2-7B architecture (32 layers, hidden 4096,
    intermediate 11008, 32 heads, vocab 32000), exported and saved without initializers; time and
    peak RSS of the whole run (model construction included); targets: < 2 min, < 4 GiB.

Each step runs in a fresh process (`bench/large.py --step ...`) so that one step's memory does not
count against the next; a step prints its figures as the last stdout line after `LARGE_JSON `.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MARKER = "LARGE_JSON "
GIB = 1024**3

# (a): 10 layers of hidden 2048 / intermediate 5632 and a 32000-token vocabulary, embeddings untied:
# 645 M parameters, 2.58 GB in float32.
REAL = dict(vocab_size=32000, hidden_size=2048, intermediate_size=5632, num_hidden_layers=10,
            num_attention_heads=16, num_key_value_heads=16, max_position_embeddings=2048,
            tie_word_embeddings=False)
# (b): Llama-2-7B.
FAKE = dict(vocab_size=32000, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
            num_attention_heads=32, num_key_value_heads=32, max_position_embeddings=4096,
            tie_word_embeddings=False)
SEQ = 16


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakRSS:
    """Samples the resident set size every `interval` seconds while the block runs."""

    def __init__(self, interval: float = 0.005):
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_bytes())
            self._stop.wait(self.interval)

    def __enter__(self):
        self.start = rss_bytes()
        self.peak = self.start
        self.t0 = time.perf_counter()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_bytes())
        self.seconds = time.perf_counter() - self.t0


def _llama(cfg: dict):
    from transformers import LlamaConfig, LlamaForCausalLM
    config = LlamaConfig(**cfg)
    config._attn_implementation = "sdpa"
    return LlamaForCausalLM(config).eval()


def step_real_export(work: str) -> dict:
    """(a), first process: build, eager, export, save with external data."""
    import torch

    import oxport
    torch.manual_seed(0)
    base = rss_bytes()
    t0 = time.perf_counter()
    model = _llama(REAL)
    build_s = time.perf_counter() - t0
    weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    weight_bytes += sum(b.numel() * b.element_size() for b in model.buffers())
    ids = torch.randint(0, REAL["vocab_size"], (1, SEQ), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = model(ids, use_cache=False).logits
    torch.save({"ids": ids, "logits": expected}, os.path.join(work, "expected.pt"))
    after_model = rss_bytes()
    with PeakRSS() as exp:
        program = oxport.export(model, (ids,), kwargs={"use_cache": False}, verbose=False)
    path = os.path.join(work, "llama_2_5gb.onnx")
    with PeakRSS() as sav:
        program.save(path, external_data=True)
    target = weight_bytes * 1.25 + GIB
    return {
        "config": REAL, "parameters": sum(p.numel() for p in model.parameters()),
        "weight_bytes": weight_bytes, "build_seconds": round(build_s, 2),
        "rss_before_model": base, "rss_after_model_and_eager": after_model,
        "export_seconds": round(exp.seconds, 2), "export_peak_rss": exp.peak,
        "save_seconds": round(sav.seconds, 2), "save_peak_rss": sav.peak,
        "peak_rss": max(exp.peak, sav.peak), "ru_maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "target_peak_rss": int(target), "meets_target": max(exp.peak, sav.peak) <= target,
        "timings": {k: round(v, 2) for k, v in program.timings.items()},
        "model_file_bytes": os.path.getsize(path), "data_file_bytes": os.path.getsize(path + ".data"),
    }


def step_real_check(work: str) -> dict:
    """(a), second process: the saved model in ONNX Runtime against the eager logits."""
    import onnxruntime as ort
    import torch
    path = os.path.join(work, "llama_2_5gb.onnx")
    ref = torch.load(os.path.join(work, "expected.pt"))
    inspect = shutil.which("oxport-inspect", path=os.path.join(ROOT, ".venv", "bin"))
    inspect_s = None
    if inspect:
        t0 = time.perf_counter()
        subprocess.run([inspect, path], check=True, capture_output=True)
        inspect_s = round(time.perf_counter() - t0, 3)
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    t0 = time.perf_counter()
    sess = ort.InferenceSession(path, sess_options=opts, providers=["CPUExecutionProvider"])
    load_s = time.perf_counter() - t0
    (logits,) = sess.run(None, {sess.get_inputs()[0].name: ref["ids"].numpy()})
    diff = float((torch.from_numpy(logits) - ref["logits"]).abs().max())
    ok = torch.allclose(torch.from_numpy(logits), ref["logits"], rtol=1e-3, atol=1e-4)
    return {"ort_load_seconds": round(load_s, 2), "max_abs_diff": diff, "matches_eager": bool(ok),
            "ort_peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
            "inspect_seconds": inspect_s}


def step_fake(work: str) -> dict:
    """(b): fake-mode Llama-2-7B, exported and saved without initializers."""
    import torch

    import oxport
    t0 = time.perf_counter()
    with PeakRSS() as whole:
        with oxport.enable_fake_mode():
            model = _llama(FAKE)
            ids = torch.randint(0, FAKE["vocab_size"], (1, SEQ))
        build_s = time.perf_counter() - t0
        program = oxport.export(model, (ids,), kwargs={"use_cache": False}, verbose=False)
        path = os.path.join(work, "llama2_7b_arch.onnx")
        t1 = time.perf_counter()
        program.save(path, include_initializers=False)
        save_s = time.perf_counter() - t1
    params = sum(p.numel() for p in model.parameters())
    return {
        "config": FAKE, "parameters": params, "weight_bytes_if_real": params * 4,
        "build_seconds": round(build_s, 2), "total_seconds": round(whole.seconds, 2),
        "save_seconds": round(save_s, 2),
        "timings": {k: round(v, 2) for k, v in program.timings.items()},
        "peak_rss": whole.peak, "ru_maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "meets_targets": whole.seconds < 120 and whole.peak < 4 * GIB,
        "model_file_bytes": os.path.getsize(path),
        "nodes": program._graph.stats()["nodes"],
    }


STEPS = {"real_export": step_real_export, "real_check": step_real_check, "fake": step_fake}


def run_step(name: str, work: str) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--step", name, "--work", work]
    print(f"[large] {name} ...", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(MARKER):
            result = json.loads(line[len(MARKER):])
            break
    else:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-15:]
        result = {"status": "failed", "returncode": proc.returncode, "error": "\n".join(tail)}
    result.setdefault("status", "ok")
    print(f"[large] {name}: {result['status']} in {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    return result


def _gb(n) -> str:
    return f"{n / GIB:.2f} GiB" if isinstance(n, (int, float)) else "—"


def write_markdown(res: dict, path: str) -> None:
    r, c, f = res.get("real", {}), res.get("real_check", {}), res.get("fake", {})
    lines = ["## Large models", "",
             f"`make large` (`bench/large.py`), {res['date']}, {res['machine']}; every step in a fresh "
             "process, RSS sampled from /proc/self/statm every 5 ms. Figures: `bench/large.json`.", ""]
    if r.get("status") == "ok":
        lines += [
            f"**(a) Llama, {r['parameters'] / 1e6:.0f} M parameters, {_gb(r['weight_bytes'])} of float32 "
            f"random weights** ({r['config']['num_hidden_layers']} layers, hidden {r['config']['hidden_size']}, "
            f"intermediate {r['config']['intermediate_size']}, vocab {r['config']['vocab_size']}), sequence {SEQ}:", "",
            "| step | time | peak RSS | RSS target (weights × 1.25 + 1 GiB) |",
            "| --- | --- | --- | --- |",
            f"| model built and run eagerly | {r['build_seconds']} s (build) | "
            f"{_gb(r['rss_after_model_and_eager'])} (after) | |",
            f"| export (`oxport.export`) | {r['export_seconds']} s | {_gb(r['export_peak_rss'])} | "
            f"{_gb(r['target_peak_rss'])} |",
            f"| save, external data | {r['save_seconds']} s | {_gb(r['save_peak_rss'])} | "
            f"{_gb(r['target_peak_rss'])} |",
            "",
            f"Peak over export and save: {_gb(r['peak_rss'])}, i.e. weights + "
            f"{_gb(r['peak_rss'] - r['weight_bytes'])}, of which {_gb(r['rss_before_model'])} is Python and torch "
            f"before the model exists and {_gb(r['peak_rss'] - r['rss_after_model_and_eager'])} is what export and "
            f"save add to the built model: target {'met' if r['meets_target'] else '**missed**'}. "
            f"Stages: {', '.join(f'{k} {v} s' for k, v in r['timings'].items())}. "
            f"Files: {_gb(r['model_file_bytes'])} model, {_gb(r['data_file_bytes'])} data.", ""]
        if c.get("status") == "ok":
            lines += [f"Loaded in ONNX Runtime in {c['ort_load_seconds']} s (peak RSS of that process "
                      f"{_gb(c['ort_peak_rss'])}); logits vs eager: max abs diff {c['max_abs_diff']:.2e}, "
                      f"{'match' if c['matches_eager'] else '**do not match**'} (rtol 1e-3, atol 1e-4)."
                      + (f" `oxport-inspect` on the saved model: {c['inspect_seconds']} s."
                         if c.get("inspect_seconds") is not None else ""),
                      ""]
        else:
            lines += [f"ONNX Runtime check failed: `{c.get('error', '?')}`", ""]
    else:
        lines += [f"(a) failed: `{r.get('error', 'not run')}`", ""]
    if f.get("status") == "ok":
        lines += [
            f"**(b) Llama-2-7B architecture under `enable_fake_mode()`** ({f['parameters'] / 1e9:.2f} B "
            f"parameters, {_gb(f['weight_bytes_if_real'])} if real), exported and saved without initializers:", "",
            "| | time | peak RSS | targets |", "| --- | --- | --- | --- |",
            f"| build (fake) + export + save | {f['total_seconds']} s | {_gb(f['peak_rss'])} | < 120 s, < 4 GiB: "
            f"{'met' if f['meets_targets'] else '**missed**'} |", "",
            f"Build {f['build_seconds']} s; stages: {', '.join(f'{k} {v} s' for k, v in f['timings'].items())}; "
            f"save {f['save_seconds']} s; {f['nodes']} nodes, {f['model_file_bytes'] / 1e6:.1f} MB file.", ""]
    elif "fake" in res:
        lines += [f"(b) failed: `{f.get('error', 'not run')}`", ""]
    with open(path, "w") as fh:
        fh.write("\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--step", choices=sorted(STEPS))
    ap.add_argument("--work", default=os.path.join(ROOT, "build", "large"))
    ap.add_argument("--only", choices=["real", "fake"])
    ap.add_argument("--json", default=os.path.join(ROOT, "bench", "large.json"))
    ap.add_argument("--md", default=os.path.join(ROOT, "docs", "large.md"))
    ap.add_argument("--render", action="store_true", help="only rewrite the markdown from the JSON")
    a = ap.parse_args()
    if a.render:
        with open(a.json) as fh:
            write_markdown(json.load(fh), a.md)
        return
    os.makedirs(a.work, exist_ok=True)
    if a.step:
        print(MARKER + json.dumps(STEPS[a.step](a.work)), flush=True)
        return
    import platform

    import torch
    res = {"date": time.strftime("%Y-%m-%d", time.gmtime()),
           "machine": f"{os.cpu_count()} cores, "
                      f"{os.sysconf('SC_PHYS_PAGES') * os.sysconf('SC_PAGE_SIZE') / GIB:.0f} GiB, "
                      f"{platform.machine()}, torch {torch.__version__}"}
    if a.only in (None, "real"):
        res["real"] = run_step("real_export", a.work)
        if res["real"]["status"] == "ok":
            res["real_check"] = run_step("real_check", a.work)
        for name in ("llama_2_5gb.onnx", "llama_2_5gb.onnx.data", "expected.pt"):
            if os.path.exists(os.path.join(a.work, name)):
                os.remove(os.path.join(a.work, name))
    if a.only in (None, "fake"):
        res["fake"] = run_step("fake", a.work)
    with open(a.json, "w") as fh:
        json.dump(res, fh, indent=1)
    write_markdown(res, a.md)
    with open(a.md) as fh:
        print(fh.read())


if __name__ == "__main__":
    main()
