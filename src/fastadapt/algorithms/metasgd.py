"""Meta-SGD (Li et al. 2017): meta-learns the initialization and a learning rate for every weight."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from fastadapt.algorithms.maml import MAML, MAMLPlusPlusKeys, _key
from fastadapt.components import register


class MetaSGD(MAML):
    """MAML whose inner step is ``theta - alpha * grad`` with a learned ``alpha`` shaped like ``theta``.

    ``alpha`` starts at ``inner_lr`` everywhere and is meta-learned with the initialization; the
    same ``alpha`` serves every inner step.
    """

    name = "metasgd"

    def _init_learned_lrs(self, per_step_lr: bool) -> nn.ParameterDict:
        return nn.ParameterDict({
            _key(name): nn.Parameter(torch.full_like(p.detach(), self.inner_lr))
            for name, p in self.fast_params().items()
        })

    def learning_rates(self, step: int) -> dict[str, Tensor | float]:
        assert self.learned_lrs is not None  # made by _init_learned_lrs above
        return {name: self.learned_lrs[_key(name)] for name in self.fast_params()}


@register("algorithm", "metasgd")
@dataclass
class MetaSGDConfig(MAMLPlusPlusKeys):
    """Meta-SGD: MAML's keys but ``per_step_lr`` (its learned rates serve every step)."""

    learner = MetaSGD
