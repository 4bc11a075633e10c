"""Writes the sample export reports under docs/: one success (the demo CNN, verified and profiled)
and one failure (a model with three ops oxport has no lowering for).

    .venv/bin/python demo/sample_reports.py
"""
import os
import shutil
import sys
import tempfile

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import demo_models
import oxport

DOCS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs")


def _op(name):
    @torch.library.custom_op(f"sample::{name}", mutates_args=())
    def fn(x: torch.Tensor) -> torch.Tensor:
        return x.clone()

    @fn.register_fake
    def _(x):
        return torch.empty_like(x)
    return fn


rotate, quantize, sparsify = _op("rotate"), _op("quantize"), _op("sparsify")


class Unsupported(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = torch.nn.Linear(8, 8)

    def forward(self, x):
        x = rotate(self.proj(x))
        x = quantize(torch.relu(x))
        return sparsify(x) + rotate(x)


def main():
    with tempfile.TemporaryDirectory() as tmp:
        model, args = demo_models.cnn()
        program = oxport.export(model, args, report=True, verify=True, profile=True,
                                artifacts_dir=tmp, verbose=False)
        shutil.copy(program.report_path, os.path.join(DOCS, "report_sample_success.md"))
        try:
            oxport.export(Unsupported(), (torch.randn(4, 8),), report=True, artifacts_dir=tmp, verbose=False)
        except oxport.UnsupportedOpError:
            (path,) = [p for p in os.listdir(tmp) if p.endswith("_failure.md")]
            shutil.copy(os.path.join(tmp, path), os.path.join(DOCS, "report_sample_failure.md"))
    print("wrote docs/report_sample_success.md and docs/report_sample_failure.md")


if __name__ == "__main__":
    main()
