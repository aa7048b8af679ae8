"""Batch norm on population statistics: per-layer moments estimated once from training data, then fixed.

The non-transductive test of code that tests in eval mode (Snell et al.'s ProtoNet: running
statistics): every batch-norm layer normalizes the support set and each query with the same fixed
mean and variance, recorded after training, at the trained weights, over many training batches:
the mean over batches of each batch's mean and (biased) variance, which is what running averages
estimate. fastadapt keeps no running state, so the statistics are recorded here and not in the
layers' buffers. A layer is known by its name in the module: forward hooks on every batch-norm layer
say which one is calling ``F.batch_norm``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

from fastadapt.errors import ConfigError
from fastadapt.nn.batchnorm import is_batch_norm
from fastadapt.nn.functional import _SIGNATURES, _batch_moments, _channel_shape, _normalize

Moments = dict[str, tuple[Tensor, Tensor]]


class _ByLayer(TorchFunctionMode):
    """Sees every ``F.batch_norm`` call with the name of the batch-norm layer making it."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.layer: str | None = None
        self.layers = {name: layer for name, layer in module.named_modules() if is_batch_norm(layer)}
        if not self.layers:
            raise ConfigError("population statistics need batch-norm layers, and this model has none: "
                              "test it with statistics='query'")

    @contextlib.contextmanager
    def hooked(self) -> Iterator[None]:
        handles = []
        for name, layer in self.layers.items():
            handles.append(layer.register_forward_pre_hook(lambda _m, _a, name=name: self._enter(name)))
            handles.append(layer.register_forward_hook(lambda _m, _a, _o: self._enter(None)))
        try:
            with self:
                yield
        finally:
            for handle in handles:
                handle.remove()

    def _enter(self, name: str | None) -> None:
        self.layer = name

    def __torch_function__(self, func: Callable[..., Any], types: Any, args: tuple[Any, ...] = (),
                           kwargs: dict[str, Any] | None = None) -> Any:
        kwargs = kwargs or {}
        if func is not F.batch_norm:
            return func(*args, **kwargs)
        if self.layer is None:
            raise ConfigError("the model calls F.batch_norm outside a batch-norm layer, which population statistics "
                              "cannot name: use an nn.BatchNorm layer or statistics='query'")
        bound = _SIGNATURES[func].bind(*args, **kwargs).arguments
        x = bound["input"]
        shape = _channel_shape(x)
        mean, var = self.statistics(self.layer, x)
        return _normalize(x, mean, var, bound.get("eps", 1e-5), bound.get("weight"), bound.get("bias"), shape)

    def statistics(self, layer: str, x: Tensor) -> tuple[Tensor, Tensor]:
        """The mean and variance that normalize ``x``, the input of ``layer``, shaped to broadcast over it."""
        raise NotImplementedError


class _Recording(_ByLayer):
    """Normalizes each batch on its own statistics (as in training) and averages every layer's batch moments."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__(module)
        self.sums: dict[str, tuple[int, Tensor, Tensor]] = {}

    def statistics(self, layer: str, x: Tensor) -> tuple[Tensor, Tensor]:
        mean, var = _batch_moments(x)
        zero = x.new_zeros(x.shape[1])
        count, means, variances = self.sums.get(layer, (0, zero, zero))
        self.sums[layer] = (count + 1, means + mean.detach().flatten(), variances + var.detach().flatten())
        return mean, var

    def moments(self) -> Moments:
        """Each layer's mean over the batches it saw of their mean and of their variance."""
        if not self.sums:
            raise ConfigError("no batch reached the batch-norm layers while recording population statistics")
        return {layer: (means / count, variances / count) for layer, (count, means, variances) in self.sums.items()}


class _Fixed(_ByLayer):
    """Normalizes every batch with recorded moments, in training and eval mode alike."""

    def __init__(self, module: nn.Module, moments: Moments) -> None:
        super().__init__(module)
        self.moments = moments

    def statistics(self, layer: str, x: Tensor) -> tuple[Tensor, Tensor]:
        if layer not in self.moments:
            raise ConfigError(f"population statistics hold no moments for the batch-norm layer {layer}, which the "
                              "recording passes never reached: record them with the passes that test the model")
        mean, var = self.moments[layer]
        shape = _channel_shape(x)
        return mean.to(x.device, x.dtype).view(shape), var.to(x.device, x.dtype).view(shape)


class StatisticsRecorder:
    """Pools the input moments of every batch-norm layer of ``module`` over all passes made inside ``recording()``
    (each batch normalized on its own statistics, as in training); ``moments()`` gives them."""

    def __init__(self, module: nn.Module) -> None:
        self._mode = _Recording(module)

    @contextlib.contextmanager
    def recording(self) -> Iterator[None]:
        with torch.no_grad(), self._mode.hooked():
            yield

    def moments(self) -> Moments:
        return self._mode.moments()


@contextlib.contextmanager
def fixed_statistics(module: nn.Module, moments: Moments) -> Iterator[None]:
    """Every batch-norm layer of ``module`` normalizes with ``moments`` (recorded on the same model) inside."""
    with _Fixed(module, moments).hooked():
        yield


def normalization(
    module: nn.Module, statistics: str, moments: Moments | None
) -> tuple[contextlib.AbstractContextManager[None], str]:
    """How a test of ``module`` under ``statistics`` normalizes: the batch-norm mode to enter around adapting and
    predicting (population statistics: ``fixed_statistics`` on ``moments``), and the per-task protocol to apply
    inside it (``with_statistics``; ``"query"`` where the mode already fixes every layer's statistics)."""
    if statistics != "population":
        return contextlib.nullcontext(), statistics
    if moments is None:
        raise ConfigError("statistics='population' needs the moments to normalize with: meta_test(..., "
                          "population=training tasks) records them")
    return fixed_statistics(module, moments), "query"

