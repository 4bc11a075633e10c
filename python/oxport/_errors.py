"""The errors oxport raises. OnnxExporterError is the base, as in torch.onnx."""
from __future__ import annotations

from typing import Any


class OnnxExporterError(RuntimeError):
    """An export failed. Subclasses say at which stage."""


class OnnxExporterWarning(UserWarning):
    """Something the export dropped or changed that the user should know (e.g. a buffer mutation
    ONNX cannot carry). DiagnosticOptions(warnings_as_errors=True) makes it raise."""


class CaptureError(OnnxExporterError):
    """torch.export could not capture the model."""


class UnsupportedOpError(OnnxExporterError):
    """The graph holds ops oxport cannot lower. `unsupported` lists every one of them."""

    def __init__(self, message: str, unsupported: list[dict[str, Any]]) -> None:
        super().__init__(message)
        self.unsupported = unsupported


class LoweringError(OnnxExporterError):
    """A known op could not be lowered in the form it was used."""


class OnnxRuntimeError(OnnxExporterError):
    """ONNX Runtime could not load or run the exported model."""


def format_unsupported(items: list[dict[str, Any]]) -> str:
    """One line per unsupported overload: count, first place it occurs, argument dtypes, reason."""
    lines = [f"{len(items)} op{'s' if len(items) != 1 else ''} in the model cannot be lowered to ONNX:"]
    for u in items:
        where = f" at {u['where']}" if u.get("where") else ""
        times = f" ({u['count']} uses)" if u["count"] != 1 else ""
        reason = u.get("reason") or "no lowering for this overload"
        lines.append(f"  - {u['target']}{times}: first in node {u['node']}{where}; "
                     f"arguments ({u['arg_dtypes']}): {reason}")
    lines.append("Supply a translation with custom_translation_table, or report the op.")
    return "\n".join(lines)
