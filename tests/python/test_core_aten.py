"""Issue 4: every overload of PyTorch's core ATen opset has a lowering, or a recorded reason why not
(tools/core_aten.py NOT_LOWERED)."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "tools"))

import core_aten
from oxport import _core


def test_core_aten_overloads_are_lowered_or_explained():
    names = core_aten.core_overloads()
    assert len(names) > 150, "torch.Tag.core selects the core opset"
    ours = set(_core.supported_targets(18))
    missing = {q for q in names if q not in ours}
    assert sorted(missing - set(core_aten.NOT_LOWERED)) == [], "core overloads with no lowering and no reason"
    assert sorted(set(core_aten.NOT_LOWERED) - missing) == [], "NOT_LOWERED lists overloads that are lowered"
    for q, why in core_aten.NOT_LOWERED.items():
        assert len(why) > 20, f"{q}: say why it is not lowered"
