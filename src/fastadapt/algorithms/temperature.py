"""A softmax temperature for similarity-based classifiers, fixed or learned."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from fastadapt.errors import ConfigError


class Temperature(nn.Module):
    """Divides similarity scores by a temperature; ``learn=True`` makes it a trained parameter
    (the metric scaling of Oreshkin et al. 2018). A fixed temperature is not stored in
    checkpoints: it comes from the config."""

    def __init__(self, value: float = 1.0, learn: bool = False) -> None:
        super().__init__()
        if not value > 0:
            raise ConfigError(f"temperature must be positive, got {value!r}")
        log_value = torch.tensor(math.log(value))
        if learn:
            self.log_value = nn.Parameter(log_value)
        else:
            self.register_buffer("log_value", log_value, persistent=False)

    def forward(self, scores: Tensor) -> Tensor:
        return scores / self.log_value.exp()
