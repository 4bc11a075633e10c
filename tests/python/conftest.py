import os
import sys

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "demo"))

import demo_models  # noqa: E402


@pytest.fixture(params=sorted(demo_models.MODELS))
def model_case(request):
    """(name, model, args, expected eager outputs) for each foundation model."""
    model, args = demo_models.MODELS[request.param]()
    with torch.no_grad():
        expected = model(*args)
    return request.param, model, args, expected
