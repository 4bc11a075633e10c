"""enable_fake_mode(): build models and inputs as fake tensors (shapes and dtypes, no memory), export
them, and supply real weights afterwards with ONNXProgram.apply_weights."""
from __future__ import annotations

import contextlib


@contextlib.contextmanager
def enable_fake_mode():
    """Within the context, parameters, buffers and tensors are created as FakeTensors.

    Export works outside or inside the context; the exported program's weights are absent until
    apply_weights() supplies them (saving with include_initializers=False works without them).
    """
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.fx.experimental.symbolic_shapes import ShapeEnv

    mode = FakeTensorMode(allow_non_fake_inputs=True,
                          shape_env=ShapeEnv(allow_dynamic_output_shape_ops=True))
    with mode:
        yield mode
