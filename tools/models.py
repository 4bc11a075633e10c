"""The model corpus of issue 5: torchvision and Hugging Face models through oxport and torch.onnx.

    .venv/bin/python tools/models.py          # everything -> docs/models.md, docs/models.json
    .venv/bin/python tools/models.py --quick  # a handful, into build/models/
    .venv/bin/python tools/models.py --models resnet18,llama_cache --out build/models

Each model runs in a fresh process (`--one NAME`, crash safety and memory), with a timeout. The
child builds the model (random weights, seeded), then for each exporter: exports, runs the ONNX
model in ONNX Runtime and compares every output with eager (rtol 1e-3, atol 1e-4), recording the
status, the reason of a failure, the time and the max abs diff. Models with a dynamic spec are
exported with dynamic batch (and sequence) and also run at other sizes, each compared with eager.

Every model is wrapped so that it takes positional tensors and returns a flat tuple of tensors:
both exporters then see the same signature, and the comparison needs no knowledge of ModelOutput.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import datetime
import json
import os
import platform
import subprocess
import sys
import time
import traceback

os.environ.setdefault("HF_HUB_OFFLINE", "1")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MARKER = "MODELS_JSON "
RTOL, ATOL = 1e-3, 1e-4
EXPORTERS = ("oxport", "torch.onnx")

# Image sizes: the smallest each family accepts comfortably. Transformers on images need their
# trained resolution (position embeddings, window sizes); the rest run at 64 x 64.
FIXED_224 = ("vit_", "swin_", "swin3d", "maxvit")
DYNAMIC_VISION = ("resnet18", "mobilenet_v3_small", "efficientnet_b0", "squeezenet1_0")
QUICK = ("resnet18", "mobilenet_v3_small", "lraspp_mobilenet_v3_large", "gpt2", "llama",
         "llama_cache", "bert", "vit_hf")


# ---------------------------------------------------------------- model builders (child side)

class _Tuple(__import__("torch").nn.Module):
    """Calls `fn(model, *args)` and returns the tensors of its result, flattened."""

    def __init__(self, model, fn):
        super().__init__()
        self.model, self.fn = model, fn

    def forward(self, *args):
        from torch.utils import _pytree
        out = self.fn(self.model, *args)
        return tuple(t for t in _pytree.tree_leaves(out) if hasattr(t, "shape"))


def _realistic_batchnorm(model):
    # Fresh statistics (mean 0, var 1) make some networks' activations vanish (outputs ~1e-9),
    # and an all-zero output matches anything; statistics like trained ones keep outputs meaningful.
    import torch
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.normal_(0, 0.1)
            m.running_var.uniform_(0.5, 1.5)
            if m.weight is not None:
                torch.nn.init.uniform_(m.weight, 0.5, 1.5)
                torch.nn.init.normal_(m.bias, 0, 0.1)
    # Residual blocks add their branch to the identity: with the branch at full scale the
    # activations of a 100-layer ResNet grow to ~1e3 and float32 round-off alone exceeds atol.
    # Trained ResNets keep the last batch norm of each branch small (cf. zero_init_residual).
    import torchvision
    for m in model.modules():
        last = getattr(m, "bn3", None) if isinstance(m, torchvision.models.resnet.Bottleneck) else (
            getattr(m, "bn2", None) if isinstance(m, torchvision.models.resnet.BasicBlock) else None)
        if last is not None and last.weight is not None:
            with torch.no_grad():
                last.weight.mul_(0.2)
    return model


def _image_size(name):
    if name.startswith(FIXED_224):
        return 224
    if name == "inception_v3":
        return 96
    return 64


def _classification(name):
    def build():
        import torch
        import torchvision
        torch.manual_seed(0)
        model = torchvision.models.get_model(name, weights=None)
        if name.startswith("vit_"):   # torchvision zero-initializes the ViT head
            torch.nn.init.normal_(model.heads.head.weight, std=0.02)
        if name == "inception_v3":
            # torchvision draws every Inception v3 conv with std 0.1 whatever its fan-in: the
            # activations then grow ~70x per wide layer and reach 1e7. He initialization keeps
            # them near 1, as trained weights do.
            for m in model.modules():
                if isinstance(m, torch.nn.Conv2d):
                    torch.nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
        model = _realistic_batchnorm(model).eval()
        s = _image_size(name)
        if name.startswith("swin3d") or name in ("r3d_18", "mc3_18", "r2plus1d_18", "s3d", "mvit_v1_b", "mvit_v2_s"):
            raise RuntimeError("video model: not in the corpus")   # never listed by list_models(models)
        x = torch.randn(2, 3, s, s)
        dyn = None
        if name in DYNAMIC_VISION:
            dyn = {"spec": ({0: "batch"},), "inputs": [(torch.randn(1, 3, s, s),), (torch.randn(3, 3, s, s),)]}
        return _Tuple(model, lambda m, x: m(x)).eval(), (x,), dyn
    return build


def _segmentation(name):
    def build():
        import torch
        import torchvision
        torch.manual_seed(0)
        model = torchvision.models.get_model(name, weights=None, weights_backbone=None)
        model = _realistic_batchnorm(model).eval()
        return _Tuple(model, lambda m, x: m(x)).eval(), (torch.randn(1, 3, 64, 64),), None
    return build


def _calibrated_batchnorm(model, run, shape):
    # Detection ends in score thresholds, top-k and NMS, which turn round-off into different
    # boxes when scores tie. Statistics drawn at random leave deep features nearly constant, so
    # most class scores tie (59 distinct among ssdlite's 300). Statistics measured on a batch of
    # images, as training leaves them, keep features input-dependent: 300 distinct scores.
    import torch
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    model.eval()
    for m in norms:
        m.reset_running_stats()
        m.momentum = None                     # cumulative average over the calibration batch
        m.train()
    with torch.no_grad():
        run(torch.rand(shape, generator=torch.Generator().manual_seed(1)))
    for m in norms:
        m.eval()
    return model


def _detection(name, **kw):
    def build():
        import torch
        import torchvision
        torch.manual_seed(0)
        model = torchvision.models.get_model(name, weights=None, weights_backbone=None, **kw)
        s = kw.get("min_size", 320)
        model = _calibrated_batchnorm(model, lambda xs: model(list(xs)), (8, 3, s, s))
        wrapped = _Tuple(model, lambda m, x: m([x[0]])).eval()
        wrapped.tied_rows = True      # detections: rows whose scores tie may come in either order
        return wrapped, (torch.rand(1, 3, s, s),), None
    return build


def _text_dyn(vocab, batch=2, seq=16, extra=()):
    import torch
    return {"spec": ({0: "batch", 1: "seq"},) + tuple(extra),
            "inputs": [(torch.randint(0, vocab, (1, 5)),), (torch.randint(0, vocab, (3, 23)),)]}


def gpt2():
    import torch
    import transformers
    torch.manual_seed(0)
    config = transformers.GPT2Config(n_layer=2, n_embd=64, n_head=4, n_positions=128, vocab_size=1000,
                                     bos_token_id=0, eos_token_id=0)
    model = transformers.GPT2LMHeadModel(config).eval()
    return (_Tuple(model, lambda m, ids: m(ids, use_cache=False).logits).eval(),
            (torch.randint(0, 1000, (2, 16)),), _text_dyn(1000))


def _llama_config():
    import transformers
    return transformers.LlamaConfig(num_hidden_layers=2, hidden_size=64, num_attention_heads=4,
                                    num_key_value_heads=2, intermediate_size=128, vocab_size=1000)


def llama():
    import torch
    import transformers
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(_llama_config()).eval()
    return (_Tuple(model, lambda m, ids: m(ids, use_cache=False).logits).eval(),
            (torch.randint(0, 1000, (2, 16)),), _text_dyn(1000))


class LlamaWithCache(__import__("torch").nn.Module):
    """One decoding step of Llama over a DynamicCache built from past keys and values:
    (input_ids, k0, v0, k1, v1) -> (logits, k0', v0', k1', v1')."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, k0, v0, k1, v1):
        import transformers
        cache = transformers.DynamicCache()
        for i, (k, v) in enumerate(((k0, v0), (k1, v1))):
            cache.update(k, v, i)
        out = self.model(input_ids, cache=cache, use_cache=True)
        kv = []
        for layer in (out.cache if hasattr(out, "cache") else out.past_key_values).layers:
            kv += [layer.keys, layer.values]
        return (out.logits, *kv)


