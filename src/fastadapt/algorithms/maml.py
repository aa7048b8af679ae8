"""MAML (Finn et al. 2017): the meta-knowledge is an initialization that adapts in a few steps.

Options add the MAML++ improvements (Antoniou et al. 2019): learned per-layer per-step learning
rates, per-step batch-norm weights and biases, the multi-step loss and derivative-order annealing.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor, nn

from fastadapt.algorithms.base import LossFn, MetaLearner, Predictor
from fastadapt.algorithms.inner_loop import inner_loop
from fastadapt.components import AlgorithmConfig, Run, option, register
from fastadapt.errors import ConfigError
from fastadapt.nn.batchnorm import batch_norm_parameters
from fastadapt.nn.functional import call, math_attention
from fastadapt.nn.params import Params, parameter_dict


def _key(name: str) -> str:
    return name.replace(".", "__")


class MAML(MetaLearner):
    """Model-Agnostic Meta-Learning with exact second-order meta-gradients.

    ``inner_steps`` gradient steps of size ``inner_lr`` on the support set adapt all parameters of
    ``model``; the meta-gradient flows through them (``first_order=True`` drops the second-order
    term: FOMAML). ``test_inner_steps`` is the number of steps when not training (the MAML paper
    adapts longer at test time); it defaults to ``inner_steps``. ``inner_steps=0`` trains one model
    on every task's query loss without adaptation: the MAML paper's "pretrained" comparison, which
    is then fine-tuned at test time by ``test_inner_steps`` steps of ``inner_lr``. ``adapt_batch_norm=False`` leaves
    the batch-norm weights and biases out of the inner loop (meta-learned only): MAML's code keeps them outside its
    fast weights.

    MAML++ options: ``per_step_lr`` learns one learning rate per parameter tensor and step;
    ``per_step_bn`` gives every batch-norm layer its own meta-learned weight and bias per inner step, which the
    inner loop does not adapt (the official code's BNWB; step k's serve the support pass of step k and the query
    pass after it); ``multi_step_loss`` adds the query losses after every step, their weights annealed onto the
    last step over ``multi_step_loss_steps`` meta-updates, after which the last step's loss alone counts;
    ``first_order_until`` uses first-order gradients for the first meta-updates (derivative-order annealing).
    MAML++'s per-step running statistics need no option: the official code collects them but normalizes with
    the batch's statistics (``training=True``), which is fastadapt's batch-norm policy.

    ``checkpoint_inner`` recomputes each inner step during the backward pass instead of storing its
    activations (see ``inner_loop``): second-order MAML with many inner steps in bounded memory,
    for about one more forward and backward of the support set per step. It runs the per-task loop.
    """

    name = "maml"

    def __init__(
        self,
        model: nn.Module,
        inner_lr: float = 0.4,
        inner_steps: int = 1,
        first_order: bool = False,
        loss: str | LossFn = "cross_entropy",
        vmap: bool | None = None,
        test_inner_steps: int | None = None,
        per_step_lr: bool = False,
        multi_step_loss: bool = False,
        multi_step_loss_steps: int = 0,
        first_order_until: int = 0,
        checkpoint_inner: bool = False,
        per_step_bn: bool = False,
        adapt_batch_norm: bool = True,
    ) -> None:
        if checkpoint_inner and vmap:
            raise ConfigError("checkpoint_inner runs the per-task loop: it cannot be combined with vmap=True")
        super().__init__(loss=loss, vmap=False if checkpoint_inner else vmap)
        if not isinstance(inner_steps, int) or inner_steps < 0:
            raise ConfigError(f"inner_steps must be a non-negative integer, got {inner_steps!r}")
        if inner_steps == 0 and (per_step_lr or per_step_bn or multi_step_loss or type(self) is not MAML):
            raise ConfigError(
                f"inner_steps=0 (pretraining without adaptation) is plain MAML's baseline: {self.name} "
                "with per-step learning rates, per-step batch norm or the multi-step loss needs inner_steps >= 1"
            )
        if multi_step_loss and multi_step_loss_steps < 1:
            raise ConfigError(
                "multi_step_loss anneals the per-step query losses onto the last step over multi_step_loss_steps "
                f"meta-updates: set multi_step_loss_steps >= 1 (MAML++: 5000), got {multi_step_loss_steps!r}"
            )
        if per_step_bn and type(self) is not MAML:
            raise ConfigError(f"per_step_bn is an option of MAML (MAML++), not of {self.name}")
        if per_step_bn and not adapt_batch_norm:
            raise ConfigError("per_step_bn already keeps the batch-norm weights out of the inner loop, one set per "
                              "step: drop adapt_batch_norm=false")
        if test_inner_steps is not None and (not isinstance(test_inner_steps, int) or test_inner_steps < 0):
            raise ConfigError(f"test_inner_steps must be a non-negative integer, got {test_inner_steps!r}")
        if inner_lr <= 0:
            raise ConfigError(f"inner_lr must be positive, got {inner_lr!r}")
        self.model = model
        self.inner_lr = float(inner_lr)
        self.inner_steps = inner_steps
        self.test_inner_steps = inner_steps if test_inner_steps is None else test_inner_steps
        self.first_order = first_order
        self.multi_step_loss = multi_step_loss
        self.multi_step_loss_steps = multi_step_loss_steps
        self.first_order_until = first_order_until
        self.checkpoint_inner = checkpoint_inner
        self.step = 0
        # The batch-norm weights the inner loop leaves alone: kept one set per step (per_step_bn), or the model's own.
        held = per_step_bn or not adapt_batch_norm
        self.held_norms: tuple[str, ...] = tuple(batch_norm_parameters(model)) if held else ()
        self.step_norms = self._init_step_norms(per_step_bn)
        self.learned_lrs = self._init_learned_lrs(per_step_lr)

    def _init_learned_lrs(self, per_step_lr: bool) -> nn.ParameterDict | None:
        if not per_step_lr:
            return None
        return nn.ParameterDict(
            {_key(name): nn.Parameter(torch.full((self.inner_steps,), self.inner_lr)) for name in self.fast_params()}
        )

    def _init_step_norms(self, per_step_bn: bool) -> nn.ParameterDict | None:
        """MAML++'s per-step batch-norm weights: each layer's, copied once per inner step."""
        if not per_step_bn:
            return None
        norms = batch_norm_parameters(self.model)
        if not norms:
            raise ConfigError(
                "per_step_bn gives batch-norm layers a weight and bias per inner step, but the model has no "
                "batch-norm layer with weights: build it with BatchNorm (affine=True) or drop per_step_bn"
            )
        steps = self.inner_steps
        per_step = {_key(name): nn.Parameter(p.detach().unsqueeze(0).repeat(steps, *[1] * p.dim()))
                    for name, p in norms.items()}
        return nn.ParameterDict(per_step)

    # What adapts, and how it is applied: ANIL overrides these two.
    def fast_params(self) -> Params:
        """The parameters the inner loop adapts: all the model's, but the batch-norm weights that MAML++ keeps per step
        or that ``adapt_batch_norm=False`` keeps out."""
        params = parameter_dict(self.model)
        return {name: p for name, p in params.items() if name not in self.held_norms}

    def norms_at(self, step: int) -> Params:
        """The batch-norm weights of inner step ``step`` (the last step's beyond ``inner_steps``) with
        ``per_step_bn``; else none (the model's own serve every step)."""
        if self.step_norms is None:
            return {}
        index = min(step, self.inner_steps - 1)
        return {name: self.step_norms[_key(name)][index] for name in self.held_norms}

    def predict_with(self, params: Params, steps: int, features: Tensor) -> Tensor:
        """The adapted network's outputs after ``steps`` inner steps ended at ``params``: with the batch-norm weights
        of the last step taken (of the first, if none was)."""
        return self.apply_fast({**params, **self.norms_at(max(steps - 1, 0))}, features)

    def features(self, x: Tensor) -> Tensor:
        """The input of the adapted part of the network."""
        return x

    def apply_fast(self, params: Params, features: Tensor) -> Tensor:
        """The adapted part of the network at ``params``, on batch statistics (``fastadapt.nn.call``)."""
        return call(self.model, features, params)

    def learning_rates(self, step: int) -> dict[str, Tensor | float]:
        """Inner learning rates for an inner step, by parameter name (Meta-SGD overrides this)."""
        if self.learned_lrs is None:
            return dict.fromkeys(self.fast_params(), self.inner_lr)
        last = self.inner_steps - 1
        return {name: self.learned_lrs[_key(name)][min(step, last)] for name in self.fast_params()}

    def set_step(self, step: int) -> None:
        self.step = step

    def _first_order_now(self) -> bool:
        return self.first_order or self.step < self.first_order_until

    def _adapted(self, support_x: Tensor, support_y: Tensor, steps: int) -> list[Params]:
        first_order = self._first_order_now() or not torch.is_grad_enabled()
        with contextlib.nullcontext() if first_order else math_attention():
            return inner_loop(
                self.apply_fast,
                self.fast_params(),
                self.features(support_x),
                support_y,
                self.loss_fn,
                steps,
                self.learning_rates,
                first_order,
                self.checkpoint_inner,
                self.norms_at,
            )

    def _check_ways(self, ways: int | None) -> None:
        head = getattr(self.model, "head", None)
        if ways is not None and isinstance(head, nn.Linear) and ways > head.out_features:
            raise ConfigError(
                f"tasks have {ways} classes but the model has {head.out_features} outputs: "
                f"build the model with out_features={ways}"
            )

    def adapt(
        self, support_x: Tensor, support_y: Tensor, *, steps: int | None = None, ways: int | None = None
    ) -> Predictor:
        self._check_ways(ways)
        if steps is None:
            steps = self.inner_steps if self.training else self.test_inner_steps
        params = self._adapted(support_x, support_y, steps)[-1]
        return lambda x: self.predict_with(params, steps, self.features(x))

    def task_objective(
        self, support_x: Tensor, support_y: Tensor, query_x: Tensor, query_y: Tensor, ways: int | None
    ) -> tuple[Tensor, Tensor]:
        if not self.multi_step_loss or self.step >= self.multi_step_loss_steps:  # annealed: the last step's loss
            return super().task_objective(support_x, support_y, query_x, query_y, ways)
        self._check_ways(ways)
        iterates = self._adapted(support_x, support_y, self.inner_steps)
        query_features = self.features(query_x)
        outputs = [self.predict_with(iterates[k], k, query_features) for k in range(1, len(iterates))]
        weights = self.multi_step_weights()
        objective = torch.stack([w * self.loss_fn(out, query_y) for w, out in zip(weights, outputs, strict=True)]).sum()
        return objective, outputs[-1]

    def multi_step_weights(self) -> list[float]:
        """MAML++'s importance of the query loss after each inner step at the current meta-update.

        Uniform at first; the weights of the earlier steps decay linearly to a floor of
        ``0.03 / inner_steps`` over ``multi_step_loss_steps`` meta-updates, the last step taking
        the rest; from then on only the last step counts, as in the official code.
        """
        n = self.inner_steps
        if self.step >= self.multi_step_loss_steps:
            return [0.0] * (n - 1) + [1.0]
        floor = 0.03 / n
        early = max(1.0 / n - self.step / self.multi_step_loss_steps * (1.0 / n - floor), floor)
        return [early] * (n - 1) + [1.0 - early * (n - 1)]


@dataclass
class InnerLoopConfig(AlgorithmConfig):
    """The keys of every gradient-based method: ``inner_steps`` steps of ``inner_lr`` (``test_inner_steps`` when
    testing; ``None``: as in training). ``learner`` is the class the config builds."""

    problems = ("classification", "regression")
    classifier = True
    learner: ClassVar[type[MAML]] = MAML
    inner_lr: float = option(0.4, minimum=0)
    inner_steps: int = option(1, minimum=1)
    test_inner_steps: int | None = option(None, minimum=0)

    def build(self, model: nn.Module, run: Run) -> nn.Module:
        loss = "mse" if run.dataset.problem == "regression" else "cross_entropy"
        return self.learner(model, loss=loss, **self.options())


@dataclass
class MAMLPlusPlusKeys(InnerLoopConfig):
    """The MAML++ options (Antoniou et al. 2019), the second-order switches and whether batch norm adapts, shared by
    MAML, Meta-SGD and ANIL."""

    first_order: bool = False
    multi_step_loss: bool = False
    multi_step_loss_steps: int = option(0, minimum=0)
    first_order_until: int = option(0, minimum=0)
    checkpoint_inner: bool = False
    adapt_batch_norm: bool = True


@register("algorithm", "maml")
@dataclass
class MAMLConfig(MAMLPlusPlusKeys):
    """MAML; ``inner_steps=0`` trains on every task without adaptation (the paper's pretrained baseline)."""

    inner_steps: int = option(1, minimum=0)
    per_step_lr: bool = False
    per_step_bn: bool = False
