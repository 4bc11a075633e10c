"""The name oxport gives a torch op: the key of the C core's lowering table and of custom
translations. The walker, the registry, capture and the report all name ops this way, so it lives
apart from each of them."""
from __future__ import annotations

from typing import Any

import torch


def target_name(target: Any) -> str:
    """"aten::addmm.default" for OpOverloads; a readable name for anything else."""
    schema = getattr(target, "_schema", None)
    if schema is not None:
        return f"{schema.name}.{target._overloadname or 'default'}"
    if isinstance(target, torch._ops.HigherOrderOperator):
        return f"higher_order::{target.name()}"
    module = getattr(target, "__module__", None) or "python"
    return f"{module}::{getattr(target, '__name__', repr(target))}"