def llama_cache_inputs(batch, seq, past, config=None):
    import torch
    config = config or _llama_config()
    heads, dim = config.num_key_value_heads, config.hidden_size // config.num_attention_heads
    kv = [torch.randn(batch, heads, past, dim) for _ in range(2 * config.num_hidden_layers)]
    return (torch.randint(0, config.vocab_size, (batch, seq)), *kv)


def llama_cache():
    import torch
    torch.manual_seed(0)
    import transformers
    config = _llama_config()
    model = LlamaWithCache(transformers.LlamaForCausalLM(config).eval()).eval()
    past = {0: "batch", 2: "past"}
    spec = ({0: "batch", 1: "seq"},) + (past,) * (2 * config.num_hidden_layers)
    dyn = {"spec": spec, "inputs": [llama_cache_inputs(1, 1, 7), llama_cache_inputs(3, 4, 20)]}
    return model, llama_cache_inputs(2, 3, 12), dyn


def bert():
    import torch
    import transformers
    torch.manual_seed(0)
    config = transformers.BertConfig(num_hidden_layers=2, hidden_size=64, num_attention_heads=4,
                                     intermediate_size=128, vocab_size=1000)
    model = transformers.BertModel(config).eval()
    return (_Tuple(model, lambda m, ids: (m(ids).last_hidden_state, m(ids).pooler_output)).eval(),
            (torch.randint(0, 1000, (2, 16)),), _text_dyn(1000))


