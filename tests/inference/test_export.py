from __future__ import annotations

import numpy as np
import pytest
import torch

from focalstack.inference.export import TupleOutput, export_model
from focalstack.inference.predict import load_predictor


def _reference(model, stack, u):
    with torch.no_grad():
        return [t.numpy() for t in TupleOutput(model)(stack, u)]


def test_torchscript_matches_pytorch(tiny_checkpoint, tmp_path):
    model = load_predictor(tiny_checkpoint)
    path = export_model(model, tmp_path / "m.pt", "torchscript", num_slices=3, size=(32, 48))
    loaded = torch.jit.load(str(path))
    stack, u = torch.rand(1, 3, 3, 32, 48), torch.rand(1, 3)
    for got, want in zip(loaded(stack, u), _reference(model, stack, u)):
        np.testing.assert_allclose(got.detach().numpy(), want, atol=1e-5)


def test_onnx_matches_pytorch_with_other_shapes(tiny_checkpoint, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    model = load_predictor(tiny_checkpoint)
    path = export_model(model, tmp_path / "m.onnx", "onnx", num_slices=4, size=(32, 48))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    # a different slice count and image size than the export example: the axes are dynamic
    stack, u = torch.rand(2, 5, 3, 36, 44), torch.rand(2, 5)
    got = session.run(None, {"stack": stack.numpy(), "focus_u": u.numpy()})
    for g, want in zip(got, _reference(model, stack, u)):
        np.testing.assert_allclose(g, want, atol=1e-4)


def test_unknown_format(tiny_checkpoint, tmp_path):
    with pytest.raises(ValueError, match="unknown export format"):
        export_model(load_predictor(tiny_checkpoint), tmp_path / "x", "tflite")
