"""Batch norm on batch statistics: equal to torch's, and exact second order under vmap."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.func import grad, vmap

from fastadapt.nn import BatchNorm, batch_norm, elementary_batch_norm


def test_elementary_equals_the_fused_kernel() -> None:
    x = torch.randn(6, 3, 5, 5, dtype=torch.float64)
    w, b = torch.rand(3, dtype=torch.float64) + 0.5, torch.randn(3, dtype=torch.float64)
    fused = batch_norm(x, w, b)
    with elementary_batch_norm():
        elementary = batch_norm(x, w, b)
    torch.testing.assert_close(fused, elementary)
    torch.testing.assert_close(fused, F.batch_norm(x, None, None, w, b, training=True))


def test_module_has_no_running_state() -> None:
    layer = BatchNorm(4)
    assert [name for name, _ in layer.named_buffers()] == []
    x = torch.randn(8, 4, 3, 3) * 3 + 2
    layer.eval()
    out = layer(x)  # batch statistics in eval mode too, as MAML does
    torch.testing.assert_close(out.mean(dim=(0, 2, 3)), torch.zeros(4), atol=1e-5, rtol=0)


def test_second_order_gradients_under_vmap_equal_the_loop() -> None:
    """The meta-gradient through a batch-norm inner step, vmapped over tasks, equals the per-task loop."""
    torch.manual_seed(1)
    kernel = torch.randn(3, 2, 3, 3, dtype=torch.float64, requires_grad=True)
    scale = (torch.rand(3, dtype=torch.float64) + 0.5).requires_grad_()
    shift = torch.randn(3, dtype=torch.float64, requires_grad=True)
    x, y = torch.randn(4, 5, 2, 6, 6, dtype=torch.float64), torch.randn(4, 5, 3, 6, 6, dtype=torch.float64)

    def loss(params: tuple[torch.Tensor, ...], inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        h = batch_norm(F.conv2d(inputs, params[0], padding=1), params[1], params[2])
        return ((torch.tanh(h) - targets) ** 2).mean()

    def task(inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        params = (kernel, scale, shift)
        adapted = tuple(p - 0.5 * g for p, g in zip(params, grad(loss)(params, inputs, targets)))
        return loss(adapted, inputs.flip(0), targets.flip(0))

    loop = torch.autograd.grad(torch.stack([task(x[i], y[i]) for i in range(4)]).mean(), (kernel, scale, shift))
    with elementary_batch_norm():
        vmapped = torch.autograd.grad(vmap(task)(x, y).mean(), (kernel, scale, shift))
    for a, b in zip(loop, vmapped):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