def t5():
    import torch
    import transformers
    torch.manual_seed(0)
    config = transformers.T5Config(vocab_size=1000, d_model=64, d_kv=16, d_ff=128, num_layers=2,
                                   num_decoder_layers=2, num_heads=4, decoder_start_token_id=0)
    model = transformers.T5ForConditionalGeneration(config).eval()
    wrapped = _Tuple(model, lambda m, ids, dec: m(input_ids=ids, decoder_input_ids=dec, use_cache=False).logits)
    ids = lambda b, t: torch.randint(0, 1000, (b, t))  # noqa: E731
    dyn = {"spec": ({0: "batch", 1: "seq"}, {0: "batch", 1: "dec_seq"}),
           "inputs": [(ids(1, 5), ids(1, 3)), (ids(3, 23), ids(3, 9))]}
    return wrapped.eval(), (ids(2, 16), ids(2, 8)), dyn


def _whisper_config():
    import transformers
    return transformers.WhisperConfig(vocab_size=1000, num_mel_bins=80, d_model=64, encoder_layers=2,
                                      decoder_layers=2, encoder_attention_heads=4, decoder_attention_heads=4,
                                      encoder_ffn_dim=128, decoder_ffn_dim=128, max_source_positions=32,
                                      max_target_positions=64, pad_token_id=0, bos_token_id=0,
                                      eos_token_id=0, decoder_start_token_id=0)


def whisper_encoder():
    import torch
    import transformers
    torch.manual_seed(0)
    config = _whisper_config()
    model = transformers.WhisperModel(config).eval()
    # The encoder takes exactly 2 * max_source_positions frames: only the batch is dynamic.
    feats = lambda b: torch.randn(b, 80, 64)  # noqa: E731
    dyn = {"spec": ({0: "batch"},), "inputs": [(feats(1),), (feats(3),)]}
    return _Tuple(model.get_encoder(), lambda m, f: m(f).last_hidden_state).eval(), (feats(2),), dyn


def whisper_decoder():
    import torch
    import transformers
    torch.manual_seed(0)
    config = _whisper_config()
    model = transformers.WhisperModel(config).eval()
    wrapped = _Tuple(model.get_decoder(), lambda m, ids, enc: m(input_ids=ids, encoder_hidden_states=enc,
                                                                 use_cache=False).last_hidden_state)
    ids = lambda b, t: torch.randint(0, 1000, (b, t))  # noqa: E731
    enc = lambda b: torch.randn(b, 32, 64)  # noqa: E731
    dyn = {"spec": ({0: "batch", 1: "seq"}, {0: "batch"}),
           "inputs": [(ids(1, 5), enc(1)), (ids(3, 23), enc(3))]}
    return wrapped.eval(), (ids(2, 16), enc(2)), dyn


def vit_hf():
    import torch
    import transformers
    torch.manual_seed(0)
    config = transformers.ViTConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                    intermediate_size=128, image_size=32, patch_size=8, num_labels=10)
    model = transformers.ViTForImageClassification(config).eval()
    img = lambda b: torch.randn(b, 3, 32, 32)  # noqa: E731
    dyn = {"spec": ({0: "batch"},), "inputs": [(img(1),), (img(3),)]}
    return _Tuple(model, lambda m, x: m(pixel_values=x).logits).eval(), (img(2),), dyn


