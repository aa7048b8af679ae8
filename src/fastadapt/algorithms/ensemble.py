"""Several trained learners tested as one: MAML++'s ensemble of its best validation checkpoints."""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import torch
from torch import Tensor, nn

from fastadapt.algorithms.base import MetaLearner, Predictor
from fastadapt.errors import ConfigError


class Ensemble(MetaLearner):
    """Each member adapts to the support set on its own; the ensemble predicts the mean of their outputs (for
    classifiers the logits, as MAML++'s code averages them). The members are learners of one method, e.g. the
    checkpoints of a run's best validations (``test.ensemble``); it is a test-time learner, not trained."""

    name = "ensemble"

    def __init__(self, members: Sequence[MetaLearner]) -> None:
        if not members:
            raise ConfigError("an Ensemble needs at least one member")
        first = members[0]
        super().__init__(loss=first.loss_fn, vmap=first.vmap)
        self.members = nn.ModuleList(members)

    def adapt(
        self, support_x: Tensor, support_y: Tensor, *, steps: int | None = None, ways: int | None = None
    ) -> Predictor:
        predictors = [member.adapt(support_x, support_y, steps=steps, ways=ways) for member in self.learners()]
        return lambda x: torch.stack([predict(x) for predict in predictors]).mean(dim=0)

    def probabilities(self, outputs: Tensor) -> Tensor:
        return self.learners()[0].probabilities(outputs)

    def learners(self) -> list[MetaLearner]:
        """The members, as the learners they are (``members`` is their ``nn.ModuleList``)."""
        return [cast(MetaLearner, member) for member in self.members]
