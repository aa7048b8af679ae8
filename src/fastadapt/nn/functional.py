"""Any ``nn.Module`` as a pure function of its parameters: the one way fastadapt runs a model.

The batch-norm policy lives here. Every normalization layer normalizes with the statistics of the
batch it is given (the support set while adapting, the query set when predicting), in training and
in eval mode alike, which is the MAML convention; the running statistics of standard
``nn.BatchNorm1d/2d/3d`` layers are neither read nor updated, so meta-training never changes the
user's buffers and runs under ``torch.func`` transforms, which forbid in-place updates.
"""

from __future__ import annotations

import contextlib
import inspect
import re
from collections.abc import Callable, Iterator
from typing import Any, Literal, get_args

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.overrides import TorchFunctionMode

from fastadapt.errors import ConfigError

_RUNNING_STATS = ("running_mean", "running_var", "num_batches_tracked")


def running_stat_overrides(module: nn.Module) -> dict[str, None]:
    """The running statistics of every batch-norm layer in ``module``, each mapped to ``None``.

    Given to ``functional_call``, ``None`` makes a standard batch-norm layer normalize with batch
    statistics and skip its in-place update, the policy of this module.
    """
    overrides: dict[str, None] = {}
    for prefix, layer in module.named_modules():
        if isinstance(layer, nn.modules.batchnorm._BatchNorm):
            dot = f"{prefix}." if prefix else ""
            overrides.update({dot + name: None for name in _RUNNING_STATS if getattr(layer, name, None) is not None})
    return overrides


def call(module: nn.Module, x: Tensor, params: dict[str, Tensor] | None = None) -> Tensor:
    """``module(x)`` with ``params`` in place of its own (where given) and batch statistics in every
    batch-norm layer; gradients reach ``params``, or the module's own parameters where not given."""
    overrides = running_stat_overrides(module)
    if not params and not overrides:
        return module(x)
    # torch annotates the dict as dict[str, Tensor], but functional_call takes None for a buffer and
    # sets the buffer to None while it runs: the batch-norm policy above rests on that.
    return functional_call(module, {**(params or {}), **overrides}, (x,))  # type: ignore[dict-item]


def check_supported(module: nn.Module) -> None:
    """Refuse, with the way out, the standard layers whose running state the policy cannot honour."""
    for prefix, layer in module.named_modules():
        if isinstance(layer, nn.modules.instancenorm._InstanceNorm) and layer.track_running_stats:
            raise ConfigError(
                f"{prefix or 'the model'} is {type(layer).__name__}(track_running_stats=True): fastadapt normalizes "
                "with the statistics of each batch and keeps no running state; build it with track_running_stats=False"
            )


def unbatchable_layer(module: nn.Module) -> str | None:
    """The first layer that ``torch.func.vmap`` cannot run with per-task weights (recurrent layers), by name."""
    for prefix, layer in module.named_modules():
        if isinstance(layer, nn.RNNBase):
            return f"{prefix} ({type(layer).__name__})"
    return None


@contextlib.contextmanager
def math_attention() -> Iterator[None]:
    """Compute ``scaled_dot_product_attention`` with its math kernel inside this block: the fused
    (flash, memory-efficient) kernels have no double backward, which second-order meta-gradients
    need, and no ``vmap`` batching rule (torch falls back to a slow per-task loop)."""
    with sdpa_kernel([SDPBackend.MATH]):
        yield


def _normalize(x: Tensor, mean: Tensor, var: Tensor, eps: float, weight: Tensor | None, bias: Tensor | None,
               affine_shape: tuple[int, ...]) -> Tensor:
    out = (x - mean) * torch.rsqrt(var + eps)
    if weight is not None:
        out = out * weight.view(affine_shape)
    if bias is not None:
        out = out + bias.view(affine_shape)
    return out


def _channel_shape(x: Tensor) -> tuple[int, ...]:
    """The shape that broadcasts a per-channel vector over ``x`` (channels in dim 1)."""
    return (1, -1) + (1,) * (x.dim() - 2)


def _batch_moments(x: Tensor) -> tuple[Tensor, Tensor]:
    """Per-channel mean and biased variance over the batch and every spatial dimension: batch norm's statistics."""
    return _moments(x, (0, *range(2, x.dim())))