def resnet_hf():
    import torch
    import transformers
    torch.manual_seed(0)
    config = transformers.ResNetConfig(embedding_size=32, hidden_sizes=[32, 64, 128, 256], depths=[1, 1, 1, 1],
                                       num_labels=10)
    model = _realistic_batchnorm(transformers.ResNetForImageClassification(config)).eval()
    img = lambda b: torch.randn(b, 3, 64, 64)  # noqa: E731
    dyn = {"spec": ({0: "batch"},), "inputs": [(img(1),), (img(3),)]}
    return _Tuple(model, lambda m, x: m(pixel_values=x).logits).eval(), (img(2),), dyn


HF = {"gpt2": gpt2, "llama": llama, "llama_cache": llama_cache, "bert": bert, "t5": t5,
      "whisper_encoder": whisper_encoder, "whisper_decoder": whisper_decoder, "vit_hf": vit_hf,
      "resnet_hf": resnet_hf}


def corpus() -> dict:
    """name -> (family, builder), in the order of the report."""
    import torchvision
    out = {}
    for name in torchvision.models.list_models(module=torchvision.models):
        out[name] = ("torchvision classification", _classification(name))
    for name in torchvision.models.list_models(module=torchvision.models.segmentation):
        out[name] = ("torchvision segmentation", _segmentation(name))
    # Random weights score no box above Faster R-CNN's 0.05: its 0 detections would match anything.
    out["fasterrcnn_mobilenet_v3_large_320_fpn"] = ("torchvision detection",
                                                     _detection("fasterrcnn_mobilenet_v3_large_320_fpn",
                                                                box_score_thresh=0.0))
    out["retinanet_resnet50_fpn"] = ("torchvision detection",
                                      _detection("retinanet_resnet50_fpn", min_size=320, max_size=320))
    out["ssdlite320_mobilenet_v3_large"] = ("torchvision detection", _detection("ssdlite320_mobilenet_v3_large"))
    for name, build in HF.items():
        out[name] = ("transformers", build)
    return out


# ---------------------------------------------------------------- one model (child side)

def _first_line(e: BaseException) -> str:
    msg = str(e).strip().splitlines()
    text = f"{type(e).__name__}: {msg[0] if msg else ''}"
    # oxport's unsupported-op errors list the overloads on the following lines: keep them.
    if msg and msg[0].rstrip().endswith(":"):
        # a first line that introduces a list (the unsupported ops, the capture strategies that
        # failed): the list is the reason
        items = [line.strip()[:240] for line in msg[1:] if line.strip().startswith("-")][:6]
        if items:
            text += " [" + "; ".join(items) + "]"
    elif "unsupported" in str(e).lower() or "not supported" in str(e).lower():
        ops = [line.strip() for line in msg[1:] if "aten::" in line or "::" in line][:6]
        if ops:
            text += " [" + "; ".join(ops) + "]"
    cause = e.__cause__ or e.__context__
    if cause is not None and ("every strategy failed" in text or "step 1/3" in text):
        # The capture's own error says why; the exporter's first line only says that it failed.
        lines = [ln.strip() for ln in str(cause).strip().splitlines() if ln.strip()]
        text += f" [{type(cause).__name__}: {lines[0][:300] if lines else ''}]"
    return text[:600]


def _align_tied_rows(actual, reference, rtol=0.0, atol=0.0, rel=0.0, window=16):
    """`actual` with its rows reordered to match `reference` where a detection model's order is
    not defined: its outputs are one row per detection, sorted by score, and two detections whose
    scores differ by round-off (ssdlite: 1e-7 apart) come out in either order. Row i of the
    reference takes the first unused row within `window` places whose every value is within
    atol + rtol * |ref| + rel * (the output's scale). If some row has no partner, `actual` comes
    back unchanged, and the comparison reports the difference."""
    import numpy as np
    a = [np.asarray(t) for t in actual]
    r = [np.asarray(t) for t in reference]
    n = r[0].shape[0] if r and r[0].ndim else -1
    if n <= 0 or len(a) != len(r) or any(t.ndim == 0 or t.shape[0] != n for t in a + r) \
            or any(x.shape != y.shape for x, y in zip(a, r)):
        return actual
    a2 = [x.reshape(n, -1).astype(np.float64) for x in a]
    r2 = [y.reshape(n, -1).astype(np.float64) for y in r]
    tol = [atol + rtol * np.abs(y) + rel * (np.abs(y).max() if y.size else 0.0) for y in r2]
    order, used = [], np.zeros(n, bool)
    for i in range(n):
        for j in range(max(0, i - window), min(n, i + window + 1)):
            if not used[j] and all((np.abs(x[j] - y[i]) <= t[i]).all() for x, y, t in zip(a2, r2, tol)):
                order.append(j)
                used[j] = True
                break
        else:
            return actual
    return [x[order] for x in a]


