"""fastadapt's BatchNorm: batch statistics in every mode, equal to torch's kernel, no running state."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from fastadapt.nn import BatchNorm


def test_module_has_no_running_state() -> None:
    layer = BatchNorm(4)
    assert [name for name, _ in layer.named_buffers()] == []
    assert BatchNorm(4, scale=False).state_dict().keys() == {"bias"}  # its constant scale is not kept
    x = torch.randn(8, 4, 3, 3) * 3 + 2
    layer.eval()
    out = layer(x)  # batch statistics in eval mode too, as MAML does
    torch.testing.assert_close(out.mean(dim=(0, 2, 3)), torch.zeros(4), atol=1e-5, rtol=0)


def test_equals_a_standard_batch_norm_on_batch_statistics() -> None:
    layer = BatchNorm(3)
    with torch.no_grad():
        layer.weight.uniform_(0.5, 1.5)
        layer.bias.normal_()
    standard = torch.nn.BatchNorm1d(3, track_running_stats=False)
    standard.load_state_dict(layer.state_dict())
    x = torch.randn(10, 3, 7, dtype=torch.float32)
    torch.testing.assert_close(layer(x), standard(x))
    torch.testing.assert_close(layer(x), F.batch_norm(x, None, None, layer.weight, layer.bias, training=True))
