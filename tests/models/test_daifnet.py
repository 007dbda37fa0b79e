"""DAIF-Net: contract shapes, permutation invariance, odd sizes, input validation, fused-block equivalence."""

from __future__ import annotations

import time

import pytest
import torch

from focalstack.models import DAIFNet, create_model
from focalstack.models.blocks import ConvBlock, FusedConvBlock, stack_max


def _inputs(B: int = 2, S: int = 3, H: int = 16, W: int = 16, dtype=torch.float32):
    return torch.rand(B, S, 3, H, W, dtype=dtype), torch.rand(B, S, dtype=dtype)


def test_output_contract() -> None:
    net = DAIFNet(width=4, depth=2)
    out = net(*_inputs())
    assert set(out) == {"aif", "t"}
    assert out["aif"].shape == (2, 3, 16, 16) and out["t"].shape == (2, 1, 16, 16)
    for v in out.values():
        assert torch.isfinite(v).all() and v.min() >= 0 and v.max() <= 1


@pytest.mark.parametrize("hw", [(13, 21), (1, 7), (33, 8)])
def test_any_image_size(hw: tuple[int, int]) -> None:
    net = DAIFNet(width=4, depth=3)
    stack, u = _inputs(1, 2, *hw)
    out = net(stack, u)
    assert out["aif"].shape == (1, 3, *hw) and out["t"].shape == (1, 1, *hw)
    assert torch.isfinite(out["t"]).all()


def test_permutation_invariant_and_any_slice_count() -> None:
    net = DAIFNet(width=4, depth=2)
    stack, u = _inputs(2, 4, 16, 12)
    out = net(stack, u)
    perm = torch.tensor([3, 0, 2, 1])
    out_p = net(stack[:, perm], u[:, perm])
    for k in out:
        torch.testing.assert_close(out_p[k], out[k], atol=1e-5, rtol=1e-5)
    assert net(stack[:, :2], u[:, :2])["t"].shape == (2, 1, 16, 12)


def test_focus_input_is_used() -> None:
    net = DAIFNet(width=4, depth=2)
    stack, u = _inputs()
    assert not torch.allclose(net(stack, u)["t"], net(stack, u.flip(1))["t"])


def test_duplicate_slice_changes_nothing() -> None:
    # Max fusion: a stack with one slice repeated is the same set of slices.
    net = DAIFNet(width=4, depth=2)
    stack, u = _inputs(1, 3)
    dup_stack, dup_u = torch.cat([stack, stack[:, :1]], 1), torch.cat([u, u[:, :1]], 1)
    torch.testing.assert_close(net(dup_stack, dup_u)["t"], net(stack, u)["t"], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    "stack_shape, u_shape",
    [
        ((2, 3, 16, 16), (2, 3)),  # missing slice axis
        ((2, 3, 1, 16, 16), (2, 3)),  # grey
        ((2, 1, 3, 16, 16), (2, 1)),  # one slice
        ((2, 3, 3, 16, 16), (2, 4)),  # focus count mismatch
        ((2, 3, 3, 16, 16), (2, 3, 1)),  # focus rank
    ],
)
def test_bad_inputs_raise(stack_shape, u_shape) -> None:
    with pytest.raises(ValueError):
        DAIFNet(width=4, depth=2)(torch.rand(stack_shape), torch.rand(u_shape))


def test_integer_input_raises() -> None:
    with pytest.raises(ValueError, match="floating"):
        DAIFNet(width=4, depth=2)(torch.zeros(1, 2, 3, 8, 8, dtype=torch.uint8), torch.rand(1, 2))


def test_bad_config_raises() -> None:
    with pytest.raises(ValueError):
        DAIFNet(width=0)


def test_fused_block_equals_convolution_of_concatenation() -> None:
    """Reference: ConvBlock over cat(slice features, broadcast stack max), the paper's literal form."""
    torch.manual_seed(1)
    B, S, C, H, W = 2, 3, 4, 8, 8
    fused, ref = FusedConvBlock(C, 5), ConvBlock(2 * C, 5)
    with torch.no_grad():
        ref[0].weight.copy_(torch.cat([fused.local.weight, fused.pooled.weight], dim=1))
        ref[0].bias.copy_(fused.local.bias)
        ref[2].load_state_dict(fused.conv2.state_dict())
    x = torch.randn(B * S, C, H, W)
    pooled = stack_max(x, B)
    cat = torch.cat([x, pooled.repeat_interleave(S, dim=0)], dim=1)
    torch.testing.assert_close(fused(x, pooled), ref(cat), atol=1e-5, rtol=1e-5)


def test_stack_max_reference() -> None:
    x = torch.randn(6, 2, 3, 3)
    expected = torch.stack(
        [torch.maximum(torch.maximum(x[3 * b], x[3 * b + 1]), x[3 * b + 2]) for b in (0, 1)]
    )
    torch.testing.assert_close(stack_max(x, 2), expected)


def test_gradcheck_float64() -> None:
    torch.manual_seed(2)
    net = DAIFNet(width=2, depth=1).double()
    stack, u = _inputs(1, 2, 2, 2, dtype=torch.float64)
    stack.requires_grad_(True)
    u.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda s, f: net(s, f)["t"], (stack, u), eps=1e-6, atol=1e-5)


def test_paper_size_parameter_count() -> None:
    n = sum(p.numel() for p in create_model("daifnet", width=16, depth=4).parameters())
    assert 2.0e6 < n < 2.6e6  # the paper reports about 2 M; this one has 2.35 M


@pytest.mark.slow
def test_cpu_speed_paper_size() -> None:
    """Batch 4 x 5 slices x 128^2 forward + backward, best of 3 (the training workload on CPU).

    One thread: on a shared machine a second one mostly adds contention, which makes timings meaningless.
    """
    net = create_model("daifnet")
    stack, u = _inputs(4, 5, 128, 128)
    threads, best = torch.get_num_threads(), float("inf")
    torch.set_num_threads(1)
    try:
        for _ in range(3):
            start = time.perf_counter()
            out = net(stack, u)
            (out["aif"].mean() + out["t"].mean()).backward()
            best = min(best, time.perf_counter() - start)
    finally:
        torch.set_num_threads(threads)
    assert best < 1.0