def _moments(x: Tensor, dims: tuple[int, ...]) -> tuple[Tensor, Tensor]:
    mean = x.mean(dims, keepdim=True)
    centered = x - mean
    return mean, (centered * centered).mean(dims, keepdim=True)


def _batch_norm(input: Tensor, running_mean: Tensor | None, running_var: Tensor | None, weight: Tensor | None = None,
                bias: Tensor | None = None, training: bool = False, momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    channel = _channel_shape(input)
    if training or running_mean is None or running_var is None:
        mean, var = _batch_moments(input)
    else:
        mean, var = running_mean.view(channel), running_var.view(channel)
    return _normalize(input, mean, var, eps, weight, bias, channel)


def _instance_norm(input: Tensor, running_mean: Tensor | None = None, running_var: Tensor | None = None,
                   weight: Tensor | None = None, bias: Tensor | None = None, use_input_stats: bool = True,
                   momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    channel = _channel_shape(input)
    if use_input_stats or running_mean is None or running_var is None:
        mean, var = _moments(input, tuple(range(2, input.dim())))
    else:
        mean, var = running_mean.view(channel), running_var.view(channel)
    return _normalize(input, mean, var, eps, weight, bias, channel)


def _layer_norm(input: Tensor, normalized_shape: list[int] | tuple[int, ...], weight: Tensor | None = None,
                bias: Tensor | None = None, eps: float = 1e-5) -> Tensor:
    dims = tuple(range(input.dim() - len(normalized_shape), input.dim()))
    mean, var = _moments(input, dims)
    return _normalize(input, mean, var, eps, weight, bias, tuple(normalized_shape))


_ELEMENTARY: dict[Callable[..., Tensor], Callable[..., Tensor]] = {
    F.batch_norm: _batch_norm,
    F.instance_norm: _instance_norm,
    F.layer_norm: _layer_norm,
}


_SIGNATURES = {func: inspect.signature(func) for func in _ELEMENTARY}  # bound on every call: computed once


class _ElementaryNormalization(TorchFunctionMode):
    """Replaces the fused normalization kernels by the same arithmetic in elementary ops."""

    def __torch_function__(self, func: Callable[..., Any], types: Any, args: tuple[Any, ...] = (),
                           kwargs: dict[str, Any] | None = None) -> Any:
        kwargs = kwargs or {}
        elementary = _ELEMENTARY.get(func)
        if elementary is None:
            return func(*args, **kwargs)
        bound = _SIGNATURES[func].bind(*args, **kwargs)
        return elementary(**bound.arguments)


@contextlib.contextmanager
def exact_normalization() -> Iterator[None]:
    """Batch, instance and layer normalization from elementary ops inside this block.

    PyTorch 2.13's fused ``F.batch_norm``, ``F.instance_norm`` and ``F.layer_norm`` give wrong
    second-order gradients under ``torch.func.vmap`` (1e-2 of the largest entry in float64, see
    ``tests/nn/test_functional.py``); the same normalization written as mean and variance
    arithmetic is exact. Outside vmap the fused kernels are right and faster, so only the vmapped
    path enters this block; running statistics are never updated in it.
    """
    with _ElementaryNormalization():
        yield


Statistics = Literal["query", "support", "support_and_query", "population"]
STATISTICS: tuple[Statistics, ...] = get_args(Statistics)


def check_statistics(statistics: str) -> None:
    """Refuse, in one line, a batch-norm statistics protocol that is not one of ``STATISTICS``."""
    if statistics not in STATISTICS:
        raise ConfigError(f"statistics must be one of {STATISTICS}, got {statistics!r}")


def with_statistics(
    predictor: Callable[[Tensor], Tensor], support_x: Tensor, statistics: str
) -> Callable[[Tensor], Tensor]:
    """``predictor`` with batch norm normalizing the queries by the named statistics: ``"query"`` (each batch its
    own: the transductive protocol, ``predictor`` unchanged), ``"support"`` (``with_support_statistics``) or
    ``"support_and_query"`` (``with_support_and_query_statistics``)."""
    check_statistics(statistics)
    if statistics == "population":
        raise ConfigError("population statistics normalize the support set too: MetaLearner.evaluate applies them")
    if statistics == "support":
        return with_support_statistics(predictor, support_x)
    if statistics == "support_and_query":
        return with_support_and_query_statistics(predictor, support_x)
    return predictor


class _SupportStatistics(TorchFunctionMode):
    """Batch norm on recorded statistics: those of each layer's input on the support pass, replayed in
    the same order on every later pass."""

    def __init__(self) -> None:
        self.recorded: list[tuple[Tensor, Tensor]] = []
        self.replaying = False
        self.position = 0

    def __torch_function__(self, func: Callable[..., Any], types: Any, args: tuple[Any, ...] = (),
                           kwargs: dict[str, Any] | None = None) -> Any:
        kwargs = kwargs or {}
        if func is not F.batch_norm:
            return func(*args, **kwargs)
        bound = _SIGNATURES[func].bind(*args, **kwargs).arguments
        x = bound["input"]
        if not self.replaying:
            self.recorded.append(_batch_moments(x))
        if self.position >= len(self.recorded):
            raise ConfigError("the model normalizes more often on queries than on the support set: "
                              "support statistics need the same batch-norm layers on both")
        mean, var = self.recorded[self.position]
        self.position += 1
        eps, weight, bias = bound.get("eps", 1e-5), bound.get("weight"), bound.get("bias")
        return _normalize(x, mean, var, eps, weight, bias, _channel_shape(x))


def with_support_statistics(predictor: Callable[[Tensor], Tensor], support_x: Tensor) -> Callable[[Tensor], Tensor]:
    """``predictor`` with every batch-norm layer normalizing by the statistics of the support set.

    The non-transductive protocol: the support set is passed through the adapted model once and each
    layer's batch mean and variance are kept; queries are then normalized with them, so a query's
    prediction does not depend on the other queries. Costs one forward pass of the support set.
    """
    mode = _SupportStatistics()
    with mode:
        predictor(support_x)
    mode.replaying = True

    def predict(x: Tensor) -> Tensor:
        mode.position = 0
        with mode:
            return predictor(x)

    return predict


def with_support_and_query_statistics(
    predictor: Callable[[Tensor], Tensor], support_x: Tensor
) -> Callable[[Tensor], Tensor]:
    """``predictor`` with each query normalized by the statistics of the support set plus that one query.

    The non-transductive protocol of Reptile's official code: each query is predicted on its own, in one batch with
    the support set (``predictor(cat(support_x, query))``, its last row), so a query's prediction does not depend on
    the other queries. Costs one forward pass of the support set and one example per query.
    """

    def predict(x: Tensor) -> Tensor:
        return torch.stack([predictor(torch.cat([support_x, query[None]]))[-1] for query in x])

    return predict


_NOT_DIFFERENTIABLE = re.compile(
    r"derivative for (\S+) is not implemented|(\S+) does not support (?:double|second) backward"
)
_UNBATCHABLE = ("vmap", "Batching rule", "batched tensor", "doesn't match the broadcast shape")
_MUTATION = ("in-place operation", "mutate a captured Tensor")


@contextlib.contextmanager
def explained_errors(vmapped: bool) -> Iterator[None]:
    """Turn what PyTorch cannot do with a model into one ``ConfigError`` line naming the way out.

    Second-order meta-gradients need every op's double backward; ``vmap`` needs a batching rule for
    every op; ``torch.func`` forbids a forward pass that updates a buffer in place.
    """
    try:
        yield
    except RuntimeError as error:
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        missing = _NOT_DIFFERENTIABLE.search(message)
        if missing:
            op = missing.group(1) or missing.group(2)
            raise ConfigError(
                f"second-order meta-gradients need the derivative of {op}, which PyTorch does not implement for a "
                "layer of this model: use first_order=True"
            ) from error
        if "setup_context" in message:
            raise ConfigError(
                "a torch.autograd.Function in the model defines forward(ctx, ...), which torch.func (fastadapt's inner "
                "loop) cannot run: give it a separate setup_context (https://pytorch.org/docs/stable/notes/extending.func.html)"
            ) from error
        if any(part in message for part in _MUTATION):
            raise ConfigError(
                f"the model updates a tensor in place in its forward pass ({message}); fastadapt runs it as a pure "
                "function: keep buffers constant in forward (batch-norm running statistics are handled)"
            ) from error
        if vmapped and any(part in message for part in _UNBATCHABLE):
            raise ConfigError(f"torch.func.vmap cannot run this model ({message}): use vmap=False") from error
        raise
