"""ANIL (Raghu et al. 2020): almost no inner loop; the body is meta-learned, only the head adapts."""

from __future__ import annotations

from torch import Tensor, nn
from torch.func import functional_call

from fastadapt.algorithms.maml import MAML
from fastadapt.errors import ConfigError
from fastadapt.nn.params import Params, parameter_dict


class ANIL(MAML):
    """MAML with the inner loop on ``model.head`` alone; ``model.body`` is a shared feature extractor.

    The body runs once per support and query set, not once per inner step: that is ANIL's speed-up.
    """

    name = "anil"

    def __init__(self, model: nn.Module, *args: object, **kwargs: object) -> None:
        head = getattr(model, "head", None)
        if not isinstance(head, nn.Module) or not isinstance(getattr(model, "body", None), nn.Module):
            raise ConfigError("ANIL needs a model with a `body` and a `head` (e.g. fastadapt.nn.Conv4 with out_features set)")
        super().__init__(model, *args, **kwargs)  # type: ignore[arg-type]

    def fast_params(self) -> Params:
        return parameter_dict(self.model.head)

    def features(self, x: Tensor) -> Tensor:
        return self.model.body(x)

    def apply_fast(self, params: Params, features: Tensor) -> Tensor:
        return functional_call(self.model.head, params, (features,))
