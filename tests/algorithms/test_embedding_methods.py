"""Every embedding method gives the same loss, meta-gradient and evaluation under vmap and the loop."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from helpers import random_dataset

import fastadapt as fa
from fastadapt.errors import ConfigError


def _encoder(**kwargs) -> fa.nn.Conv4:
    return fa.nn.Conv4(1, None, hidden=8, image_size=16, **kwargs)


MAKERS: dict[str, Callable[[bool], fa.MetaLearner]] = {
    "protonet-cosine": lambda v: fa.ProtoNet(_encoder(), vmap=v, distance="cosine", learn_temperature=True),
    "matchingnet": lambda v: fa.MatchingNet(_encoder(), vmap=v),
    "relationnet": lambda v: fa.RelationNet(_encoder(downsample_blocks=2, feature_maps=True), vmap=v),
    "siamese": lambda v: fa.Siamese(_encoder(), vmap=v),
    "finetune": lambda v: fa.FineTune(_encoder(), classes=12, vmap=v, finetune_steps=5),
    "baselinepp-body": lambda v: fa.FineTune(
        _encoder(), classes=12, vmap=v, head="cosine", finetune_body=True, finetune_steps=2
    ),
}


@pytest.mark.parametrize("name", sorted(MAKERS))
def test_vmap_and_loop_agree(name: str) -> None:
    batch = fa.FewShotTasks(random_dataset(), ways=3, shots=2, queries=2, seed=3).sample(3)
    results = []
    for vmap in (False, True):
        torch.manual_seed(1)
        learner = MAKERS[name](vmap)
        loss, _ = learner.meta_loss(batch)
        loss.backward()
        grads = [p.grad.clone() for p in learner.parameters()]
        results.append((loss.detach(), grads, learner.evaluate(batch)["loss"]))
    (loop_loss, loop_grads, loop_eval), (vmap_loss, vmap_grads, vmap_eval) = results
    torch.testing.assert_close(vmap_loss, loop_loss, rtol=1e-5, atol=1e-6)
    for a, b in zip(vmap_grads, loop_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(vmap_eval, loop_eval, rtol=1e-4, atol=1e-5)


def test_full_context_embeddings_run_the_loop() -> None:
    learner = fa.MatchingNet(_encoder(pool="stride"), fce=True)
    assert learner.uses_vmap(fa.FewShotTasks(random_dataset(), 3, 1, 1).sample(1)) is False
    with pytest.raises(ConfigError, match="per-task loop"):
        fa.MatchingNet(_encoder(pool="stride"), fce=True, vmap=True)
