"""ANIL (Raghu et al. 2020): almost no inner loop; the body is meta-learned, only the head adapts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import Tensor, nn

from fastadapt.algorithms.maml import MAML, MAMLPlusPlusKeys
from fastadapt.components import register
from fastadapt.errors import ConfigError
from fastadapt.nn.functional import call
from fastadapt.nn.params import Params, parameter_dict


def head_name(model: nn.Module, head: str | None) -> str:
    """The submodule ANIL adapts: ``head`` if given, else ``model.head``, else an ``nn.Sequential``'s last layer."""
    if head is None:
        if isinstance(getattr(model, "head", None), nn.Module):
            head = "head"
        elif isinstance(model, nn.Sequential) and len(model) > 1:
            head = str(len(model) - 1)
        else:
            raise ConfigError(
                "ANIL adapts the model's output layer: name it, e.g. ANIL(model, head='fc'), "
                f"for a {type(model).__name__}"
            )
    names = dict(model.named_modules())
    if head not in names or head == "":
        raise ConfigError(
            f"ANIL head {head!r} is not a submodule of the model; its submodules: {sorted(names)[1:8]}..."
        )
    return head


class ANIL(MAML):
    """MAML with the inner loop on the model's output layer alone; the rest is a shared feature extractor.

    ``head`` names the submodule that adapts (default: ``model.head``, or the last layer of an
    ``nn.Sequential``; ``"fc"`` for a torchvision ResNet); it must produce the model's output from
    its input alone. The features that enter it are computed once per support and query set, not
    once per inner step: that is ANIL's speed-up.
    """

    name = "anil"

    def __init__(self, model: nn.Module, *args: Any, head: str | None = None, **kwargs: Any) -> None:
        self.head_name = head_name(model, head)
        super().__init__(model, *args, **kwargs)

    @property
    def head(self) -> nn.Module:
        return self.model.get_submodule(self.head_name)

    def fast_params(self) -> Params:
        return parameter_dict(self.head)

    def features(self, x: Tensor) -> Tensor:
        """The input of the head when the whole model runs on ``x`` (captured by a forward pre-hook)."""
        captured: list[Tensor] = []
        handle = self.head.register_forward_pre_hook(lambda _, inputs: captured.append(inputs[0]))
        try:
            call(self.model, x)
        finally:
            handle.remove()
        return captured[-1]

    def apply_fast(self, params: Params, features: Tensor) -> Tensor:
        return call(self.head, features, params)


@register("algorithm", "anil")
@dataclass
class ANILConfig(MAMLPlusPlusKeys):
    """ANIL: MAML's keys, and ``head``, the submodule that adapts (``None``: ``model.head`` or a Sequential's last)."""

    learner = ANIL
    per_step_lr: bool = False
    head: str | None = None
