"""MAML for reinforcement learning (Finn et al. 2017, section 5.3): a policy initialisation that
one or a few policy-gradient steps adapt to a new task.

Inner loop: vanilla policy gradient (REINFORCE with a per-task linear baseline and GAE) on
trajectories of the current policy, through the same functional ``inner_loop`` as supervised MAML,
so the adapted parameters stay differentiable (second order; ``first_order=True`` detaches the
inner gradients). Outer update on trajectories of the adapted policies: TRPO as in the paper
(conjugate gradient on the KL's Hessian through the adaptation, then a backtracking line search
on the surrogate under the KL bound), or PPO's clipped surrogate for a few Adam epochs.

The outer algorithms compute a whole parameter step themselves; ``meta_backward`` stores minus
that step in ``.grad``, so the shared trainer applies it with ``SGD(lr=1)`` (config
``train.optimizer=sgd``, ``train.lr=1``) and checkpoints, resumes and logs RL runs like any other.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from fastadapt.algorithms.base import MetaLearner
from fastadapt.algorithms.inner_loop import inner_loop
from fastadapt.errors import ConfigError
from fastadapt.nn.params import Params, detach_params, flatten, unflatten
from fastadapt.rl.episodes import Episodes, advantages, collect
from fastadapt.rl.families import TaskFamily
from fastadapt.rl.policy import GaussianPolicy, kl_divergence, log_prob
from fastadapt.tasks import TaskDistribution

OUTER = ("trpo", "ppo")
Objective = Callable[..., tuple[Tensor, list[Tensor], Params]]


@dataclass
class RLTaskBatch:
    """A meta-batch of RL tasks: their parameters ``[n, task_dim]`` (goals, velocities, directions)."""

    tasks: Tensor

    def __len__(self) -> int:
        return self.tasks.shape[0]

    def __getitem__(self, index: int | slice) -> RLTaskBatch:
        return RLTaskBatch(self.tasks[index : index + 1] if isinstance(index, int) else self.tasks[index])

    def to(self, device: torch.device | str) -> RLTaskBatch:
        return self  # tasks are simulator settings; they stay on the CPU

    @staticmethod
    def cat(batches: list[RLTaskBatch]) -> RLTaskBatch:
        return RLTaskBatch(torch.cat([b.tasks for b in batches]))


class RLTasks(TaskDistribution):
    """Tasks of an RL family, drawn from a seeded stream (``sample``) or replayed (``episodes``)."""

    def __init__(self, family: TaskFamily, seed: int = 0) -> None:
        self.family, self.seed = family, seed
        self.generator = torch.Generator().manual_seed(seed)

    def _draw(self, n: int, generator: torch.Generator) -> RLTaskBatch:  # type: ignore[override]
        return RLTaskBatch(self.family.sample_tasks(n, generator))

    def __repr__(self) -> str:
        return f"RLTasks({self.family.name}, seed={self.seed})"


def pack(episodes: Episodes, adv: Tensor) -> Tensor:
    """Actions, advantages and mask side by side ``[T, B, act_dim + 2]``: the "labels" of the inner loss."""
    return torch.cat([episodes.actions, adv[..., None], episodes.mask[..., None]], dim=-1)


def reinforce_loss(outputs: Tensor, packed: Tensor) -> Tensor:
    """Minus the mean over valid steps of log pi(a|s) * advantage (the inner loop's loss)."""
    actions, adv, mask = packed[..., :-2], packed[..., -2], packed[..., -1]
    return -(log_prob(outputs, actions) * adv * mask).sum() / mask.sum().clamp_min(1)


def _seed_of(tasks: Tensor) -> int:
    """A seed fixed by the tasks themselves, so every method is evaluated on the same rollouts' noise."""
    return int.from_bytes(hashlib.sha256(tasks.to(torch.float64).numpy().tobytes()).digest()[:4], "little")


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


class MAMLRL(MetaLearner):
    """MAML-RL: ``trajectories`` episodes per task and adaptation step, ``inner_steps`` VPG steps of
    ``inner_lr``, then the outer update (``outer="trpo"`` with ``max_kl``, or ``"ppo"``).

    ``inner_steps=0`` trains a multi-task policy without adaptation (the MAML paper's "pretrained"
    comparison), which is then fine-tuned at test time by the same ``test_inner_steps`` VPG steps.
    """

    name = "mamlrl"

    def __init__(
        self,
        policy: GaussianPolicy,
        family: TaskFamily,
        inner_lr: float = 0.1,
        inner_steps: int = 1,
        test_inner_steps: int | None = None,
        first_order: bool = False,
        trajectories: int = 20,
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
    ) -> None:
        super().__init__(loss=reinforce_loss, vmap=False)
        if outer not in OUTER:
            raise ConfigError(f"outer must be one of {OUTER}, got {outer!r}")
        if inner_steps < 0 or trajectories < 1:
            raise ConfigError(f"inner_steps must be >= 0 and trajectories >= 1, got {inner_steps} and {trajectories}")
        self.policy, self.family = policy, family
        self.inner_lr, self.inner_steps, self.first_order = inner_lr, inner_steps, first_order
        self.test_inner_steps = test_inner_steps if test_inner_steps is not None else max(inner_steps, 1)
        self.trajectories, self.horizon = trajectories, horizon or family.horizon
        self.gamma, self.gae_lambda = gamma, gae_lambda
        self.outer, self.max_kl, self.cg_iters, self.cg_damping = outer, max_kl, cg_iters, cg_damping
        self.ls_steps, self.ls_backtrack = ls_steps, ls_backtrack
        self.ppo_clip, self.ppo_epochs, self.ppo_lr = ppo_clip, ppo_epochs, ppo_lr

    # -- rollouts and adaptation -------------------------------------------------------------------

    def params(self) -> Params:
        return dict(self.policy.named_parameters())

    def forward_with(self, params: Params, obs: Tensor) -> Tensor:
        dtype = next(iter(params.values())).dtype
        return torch.func.functional_call(self.policy, params, (obs.to(dtype),))

    def rollouts(self, tasks: Tensor, params: list[Params], generator: torch.Generator | None = None) -> Episodes:
        """``trajectories`` episodes of each task, task ``i`` acting with ``params[i]``."""
        n, per = tasks.shape[0], self.trajectories
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

    def _inner_step(self, params: Params, episodes: Episodes, adv: Tensor, first_order: bool) -> Params:
        dtype = next(iter(params.values())).dtype
        rates = {name: self.inner_lr for name in params}
        return inner_loop(self.forward_with, params, episodes.obs.to(dtype), pack(episodes, adv).to(dtype), reinforce_loss, 1,
                          lambda step: rates, first_order)[-1]

    def adapt_tasks(
        self, tasks: Tensor, steps: int, generator: torch.Generator | None = None
    ) -> tuple[list[Params], list[tuple[Episodes, Tensor]]]:
        """Adapt to each task by ``steps`` VPG steps, each on fresh trajectories of the policy adapted
        so far; the adapted parameters (detached) and, per step, the trajectories and advantages."""
        base = detach_params(self.params())
        current = [base] * tasks.shape[0]
        data = []
        for _ in range(steps):
            episodes = self.rollouts(tasks, current, generator)
            adv = advantages(episodes, self.gamma, self.gae_lambda)
            data.append((episodes, adv))
            current = [detach_params(self._inner_step(p, *self._task_data(episodes, adv, i), first_order=True)) for i, p in enumerate(current)]
        return current, data

    def _task_data(self, episodes: Episodes, adv: Tensor, i: int) -> tuple[Episodes, Tensor]:
        return episodes.task(i), adv[:, episodes.columns(i)]

    def adapted(self, params: Params, data: list[tuple[Episodes, Tensor]], first_order: bool | None = None) -> list[Params]:
        """Each task's adapted parameters as a differentiable function of ``params``, re-running the
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
        self, params: Params, data: list[tuple[Episodes, Tensor]], valid: Episodes, valid_adv: Tensor, old_log_probs: Tensor,
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
        for i, (new, old) in enumerate(zip(outputs, old_outputs)):
            mask = valid.task(i).mask.to(new.dtype)
            kls.append((kl_divergence(old, new) * mask).sum() / mask.sum())
        return torch.stack(kls).mean()

    def meta_backward(self, batch: RLTaskBatch) -> tuple[float, dict[str, float]]:  # type: ignore[override]
        """Sample, adapt, sample again, and store minus the outer update in ``.grad``."""
        tasks = batch.tasks
        adapted, data = self.adapt_tasks(tasks, self.inner_steps)  # with 0 steps: the current policy for every task
        valid = self.rollouts(tasks, adapted)
        valid_adv = advantages(valid, self.gamma, self.gae_lambda).to(next(self.policy.parameters()).dtype)
        with torch.no_grad():
            old_outputs = [self.forward_with(p, valid.task(i).obs) for i, p in enumerate(adapted)]
            old_log_probs = torch.cat([log_prob(o, valid.task(i).actions.to(o.dtype)) for i, o in enumerate(old_outputs)], dim=1)
        start = flatten(self.policy.parameters()).detach()

        def objective(vector: Tensor | None, clip: float | None = None) -> tuple[Tensor, list[Tensor], Params]:
            params = self.params()
            if vector is not None:
                params = dict(zip(params, unflatten(vector, params.values())))
            loss, outputs = self.surrogate(params, data, valid, valid_adv, old_log_probs, clip)
            return loss, outputs, params

        if self.outer == "trpo":
            step, loss_value, kl_value = self._trpo(objective, old_outputs, valid, start)
        else:
            step, loss_value, kl_value = self._ppo(objective, old_outputs, valid, start)
        self.policy.zero_grad(set_to_none=True)
        for p, update in zip(self.policy.parameters(), unflatten(-step, self.policy.parameters())):
            p.grad = update.to(p.dtype)
        before = data[0][0].returns().mean().item() if data else valid.returns().mean().item()
        metrics = {"return_before": before, "return_after": valid.returns().mean().item(), "kl": kl_value, "loss": loss_value}
        return loss_value, metrics

    def _trpo(self, objective: Objective, old_outputs: list[Tensor], valid: Episodes, start: Tensor) -> tuple[Tensor, float, float]:
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
        shs = 0.5 * direction @ fisher(direction)
        full = direction * torch.sqrt(2 * self.max_kl / shs.clamp_min(1e-12)) if shs > 0 else torch.zeros_like(direction)
        base_loss = loss.item()
        with torch.no_grad():
            for k in range(self.ls_steps):
                candidate = start + self.ls_backtrack**k * full
                new_loss, new_outputs, _ = objective(candidate)
                new_kl = self._kl(new_outputs, old_outputs, valid).item()
                if new_loss.item() < base_loss and new_kl < self.max_kl:
                    return self.ls_backtrack**k * full, new_loss.item(), new_kl
        return torch.zeros_like(start), base_loss, 0.0

    def _ppo(self, objective: Objective, old_outputs: list[Tensor], valid: Episodes, start: Tensor) -> tuple[Tensor, float, float]:
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

    # -- evaluation --------------------------------------------------------------------------------

    def adaptation_returns(self, tasks: Tensor, steps: int) -> Tensor:
        """Average return ``[n, steps + 1]`` of each task's policy before and after each adaptation step.

        The rollouts' randomness is fixed by the tasks, so methods compared on the same tasks see
        the same noise.
        """
        generator = torch.Generator().manual_seed(_seed_of(tasks))
        adapted, data = self.adapt_tasks(tasks, steps, generator)
        final = self.rollouts(tasks, adapted, generator)
        return torch.stack([episodes.returns() for episodes, _ in data] + [final.returns()], dim=1)

    def evaluate(  # type: ignore[override]
        self, batch: RLTaskBatch, steps: int | None = None, statistics: str = "query"
    ) -> dict[str, Tensor]:
        """Per-task average return after ``steps`` (default ``test_inner_steps``) adaptation steps."""
        if statistics != "query":
            raise ConfigError("support statistics are a batch-norm protocol of few-shot classification, not of RL")
        k = self.test_inner_steps if steps is None else steps
        returns = self.adaptation_returns(batch.tasks, k)[:, -1]
        return {"return": returns, "loss": -returns}
