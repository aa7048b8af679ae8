"""Matching networks (Vinyals et al. 2016): attention over the support set in a learned embedding."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fastadapt.algorithms.base import MetaLearner, Predictor, embedding_size
from fastadapt.algorithms.protonet import cosine_similarities
from fastadapt.algorithms.temperature import Temperature
from fastadapt.components import AlgorithmConfig, option, register
from fastadapt.errors import ConfigError
from fastadapt.nn.functional import call
from fastadapt.tasks import ways_of


def attention_log_probs(
    query: Tensor, support: Tensor, support_y: Tensor, ways: int, temperature: nn.Module | None = None
) -> Tensor:
    """Log class probabilities ``[n, ways]``: softmax attention over cosine similarities to the
    support embeddings (divided by ``temperature``, if given), summed per class (the paper's
    ``P(y|x, S) = sum_i a(x, x_i) y_i``)."""
    similarities = cosine_similarities(query, support)
    attention = (temperature(similarities) if temperature is not None else similarities).softmax(dim=-1)
    probabilities = attention @ F.one_hot(support_y, ways).to(attention.dtype)
    return probabilities.clamp_min(torch.finfo(probabilities.dtype).tiny).log()


class FullContext(nn.Module):
    """The full-context embeddings of the paper: a bidirectional LSTM over the support set
    (``g``) and an attention LSTM that reads the support set ``steps`` times for each query (``f``)."""

    def __init__(self, dim: int, steps: int) -> None:
        super().__init__()
        self.steps = steps
        self.support_lstm = nn.LSTM(dim, dim, bidirectional=True)
        self.query_cell = nn.LSTMCell(dim, 2 * dim)

    def support(self, embeddings: Tensor) -> Tensor:
        """``g(x_i, S)``: each support embedding plus both directions of the LSTM over the set."""
        out, _ = self.support_lstm(embeddings[:, None, :])
        forward, backward = out[:, 0].chunk(2, dim=-1)
        return embeddings + forward + backward

    def query(self, embeddings: Tensor, support: Tensor) -> Tensor:
        """``f(x, S)``: ``steps`` rounds of attention over ``support``, conditioned by an LSTM state."""
        dim = embeddings.shape[-1]
        h = torch.zeros_like(embeddings)
        c = embeddings.new_zeros(embeddings.shape[0], 2 * dim)
        readout = torch.zeros_like(embeddings)
        for _ in range(self.steps):
            h_hat, c = self.query_cell(embeddings, (torch.cat([h, readout], dim=-1), c))
            h = embeddings + h_hat[:, :dim]
            readout = (h @ support.T).softmax(dim=-1) @ support
        return h


class MatchingNet(MetaLearner):
    """Classify a query by cosine attention over the embedded support examples.

    ``encoder`` maps inputs to ``[batch, dim]`` embeddings. ``fce=True`` adds the paper's
    full-context embeddings (``fce_steps`` attention reads per query); it needs the embedding size,
    ``embedding_dim`` (read from fastadapt's backbones), and runs the per-task loop (torch.func.vmap has no
    batching rule for LSTMs). The predictor returns log-probabilities, so a softmax of
    its output is the attention's class distribution and cross-entropy is the paper's loss.

    The paper's attention is a softmax over raw cosines, which lie in [-1, 1] (in [0, 1] after a
    ReLU encoder), so it can never be sharp: a 20-way 1-shot query gets at most e/(e+19) = 13% of
    the attention on its class. ``temperature`` divides the cosines first (``learn_temperature``
    learns it, as ProtoNet's option), which lets the attention sharpen; the default 1 is the paper.
    """

    name = "matchingnet"

    def __init__(
        self,
        encoder: nn.Module,
        vmap: bool | None = None,
        fce: bool = False,
        fce_steps: int = 5,
        temperature: float = 1.0,
        learn_temperature: bool = False,
        embedding_dim: int | None = None,
    ) -> None:
        if fce and vmap:
            raise ConfigError(
                "MatchingNet(fce=True) runs the per-task loop (vmap has no rule for LSTMs): leave vmap unset"
            )
        super().__init__(loss="cross_entropy", vmap=False if fce else vmap)
        self.encoder = encoder
        self.temperature = Temperature(temperature, learn_temperature)
        self.context = None
        if fce:
            if fce_steps < 1:
                raise ConfigError(f"fce_steps must be at least 1, got {fce_steps!r}")
            self.context = FullContext(embedding_size(encoder, embedding_dim, "MatchingNet(fce=True)"), fce_steps)

    def adapt(
        self, support_x: Tensor, support_y: Tensor, *, steps: int | None = None, ways: int | None = None
    ) -> Predictor:
        if ways is None:
            ways = ways_of(support_y)
        support = call(self.encoder, support_x)
        if self.context is not None:
            support = self.context.support(support)

        def predict(x: Tensor) -> Tensor:
            query = call(self.encoder, x)
            if self.context is not None:
                query = self.context.query(query, support)
            return attention_log_probs(query, support, support_y, ways, self.temperature)

        return predict


@register("algorithm", "matchingnet")
@dataclass
class MatchingNetConfig(AlgorithmConfig):
    """Matching Networks: full context embeddings (``fce``, ``fce_steps`` LSTM steps) and the ``temperature``."""

    learner = MatchingNet
    fce: bool = False
    fce_steps: int = option(5, minimum=1)
    temperature: float = option(1.0, minimum=1e-6)
    learn_temperature: bool = False
