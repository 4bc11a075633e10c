#!/usr/bin/env python3
"""The core ATen opset against oxport's lowerings (issue 4).

PyTorch tags the overloads of its core ATen opset with `torch.Tag.core`: the set every backend is
asked to cover. This lists each of them with oxport's lowering (from `oxport._core.supported_targets`)
and torch.onnx's (its torchlib registry), and writes docs/core_aten.md.

    .venv/bin/python tools/core_aten.py              # -> docs/core_aten.md
    .venv/bin/python tools/core_aten.py --check      # exit 1 if a core overload has no lowering
                                                     # and is not in NOT_LOWERED
"""
from __future__ import annotations

import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Core overloads oxport does not lower, each with the reason. tests/python/test_core_aten.py fails
# when an overload is missing and not listed here, or listed here and lowered after all.
NOT_LOWERED: dict[str, str] = {
    "aten::_adaptive_avg_pool2d_backward.default":
        "a gradient op: it appears only in training (joint forward-backward) graphs, which an inference export does not produce; torch.onnx's registry has none",
    "aten::_cdist_forward.default":
        "not lowered yet (torch.onnx has no function for it either)",
    "aten::_embedding_bag.default":
        "not lowered yet: a Gather of the bags' rows and a segment reduction over offsets",
    "aten::_fft_c2r.default":
        "complex values: oxport's IR has no complex dtype yet (torch.onnx carries them as a trailing dim of 2)",
    "aten::_fft_r2c.default":
        "complex values: oxport's IR has no complex dtype yet (torch.onnx carries them as a trailing dim of 2)",
    "aten::_pdist_forward.default":
        "not lowered yet (torch.onnx has no function for it either)",
    "aten::atan2.out":
        "an out= overload: torch.export functionalizes it to atan2.default, which is lowered, so it never reaches the exporter",
    "aten::avg_pool2d_backward.default":
        "a gradient op: it appears only in training (joint forward-backward) graphs, which an inference export does not produce; torch.onnx's registry has none",
    "aten::col2im.default":
        "not lowered yet: maps onto ONNX Col2Im",
    "aten::convolution_backward.default":
        "a gradient op: it appears only in training (joint forward-backward) graphs, which an inference export does not produce; torch.onnx's registry has none",
    "aten::embedding_dense_backward.default":
        "a gradient op: it appears only in training (joint forward-backward) graphs, which an inference export does not produce; torch.onnx's registry has none",
    "aten::max_pool2d_with_indices_backward.default":
        "a gradient op: it appears only in training (joint forward-backward) graphs, which an inference export does not produce; torch.onnx's registry has none",
    "aten::native_group_norm_backward.default":
        "a gradient op: it appears only in training (joint forward-backward) graphs, which an inference export does not produce; torch.onnx's registry has none",
    "aten::native_layer_norm_backward.default":
        "a gradient op: it appears only in training (joint forward-backward) graphs, which an inference export does not produce; torch.onnx's registry has none",
    "aten::randperm.default":
        "not lowered yet: a random permutation (TopK of RandomUniform indices)",
    "aten::sym_storage_offset.default":
        "a tensor's offset into its storage has no ONNX counterpart (every ONNX value is its own buffer); the as_strided lowering takes the offset as an int instead",
    "aten::sym_stride.int":
        "strides describe torch's memory layout, which ONNX values do not have; no exported inference graph of the corpora reads one",
}


def core_overloads() -> list[str]:
    import torch
    out = []
    for name in dir(torch.ops.aten):
        try:
            packet = getattr(torch.ops.aten, name)
            overloads = packet.overloads()
        except Exception:   # noqa: BLE001 - not an op packet
            continue
        for ov in overloads:
            if torch.Tag.core in getattr(packet, ov).tags:
                out.append(f"aten::{name}.{ov}")
    return sorted(out)


def torch_onnx_lowers(names: list[str]) -> dict[str, bool]:
    import torch
    from torch.onnx._internal.exporter import _registration
    reg = _registration.ONNXRegistry.from_torchlib()
    out = {}
    for q in names:
        name, ov = q.split("::", 1)[1].split(".", 1)
        out[q] = bool(reg.get_decomps(getattr(getattr(torch.ops.aten, name), ov)))
    return out


def survey(opset: int = 18) -> dict:
    from oxport import _core
    names = core_overloads()
    ours = set(_core.supported_targets(opset))
    theirs = torch_onnx_lowers(names)
    return {"opset": opset, "rows": [(q, q in ours, theirs[q]) for q in names]}


def write(doc: dict, path: str) -> None:
    import torch
    rows = doc["rows"]
    ox = sum(r[1] for r in rows)
    to = sum(r[2] for r in rows)
    L = ["# The core ATen opset", "",
         "Generated by `tools/core_aten.py` (issue 4); do not edit by hand. Every overload PyTorch "
         f"{torch.__version__} tags `torch.Tag.core`, with whether oxport lowers it (opset {doc['opset']}) "
         "and whether torch.onnx's torchlib registry has a function for it.", "",
         f"- core overloads: {len(rows)}",
         f"- oxport lowers: {ox}",
         f"- torch.onnx's registry has: {to}", ""]
    missing = [r for r in rows if not r[1]]
    L += ["## Not lowered by oxport", ""]
    L += [f"- `{q}` (torch.onnx: {'yes' if t else 'no'}): {NOT_LOWERED.get(q, 'no reason recorded')}"
          for q, _, t in missing] or ["None."]
    L += ["", "## Every core overload", "", "| overload | oxport | torch.onnx |", "| --- | --- | --- |"]
    L += [f"| `{q}` | {'yes' if o else 'no'} | {'yes' if t else 'no'} |" for q, o, t in rows]
    with open(path, "w") as f:
        f.write("\n".join(L) + "\n")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=os.path.join(ROOT, "docs", "core_aten.md"))
    p.add_argument("--check", action="store_true", help="only check; write nothing")
    a = p.parse_args(argv)
    doc = survey()
    missing = {q for q, o, _ in doc["rows"] if not o}
    unexplained = sorted(missing - set(NOT_LOWERED))
    stale = sorted(set(NOT_LOWERED) - missing)
    if a.check:
        for q in unexplained:
            print(f"not lowered and not in NOT_LOWERED: {q}")
        for q in stale:
            print(f"in NOT_LOWERED but lowered: {q}")
        return 1 if unexplained or stale else 0
    write(doc, a.out)
    print(f"wrote {a.out}: {len(doc['rows'])} core overloads, oxport lowers {len(doc['rows']) - len(missing)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
