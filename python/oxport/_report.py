"""report=True: a markdown account of the export, written whether it succeeds or fails, so that a
user can see which stage broke, why, and where in the model."""
from __future__ import annotations

import datetime
import io
import os
import resource
from collections import Counter
from typing import Any

import torch

from . import _core
from ._target import target_name
from ._verify import VerificationInfo


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Report:
    def __init__(self, enabled: bool, artifacts_dir: str | os.PathLike[str]) -> None:
        self.enabled = enabled
        self.artifacts_dir = os.fspath(artifacts_dir)
        self.stages: list[tuple[str, str, float, float]] = []   # name, status, seconds, peak RSS
        self.capture_attempts: list[tuple[str, str]] = []
        self.strategy: str | None = None
        self.exported_program: str | None = None
        self.aten_ops: Counter[str] = Counter()
        self.onnx_ops: Counter[str] = Counter()
        self.unsupported: list[dict[str, Any]] = []
        self.graph_summary: _core._GraphStats | None = None
        self.verification: list[VerificationInfo] | None = None
        self.profile: str | None = None
        self.error: str | None = None

    def stage(self, name: str, status: str, seconds: float) -> None:
        self.stages.append((name, status, seconds, peak_rss_mb()))

    def note_program(self, ep: torch.export.ExportedProgram) -> None:
        if not self.enabled:
            return
        self.exported_program = str(ep)
        self.aten_ops = Counter(target_name(n.target) for n in ep.graph.nodes if n.op == "call_function")

    def note_graph(self, graph: _core.Graph) -> None:
        stats = graph.stats()
        self.onnx_ops = Counter(stats["op_counts"])
        self.graph_summary = stats

    def write(self, status: str) -> str:
        os.makedirs(self.artifacts_dir, exist_ok=True)
        stamp = datetime.datetime.now().strftime("%Y-%m-%d_%H-%M-%S-%f")
        path = os.path.join(self.artifacts_dir, f"onnx_export_{stamp}_{status}.md")
        with open(path, "w", encoding="utf-8") as f:
            f.write(self.render(status))
        return path

    def render(self, status: str) -> str:
        out = io.StringIO()
        w = out.write
        w(f"# oxport export report: {status}\n\n")
        w("## Stages\n\n| stage | status | time | peak RSS after |\n| --- | --- | ---: | ---: |\n")
        for name, st, sec, rss in self.stages:
            w(f"| {name} | {'✅' if st == 'ok' else '❌'} {st} | {sec:.3f} s | {rss:.0f} MB |\n")
        if self.error:
            w(f"\n## Error\n\n```\n{self.error}\n```\n")
        if self.capture_attempts or self.strategy:
            w("\n## Capture\n\n")
            for name, err in self.capture_attempts:
                w(f"- `{name}` failed:\n\n  ```\n  {err.splitlines()[0] if err else ''}\n  ```\n")
            if self.strategy:
                w(f"- captured with `{self.strategy}`\n")
        if self.unsupported:
            w("\n## Unsupported ops\n\n| op | uses | first node | where | arguments | reason |\n"
              "| --- | ---: | --- | --- | --- | --- |\n")
            for u in self.unsupported:
                w(f"| `{u['target']}` | {u['count']} | `{u['node']}` | {u.get('where') or ''} | "
                  f"{u['arg_dtypes']} | {u.get('reason') or 'no lowering for this overload'} |\n")
            w("\nSupply a translation for each with `custom_translation_table` "
              "(see `oxport.op`), or report the op.\n")
        if self.aten_ops:
            w("\n## ATen ops in the exported program\n\n| op | count |\n| --- | ---: |\n")
            for op, c in sorted(self.aten_ops.items()):
                w(f"| `{op}` | {c} |\n")
        if self.graph_summary:
            s = self.graph_summary
            w(f"\n## ONNX graph\n\nopset {s['opset']}, {s['nodes']} nodes, {s['initializers']} initializers "
              f"({s['initializer_bytes'] / 1e6:.2f} MB)\n\n| op | count |\n| --- | ---: |\n")
            for op, c in sorted(self.onnx_ops.items()):
                w(f"| `{op}` | {c} |\n")
        if self.verification is not None:
            w("\n## Verification against eager\n\n| output | max abs diff | max rel diff | dtype | shape |\n"
              "| --- | ---: | ---: | --- | --- |\n")
            for v in self.verification:
                w(f"| `{v.name}` | {v.max_abs_diff:.3e} | {v.max_rel_diff:.3e} | {v.actual_dtype} | "
                  f"{'matches' if v.shape_matches else 'DIFFERS'} |\n")
        if self.profile:
            w(f"\n## Profile\n\n```\n{self.profile}\n```\n")
        if self.exported_program:
            w(f"\n## Exported program\n\n```\n{self.exported_program}\n```\n")
        return out.getvalue()