def _compare(actual, expected, tied=False) -> tuple[bool, float, str]:
    """(match, max abs diff, the first problem); `tied`: rows of tied scores paired first."""
    import torch
    if tied:
        actual = _align_tied_rows(actual, expected, rtol=RTOL, atol=ATOL)
    if len(actual) != len(expected):
        return False, float("nan"), f"{len(actual)} outputs, eager has {len(expected)}"
    if all(torch.as_tensor(e).numel() == 0 for e in expected):
        return False, float("nan"), "eager's outputs are all empty: a match would mean nothing"
    worst, problem = 0.0, ""
    for i, (a, e) in enumerate(zip(actual, expected)):
        a = torch.as_tensor(a)
        if a.shape != e.shape:
            return False, float("nan"), f"output {i}: shape {tuple(a.shape)}, eager {tuple(e.shape)}"
        if e.numel() == 0:
            continue
        if e.is_floating_point():
            diff = (a.double() - e.double()).abs()
            diff = torch.where(torch.isnan(a) & torch.isnan(e), torch.zeros_like(diff), diff)
            worst = max(worst, float(diff.max()))
            try:
                torch.testing.assert_close(a, e, rtol=RTOL, atol=ATOL, equal_nan=True, check_dtype=False)
            except AssertionError as err:
                detail = [ln.strip() for ln in str(err).splitlines()
                          if ln.strip().startswith(("Mismatched", "Greatest"))]
                problem = problem or f"output {i} {tuple(e.shape)}: " + ", ".join(detail)
        elif not torch.equal(a.to(e.dtype), e):
            problem = problem or f"output {i} ({e.dtype}) differs"
            worst = max(worst, float((a.double() - e.double()).abs().max()))
    return not problem, worst, problem


def _export(exporter, model, args, dynamic_shapes, optimize=True):
    import torch
    if dynamic_shapes is not None and isinstance(model, _Tuple):
        dynamic_shapes = (dynamic_shapes,)   # forward(*args): one parameter holds every argument
    if exporter == "oxport":
        import oxport
        return oxport.export(model, args, dynamic_shapes=dynamic_shapes, verbose=False, optimize=optimize)
    return torch.onnx.export(model, args, dynamo=True, dynamic_shapes=dynamic_shapes, verbose=False)


def _opt_vs_unopt(optimized, plain) -> tuple[float, float]:
    """(max abs diff between the optimized and the unoptimized graph's outputs, the output
    scale)."""
    import torch
    diff, scale = 0.0, 0.0
    for a, b in zip(optimized, plain):
        a, b = torch.as_tensor(a), torch.as_tensor(b)
        if a.shape != b.shape:
            return float("inf"), 0.0
        if a.numel() == 0:
            continue
        a, b = a.double(), b.double()
        scale = max(scale, float(b.abs().nan_to_num(posinf=0, neginf=0).max()))
        d = (a - b).abs()
        d = torch.where(torch.isnan(a) & torch.isnan(b), torch.zeros_like(d), d)
        diff = max(diff, float(d.max()))
    return diff, scale


def _op_counts(program) -> tuple[int, dict]:
    """(nodes in the top-level graph, {op_type: count}); oxport's from its core, which also covers
    models over 2 GB (their ModelProto cannot be built)."""
    import collections
    if hasattr(program, "_graph"):
        st = program._graph.stats()
        return st["nodes"], dict(st["op_counts"])
    nodes = program.model_proto.graph.node
    return len(nodes), dict(collections.Counter(n.op_type for n in nodes))


def _run(program, args):
    return list(program(*args))


