"""MAML for reinforcement learning (Finn et al. 2017, section 5.3): a policy initialisation that
one or a few policy-gradient steps adapt to a new task.

Inner loop: vanilla policy gradient (REINFORCE with a per-task linear baseline and GAE) on
trajectories of the current policy, through the same functional ``inner_loop`` as supervised MAML,
so the adapted parameters stay differentiable (second order; ``first_order=True`` detaches the
inner gradients). Outer update on trajectories of the adapted policies: TRPO as in the paper
(conjugate gradient on the KL's Hessian through the adaptation, then a backtracking line search
on the surrogate under the KL bound), or PPO's clipped surrogate for a few Adam epochs.

The outer algorithms compute a whole parameter step and ``outer_step`` applies it to the policy
itself (``RLMetaLearner``): the trainer runs RL without an optimizer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, get_args

import torch
from torch import Tensor

from fastadapt.algorithms.inner_loop import inner_loop
from fastadapt.errors import ConfigError
from fastadapt.nn.params import Params, detach_params, flatten, unflatten
from fastadapt.rl.episodes import Episodes, advantages, baseline_fit, collect, unfitted_baseline
from fastadapt.rl.families import TaskFamily
from fastadapt.rl.learner import RLMetaLearner, Trajectories
from fastadapt.rl.policy import GaussianPolicy, kl_divergence, log_prob
from fastadapt.rl.tasks import RLTaskBatch

__all__ = ["MAMLRL", "OUTER", "pack", "reinforce_loss"]

Outer = Literal["trpo", "ppo"]
TestBaseline = Literal["fitted", "previous"]
OUTER: tuple[str, ...] = get_args(Outer)
TEST_BASELINES: tuple[str, ...] = get_args(TestBaseline)
Objective = Callable[..., tuple[Tensor, list[Tensor], Params]]


def pack(episodes: Episodes, adv: Tensor) -> Tensor:
    """Actions, advantages and mask side by side ``[T, B, act_dim + 2]``: the "labels" of the inner loss."""
    return torch.cat([episodes.actions, adv[..., None], episodes.mask[..., None]], dim=-1)


def reinforce_loss(outputs: Tensor, packed: Tensor) -> Tensor:
    """Minus the mean over valid steps of log pi(a|s) * advantage (the inner loop's loss)."""
    actions, adv, mask = packed[..., :-2], packed[..., -2], packed[..., -1]
    return -(log_prob(outputs, actions) * adv * mask).sum() / mask.sum().clamp_min(1)


def _conjugate_gradient(matvec: Callable[[Tensor], Tensor], b: Tensor, iterations: int) -> Tensor:
    x = torch.zeros_like(b)
    r, p = b.clone(), b.clone()
    rr = r @ r
    for _ in range(iterations):
        ap = matvec(p)
        alpha = rr / (p @ ap)
        x, r = x + alpha * p, r - alpha * ap
        new_rr = r @ r
        if new_rr < 1e-10:
            break
        p, rr = r + (new_rr / rr) * p, new_rr
    return x


def step_to_kl_bound(direction: Tensor, curvature: Tensor, max_kl: float) -> Tensor:
    """``direction`` scaled so that the KL's quadratic model ``0.5 s^T F s`` equals ``max_kl`` (``curvature`` is
    ``0.5 d^T F d``): TRPO's first line-search candidate, rllab's ``initial_step_size``; zero where the
    curvature is not positive."""
    if not curvature > 0:
        return torch.zeros_like(direction)
    return direction * torch.sqrt(max_kl / curvature)


@dataclass
class _OuterData:
    """What an outer update learns from: the inner steps' trajectories, the adapted policies' own episodes
    (``valid``) with their advantages, and those policies' outputs and log-probabilities on them."""

    trajectories: Trajectories
    valid: Episodes
    valid_adv: Tensor
    old_outputs: list[Tensor]
    old_log_probs: Tensor


class MAMLRL(RLMetaLearner):
    """MAML-RL: ``trajectories`` episodes per task and adaptation step, ``inner_steps`` VPG steps of
    ``inner_lr``, then the outer update (``outer="trpo"`` with ``max_kl``, or ``"ppo"``).

    At test time the policy adapts by ``test_inner_steps`` steps, the first of ``inner_lr`` and the later ones of
    ``later_inner_lr`` (``None``: ``inner_lr`` too; the MAML paper tests with 0.1 then 0.05), each on
    ``test_trajectories`` episodes per task (``None``: ``trajectories``; the paper uses 40). ``inner_steps=0``
    trains a multi-task policy without adaptation (the MAML paper's "pretrained" comparison), which is then
    fine-tuned at test time by the same steps. ``test_baseline`` says which trajectories fit the linear baseline of a
    test-time step: its own (``"fitted"``, as in training), or the previous step's, none before the first
    (``"previous"``: rllab's sampler, which predicts before it fits, as in the MAML code's test script).
    ``transitions`` (``test_transitions`` when testing) counts the sample in transitions instead, as the MAML code's
    samplers do: episodes are collected until each task holds that many, so episodes that end early at the goal make
    more of them.
    """

    name = "mamlrl"

    def __init__(
        self,
        policy: GaussianPolicy,
        family: TaskFamily,
        inner_lr: float = 0.1,
        inner_steps: int = 1,
        test_inner_steps: int | None = None,
        later_inner_lr: float | None = None,
        first_order: bool = False,
        trajectories: int = 20,
        test_trajectories: int | None = None,
        transitions: int | None = None,
        test_transitions: int | None = None,
        horizon: int | None = None,
        gamma: float = 0.99,
        gae_lambda: float = 1.0,
        outer: str = "trpo",
        max_kl: float = 0.01,
        cg_iters: int = 10,
        cg_damping: float = 1e-5,
        ls_steps: int = 15,
        ls_backtrack: float = 0.8,
        ppo_clip: float = 0.2,
        ppo_epochs: int = 5,
        ppo_lr: float = 3e-4,
        test_baseline: str = "fitted",
    ) -> None:
        super().__init__()
        if outer not in OUTER:
            raise ConfigError(f"outer must be one of {OUTER}, got {outer!r}")
        if test_baseline not in TEST_BASELINES:
            raise ConfigError(f"test_baseline must be one of {TEST_BASELINES}, got {test_baseline!r}")
        if inner_steps < 0 or trajectories < 1:
            raise ConfigError(f"inner_steps must be >= 0 and trajectories >= 1, got {inner_steps} and {trajectories}")
        if any(budget is not None and budget < 1 for budget in (transitions, test_transitions)):
            raise ConfigError(f"transitions and test_transitions must be >= 1 or None, got {transitions} and "
                              f"{test_transitions}")
        self.policy, self.family = policy, family
        self.inner_lr, self.inner_steps, self.first_order = inner_lr, inner_steps, first_order
        self.test_inner_steps = test_inner_steps if test_inner_steps is not None else max(inner_steps, 1)
        self.later_inner_lr = later_inner_lr
        self.trajectories, self.horizon = trajectories, horizon or family.horizon
        self.test_trajectories = test_trajectories or trajectories
        self.transitions, self.test_transitions = transitions, test_transitions
        self.gamma, self.gae_lambda = gamma, gae_lambda
        self.outer, self.max_kl, self.cg_iters, self.cg_damping = outer, max_kl, cg_iters, cg_damping
        self.ls_steps, self.ls_backtrack = ls_steps, ls_backtrack
        self.ppo_clip, self.ppo_epochs, self.ppo_lr = ppo_clip, ppo_epochs, ppo_lr
        self.test_baseline = test_baseline

    # -- rollouts and adaptation -------------------------------------------------------------------

    def params(self) -> Params:
        return dict(self.policy.named_parameters())

    def forward_with(self, params: Params, obs: Tensor) -> Tensor:
        dtype = next(iter(params.values())).dtype
        return torch.func.functional_call(self.policy, params, (obs.to(dtype),))

    def collect(
        self, tasks: Tensor, params: list[Params], generator: torch.Generator | None = None, testing: bool = False
    ) -> Episodes:
        """``trajectories`` (``test_trajectories`` when ``testing``) episodes of each task, task ``i`` acting with
        ``params[i]``; with a budget of ``transitions`` (``test_transitions``), more until each task holds that
        many, keeping each task's first episodes up to it (``Episodes.first_transitions``)."""
        budget = self.test_transitions if testing else self.transitions
        episodes = self._rollouts(tasks, params, self.test_trajectories if testing else self.trajectories, generator)
        while budget is not None:
            lengths = episodes.lengths().view(episodes.n_tasks, episodes.per_task)
            missing = budget - lengths.sum(dim=1)
            if not bool((missing > 0).any()):
                return episodes.first_transitions(budget)
            more = int((missing / lengths.mean(dim=1)).ceil().max())
            episodes = Episodes.join([episodes, self._rollouts(tasks, params, more, generator)])
        return episodes

    def _rollouts(
        self, tasks: Tensor, params: list[Params], per: int, generator: torch.Generator | None
    ) -> Episodes:
        """``per`` episodes of each task, task ``i`` acting with ``params[i]``."""
        n = tasks.shape[0]
        stacked = {k: torch.stack([p[k].detach() for p in params]) for k in params[0]}
        batched = torch.func.vmap(self.forward_with)

        def act(obs: Tensor) -> Tensor:
            return batched(stacked, obs.view(n, per, -1)).reshape(n * per, -1)

        seed = int(torch.randint(0, 2**31 - 1, (), generator=generator))
        envs = self.family.environments(tasks, per, self.horizon)
        try:
            return collect(envs, act, self.horizon, per, seed, generator)
        finally:
            envs.close()

    def _inner_step(
        self, params: Params, episodes: Episodes, adv: Tensor, first_order: bool, lr: float | None = None
    ) -> Params:
        """One VPG step of ``lr`` (default ``inner_lr``) on one task's episodes."""
        dtype = next(iter(params.values())).dtype
        rates: dict[str, Tensor | float] = {name: self.inner_lr if lr is None else lr for name in params}
        packed = pack(episodes, adv).to(dtype)
        return inner_loop(self.forward_with, params, episodes.obs.to(dtype), packed, reinforce_loss, 1,
                          lambda step: rates, first_order)[-1]

    def adapt(
        self, tasks: Tensor, steps: int | None = None, generator: torch.Generator | None = None
    ) -> tuple[list[Params], Trajectories]:
        """Test-time adaptation: ``steps`` (default ``test_inner_steps``) VPG steps, the first of ``inner_lr``, the
        later ones of ``later_inner_lr``."""
        steps = self.test_inner_steps if steps is None else steps
        later = self.inner_lr if self.later_inner_lr is None else self.later_inner_lr
        return self._adapt(tasks, [self.inner_lr if k == 0 else later for k in range(steps)], generator, testing=True)

    def _adapt(
        self, tasks: Tensor, rates: list[float], generator: torch.Generator | None = None, testing: bool = False
    ) -> tuple[list[Params], Trajectories]:
        """One VPG step per entry of ``rates`` (its step size), each on fresh trajectories of the policy adapted so
        far; the adapted parameters (detached) and, per step, the trajectories and advantages."""
        current = [detach_params(self.params())] * tasks.shape[0]
        trajectories = []
        previous = testing and self.test_baseline == "previous"
        baselines: list[Tensor] | None = None
        for lr in rates:
            episodes = self.collect(tasks, current, generator, testing)
            if previous and baselines is None:
                baselines = [unfitted_baseline(episodes)] * tasks.shape[0]
            adv = advantages(episodes, self.gamma, self.gae_lambda, baselines=baselines)
            if previous:
                baselines = [baseline_fit(episodes.task(i), self.gamma) for i in range(tasks.shape[0])]
            trajectories.append((episodes, adv))
            current = [
                detach_params(self._inner_step(p, *self._task_data(episodes, adv, i), first_order=True, lr=lr))
                for i, p in enumerate(current)
            ]
        return current, trajectories

    def _task_data(self, episodes: Episodes, adv: Tensor, i: int) -> tuple[Episodes, Tensor]:
        return episodes.task(i), adv[:, episodes.columns(i)]

    def adapted(self, params: Params, data: Trajectories, first_order: bool | None = None) -> list[Params]:
        """Each task's adapted parameters as a differentiable function of ``params``, re-running the training's
        inner steps on the stored trajectories (the meta-gradient flows through every step)."""
        first_order = self.first_order if first_order is None else first_order
        out = []
        for i in range(data[0][0].n_tasks if data else 0):
            current = params
            for episodes, adv in data:
                current = self._inner_step(current, *self._task_data(episodes, adv, i), first_order=first_order)
            out.append(current)
        return out

    # -- the outer objective -----------------------------------------------------------------------

    def surrogate(
        self, params: Params, data: Trajectories, valid: Episodes, valid_adv: Tensor, old_log_probs: Tensor,
        clip: float | None = None,
    ) -> tuple[Tensor, list[Tensor]]:
        """The outer loss (minus the importance-weighted advantage of the adapted policies on their
        own trajectories, PPO-clipped with ``clip``) and the adapted policies' outputs."""
        adapted = self.adapted(params, data) if data else [params] * valid.n_tasks
        losses, outputs = [], []
        for i, p in enumerate(adapted):
            episodes, adv = self._task_data(valid, valid_adv, i)
            out = self.forward_with(p, episodes.obs)
            ratio = torch.exp(log_prob(out, episodes.actions.to(out.dtype)) - old_log_probs[:, valid.columns(i)])
            gain = ratio * adv
            if clip is not None:
                gain = torch.min(gain, ratio.clamp(1 - clip, 1 + clip) * adv)
            mask = episodes.mask.to(out.dtype)
            losses.append(-(gain * mask).sum() / mask.sum())
            outputs.append(out)
        return torch.stack(losses).mean(), outputs

    def _kl(self, outputs: list[Tensor], old_outputs: list[Tensor], valid: Episodes) -> Tensor:
        kls = []
        for i, (new, old) in enumerate(zip(outputs, old_outputs, strict=True)):
            mask = valid.task(i).mask.to(new.dtype)
            kls.append((kl_divergence(old, new) * mask).sum() / mask.sum())
        return torch.stack(kls).mean()

    def _outer_data(self, tasks: Tensor) -> _OuterData:
        """Sample, adapt by the training's inner steps, and sample the adapted policies again."""
        adapted, trajectories = self._adapt(tasks, [self.inner_lr] * self.inner_steps)  # 0 steps: the policy itself
        valid = self.collect(tasks, adapted)
        valid_adv = advantages(valid, self.gamma, self.gae_lambda).to(next(self.policy.parameters()).dtype)
        with torch.no_grad():
            old_outputs = [self.forward_with(p, valid.task(i).obs) for i, p in enumerate(adapted)]
            old_log_probs = torch.cat(
                [log_prob(o, valid.task(i).actions.to(o.dtype)) for i, o in enumerate(old_outputs)], dim=1
            )
        return _OuterData(trajectories, valid, valid_adv, old_outputs, old_log_probs)

    def outer_step(self, batch: RLTaskBatch) -> tuple[float, dict[str, float]]:
        """Sample, adapt, sample again, and set the parameters to ``start + step`` with the outer algorithm's
        step (TRPO's or PPO's); the surrogate loss and the returns before and after adaptation."""
        data = self._outer_data(batch.tasks)
        start = flatten(self.policy.parameters()).detach()

        def objective(vector: Tensor | None, clip: float | None = None) -> tuple[Tensor, list[Tensor], Params]:
            params = self.params()
            if vector is not None:
                params = dict(zip(params, unflatten(vector, params.values()), strict=True))
            loss, outputs = self.surrogate(
                params, data.trajectories, data.valid, data.valid_adv, data.old_log_probs, clip
            )
            return loss, outputs, params

        compute = self._trpo if self.outer == "trpo" else self._ppo
        step, loss_value, kl_value = compute(objective, data.old_outputs, data.valid, start)
        with torch.no_grad():
            parameters = list(self.policy.parameters())
            for p, value in zip(parameters, unflatten(start + step, parameters), strict=True):
                p.copy_(value)
        first = data.trajectories[0][0] if data.trajectories else data.valid
        metrics = {"return_before": first.returns().mean().item(), "return_after": data.valid.returns().mean().item(),
                   "kl": kl_value, "loss": loss_value}
        return loss_value, metrics

    def _trpo(
        self, objective: Objective, old_outputs: list[Tensor], valid: Episodes, start: Tensor
    ) -> tuple[Tensor, float, float]:
        """TRPO's step: the natural gradient direction by conjugate gradient on the KL's Hessian
        (through the adaptation), scaled to the KL bound, then backtracked until the surrogate
        improves within the bound (no step if it never does)."""
        loss, outputs, params = objective(None)
        grads = torch.autograd.grad(loss, list(params.values()), retain_graph=True)
        g = flatten(grads).detach()
        kl = self._kl(outputs, old_outputs, valid)
        kl_grads = torch.autograd.grad(kl, list(params.values()), create_graph=True)
        flat_kl_grad = flatten(kl_grads)

        def fisher(v: Tensor) -> Tensor:
            hv = torch.autograd.grad(flat_kl_grad @ v, list(params.values()), retain_graph=True)
            return flatten(hv).detach() + self.cg_damping * v

        direction = _conjugate_gradient(fisher, -g, self.cg_iters)
        full = step_to_kl_bound(direction, 0.5 * direction @ fisher(direction), self.max_kl)
        base_loss = loss.item()
        with torch.no_grad():
            for k in range(self.ls_steps):
                candidate = start + self.ls_backtrack**k * full
                new_loss, new_outputs, _ = objective(candidate)
                new_kl = self._kl(new_outputs, old_outputs, valid).item()
                if new_loss.item() < base_loss and new_kl < self.max_kl:
                    return self.ls_backtrack**k * full, new_loss.item(), new_kl
        return torch.zeros_like(start), base_loss, 0.0

    def _ppo(
        self, objective: Objective, old_outputs: list[Tensor], valid: Episodes, start: Tensor
    ) -> tuple[Tensor, float, float]:
        """PPO's step: ``ppo_epochs`` Adam steps on the clipped surrogate of this batch."""
        vector = start.clone().requires_grad_()
        optimizer = torch.optim.Adam([vector], lr=self.ppo_lr)
        for _ in range(self.ppo_epochs):
            loss, _, _ = objective(vector, self.ppo_clip)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            loss, outputs, _ = objective(vector.detach(), self.ppo_clip)
            kl = self._kl(outputs, old_outputs, valid).item()
        return (vector.detach() - start), loss.item(), kl