def run_one(name: str) -> dict:
    import torch
    torch.set_num_threads(1)
    family, build = corpus()[name]
    record = {"name": name, "family": family}
    t0 = time.perf_counter()
    try:
        model, args, dyn = build()
        with torch.no_grad():
            expected = list(model(*args))
    except Exception as e:   # the reason is the record
        record["build"] = _first_line(e)
        return record
    record["build_s"] = round(time.perf_counter() - t0, 2)
    tied = getattr(model, "tied_rows", False)
    record["dynamic"] = dyn is not None
    for exporter in EXPORTERS:
        r = record[exporter] = {}
        t0 = time.perf_counter()
        try:
            if exporter == "oxport":
                # Issue 6: the same export unoptimized, run, then optimized in place and run again.
                with torch.no_grad():
                    program = _export(exporter, model, args, None, optimize=False)
                spent = time.perf_counter() - t0
                r["unoptimized_nodes"] = _op_counts(program)[0]
                plain = _run(program, args)
                t1 = time.perf_counter()
                program.optimize()
                r["optimize_s"] = round(time.perf_counter() - t1, 3)
                r["export_s"] = round(spent + r["optimize_s"], 2)
                actual = _run(program, args)
                if tied:
                    actual = _align_tied_rows(actual, plain, rel=1e-5)
                diff, scale = _opt_vs_unopt(actual, plain)
                r["opt_vs_unopt_diff"], r["opt_vs_unopt_rel"] = diff, (diff / scale if scale else diff)
            else:
                with torch.no_grad():
                    program = _export(exporter, model, args, None)
                r["export_s"] = round(time.perf_counter() - t0, 2)
                actual = _run(program, args)
            r["nodes"], ops = _op_counts(program)
            r["identity_constant_nodes"] = ops.get("Identity", 0) + ops.get("Constant", 0)
            ok, diff, problem = _compare(actual, expected, tied)
            r["max_abs_diff"] = diff
            r["status"] = "match" if ok else "mismatch"
            if problem:
                r["reason"] = problem
        except Exception as e:
            r["status"] = "failed"
            r["reason"] = _first_line(e)
            r["trace"] = traceback.format_exc()[-2000:]
        r["time_s"] = round(time.perf_counter() - t0, 2)
        if dyn is None:
            continue
        d = r["dynamic"] = {}
        t0 = time.perf_counter()
        try:
            with torch.no_grad():
                program = _export(exporter, model, args, dyn["spec"])
            worst, problems = 0.0, []
            for inputs in [args] + list(dyn["inputs"]):
                with torch.no_grad():
                    want = list(model(*inputs))
                ok, diff, problem = _compare(_run(program, inputs), want, tied)
                worst = max(worst, diff)
                if not ok:
                    problems.append(f"at {[tuple(t.shape) for t in inputs][:2]}: {problem}")
            d["max_abs_diff"] = worst
            d["status"] = "match" if not problems else "mismatch"
            if problems:
                d["reason"] = "; ".join(problems)[:600]
        except Exception as e:
            d["status"] = "failed"
            d["reason"] = _first_line(e)
        d["time_s"] = round(time.perf_counter() - t0, 2)
    return record


# ---------------------------------------------------------------- the driver (parent side)

def _child(name: str, timeout: float) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--one", name]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return {"name": name, "family": "", "crash": f"timeout after {timeout:.0f} s"}
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(MARKER):
            record = json.loads(line[len(MARKER):])
            record["wall_s"] = round(time.perf_counter() - t0, 2)
            return record
    tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
    return {"name": name, "family": "", "crash": f"exit {proc.returncode}: {tail[:300]}"}


def _status(record, exporter) -> str:
    if "crash" in record:
        return "crash"
    if "build" in record:
        return "build failed"
    return record.get(exporter, {}).get("status", "?")


def _cell(record, exporter) -> str:
    r = record.get(exporter, {})
    s = _status(record, exporter)
    if s == "match":
        return f"match ({r['max_abs_diff']:.1e}, {r['export_s']:.1f} s)"
    return s


def _dyn_cell(record, exporter) -> str:
    d = record.get(exporter, {}).get("dynamic")
    if not d:
        return ""
    return d["status"] + (f" ({d['max_abs_diff']:.1e})" if d["status"] == "match" else "")


def _reason(record, exporter) -> str:
    if "crash" in record:
        return record["crash"]
    if "build" in record:
        return record["build"]
    r = record.get(exporter, {})
    reasons = [r.get("reason", "")]
    d = r.get("dynamic") or {}
    if d.get("status") not in (None, "match"):
        reasons.append("dynamic: " + d.get("reason", ""))
    return "; ".join(x for x in reasons if x)


def _ok(record, exporter) -> bool:
    r = record.get(exporter, {})
    return r.get("status") == "match" and (r.get("dynamic") or {"status": "match"})["status"] == "match"


def _optimizer_section(records: list[dict]) -> list[str]:
    """Issue 6 on the corpus: graph sizes against torch.onnx, optimized against unoptimized."""
    both = [r for r in records if r.get("oxport", {}).get("nodes") and r.get("torch.onnx", {}).get("nodes")]
    ox_only = [r for r in records if r.get("oxport", {}).get("nodes") and not r.get("torch.onnx", {}).get("nodes")]
    measured = [r for r in records if "opt_vs_unopt_rel" in r.get("oxport", {})]
    over = [r for r in both if r["oxport"]["nodes"] > r["torch.onnx"]["nodes"]]
    worst = max(measured, key=lambda r: r["oxport"]["opt_vs_unopt_rel"], default=None)
    left = [r for r in records if r.get("oxport", {}).get("identity_constant_nodes")]
    L = ["", "## The optimizer on the corpus (issue 6)", "",
         "Nodes in the top-level graph of each exporter's optimized model (static shapes); oxport's "
         "unoptimized export of the same model; and the max abs difference between oxport's optimized "
         "and unoptimized outputs in ONNX Runtime, relative to the largest unoptimized output.", "",
         f"- models both exporters export: {len(both)}; oxport has more nodes than torch.onnx on "
         f"{len(over)}" + (": " + ", ".join(r["name"] for r in over) if over else "") + ".",
         f"- optimized against unoptimized on {len(measured)} models: the worst relative difference is "
         + (f"{worst['oxport']['opt_vs_unopt_rel']:.1e} ({worst['name']})." if worst else "n/a."),
         "- Identity or Constant nodes left in oxport's optimized graphs: "
         + (", ".join(f"{r['name']} {r['oxport']['identity_constant_nodes']}" for r in left) if left else "none") + ".",
         "", "| model | oxport nodes | torch.onnx nodes | oxport unoptimized | optimize() | opt vs unopt (rel) |",
         "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for r in both + ox_only:
        o, t = r["oxport"], r.get("torch.onnx", {})
        L.append(f"| {r['name']} | {o['nodes']} | {t.get('nodes', '—')} | {o.get('unoptimized_nodes', '')} "
                 f"| {o.get('optimize_s', 0) * 1000:.0f} ms | {o.get('opt_vs_unopt_rel', float('nan')):.1e} |")
    return L


def write_report(records: list[dict], out: str, command: str, seconds: float) -> None:
    import onnx
    import onnxruntime
    import torch
    import torchvision
    import transformers

    import oxport
    os.makedirs(out, exist_ok=True)
    meta = {"date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "command": command, "seconds": round(seconds), "python": platform.python_version(),
            "torch": torch.__version__, "torchvision": torchvision.__version__,
            "transformers": transformers.__version__, "onnx": onnx.__version__,
            "onnxruntime": onnxruntime.__version__, "oxport": getattr(oxport, "__version__", "?"),
            "cpus": os.cpu_count()}
    with open(os.path.join(out, "models.json"), "w") as f:
        json.dump({"meta": meta, "models": records}, f, indent=1)

    n = len(records)
    ok = {e: sum(_ok(r, e) for r in records) for e in EXPORTERS}
    dyn = [r for r in records if r.get("dynamic")]
    dyn_ok = {e: sum((r.get(e, {}).get("dynamic") or {}).get("status") == "match" for r in dyn) for e in EXPORTERS}
    lines = [
        "# Model corpus: oxport and torch.onnx on real architectures",
        "",
        f"Generated by `tools/models.py` (`{command}`) on {meta['date']}, in {meta['seconds'] // 60} min "
        f"{meta['seconds'] % 60} s on {meta['cpus']} cores. Do not edit by hand.",
        "",
        f"torch {meta['torch']}, torchvision {meta['torchvision']}, transformers {meta['transformers']}, "
        f"onnx {meta['onnx']}, onnxruntime {meta['onnxruntime']}, Python {meta['python']}.",
        "",
        "Each model runs in a fresh process. Weights are random (torchvision `weights=None`, batch-norm "
        "statistics drawn like trained ones, for detection measured on 8 random images; Hugging Face "
        "models from 2-layer configs of hidden size 64). "
        "Inputs are small: 2×3×64×64 images (224 for ViT, Swin and MaxViT, 96 for Inception v3), "
        "segmentation at 1×3×64×64, detection at 320×320, text 2×16 tokens. "
        "Each exporter's model runs in ONNX Runtime and every output is compared with eager PyTorch "
        f"(rtol {RTOL:g}, atol {ATOL:g}); a cell shows the max abs diff and the export time. "
        "\"dynamic\" is a second export with dynamic batch (and sequence for text, past length for the "
        "cache) run at the traced size and at batch 1 and 3 with other sequence lengths, each compared "
        "with eager. Detection outputs are rows sorted by score; rows whose scores tie within the "
        "tolerance may come in either order, and are paired before comparing. A model passes when both "
        "its static and its dynamic runs match.",
        "",
        "## Totals",
        "",
        "| | oxport | torch.onnx |",
        "| --- | --- | --- |",
        f"| models that export and match (of {n}) | {ok['oxport']} | {ok['torch.onnx']} |",
        f"| dynamic-shape runs that match (of {len(dyn)}) | {dyn_ok['oxport']} | {dyn_ok['torch.onnx']} |",
        "",
        "## Models",
        "",
        "| model | family | oxport | dynamic | torch.onnx | dynamic |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in records:
        lines.append(f"| {r['name']} | {r.get('family', '')} | {_cell(r, 'oxport')} | {_dyn_cell(r, 'oxport')} "
                     f"| {_cell(r, 'torch.onnx')} | {_dyn_cell(r, 'torch.onnx')} |")
    lines += _optimizer_section(records)
    neither = [r for r in records if not _ok(r, "oxport") and not _ok(r, "torch.onnx")]
    only_torch = [r for r in records if _ok(r, "torch.onnx") and not _ok(r, "oxport")]
    only_ox = [r for r in records if _ok(r, "oxport") and not _ok(r, "torch.onnx")]
    lines += ["", "## Models neither exporter handles", ""]
    lines += [f"- **{r['name']}**: oxport: {_reason(r, 'oxport') or _status(r, 'oxport')}; "
              f"torch.onnx: {_reason(r, 'torch.onnx') or _status(r, 'torch.onnx')}" for r in neither] or ["None."]
    lines += ["", "## Models torch.onnx handles and oxport does not", ""]
    lines += [f"- **{r['name']}**: {_reason(r, 'oxport') or _status(r, 'oxport')}" for r in only_torch] or ["None."]
    lines += ["", "## Models oxport handles and torch.onnx does not", ""]
    lines += [f"- **{r['name']}**: torch.onnx: {_reason(r, 'torch.onnx') or _status(r, 'torch.onnx')}"
              for r in only_ox] or ["None."]
    with open(os.path.join(out, "models.md"), "w") as f:
        f.write("\n".join(s.replace("\n", " ") if not s.startswith("|") else s for s in lines) + "\n")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", help="comma-separated names (default: the whole corpus)")
    p.add_argument("--quick", action="store_true", help=f"only {', '.join(QUICK)}")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--timeout", type=float, default=420, help="seconds per model")
    p.add_argument("--out", help="output directory (default docs/, build/models for a partial run)")
    p.add_argument("--list", action="store_true")
    p.add_argument("--one", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.one:
        record = run_one(a.one)
        print(MARKER + json.dumps(record), flush=True)
        return 0
    names = list(corpus())
    if a.list:
        print("\n".join(names))
        return 0
    partial = bool(a.models or a.quick)
    if a.models:
        unknown = [m for m in a.models.split(",") if m not in names]
        if unknown:
            p.error(f"unknown models: {', '.join(unknown)} (see --list)")
        names = [n for n in names if n in a.models.split(",")]
    elif a.quick:
        names = [n for n in names if n in QUICK]
    out = a.out or os.path.join(ROOT, "build/models" if partial else "docs")
    t0 = time.perf_counter()
    records = {}
    with concurrent.futures.ThreadPoolExecutor(a.jobs) as pool:
        futures = {pool.submit(_child, n, a.timeout): n for n in names}
        for fut in concurrent.futures.as_completed(futures):
            r = fut.result()
            records[r["name"]] = r
            print(f"[{len(records)}/{len(names)}] {r['name']:40s} oxport: {_status(r, 'oxport'):9s} "
                  f"{_dyn_cell(r, 'oxport'):10s} torch.onnx: {_status(r, 'torch.onnx'):9s} "
                  f"{_dyn_cell(r, 'torch.onnx'):10s} {_reason(r, 'oxport')[:150]}", flush=True)
    command = "tools/models.py " + " ".join(argv if argv is not None else sys.argv[1:])
    write_report([records[n] for n in names], out, command.strip(), time.perf_counter() - t0)
    print(f"wrote {out}/models.md and models.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
