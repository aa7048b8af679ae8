"""Mini-batches drawn from the task itself: Reptile's runs across passes and Chen et al.'s batches per pass."""

from __future__ import annotations

import torch

from fastadapt.algorithms.minibatches import epoch_batches, minibatch_order, task_key


def test_minibatches_are_passes_over_fresh_shuffles_of_the_support_set() -> None:
    key = task_key(torch.randn(12, 3))
    order = minibatch_order(key, size=12, batch=5, steps=7)  # 35 examples: three passes, batches spanning them
    assert order.shape == (7, 5)
    passes = order.flatten()[:24].view(2, 12)
    assert all(sorted(p.tolist()) == list(range(12)) for p in passes)
    assert not torch.equal(passes[0], passes[1])  # each pass is shuffled afresh
    assert len(set(order.flatten()[24:].tolist())) == 11  # the third pass, cut where the steps end
    assert torch.equal(order, minibatch_order(key.clone(), size=12, batch=5, steps=7))  # the same task, the same order
    assert not torch.equal(order, minibatch_order(task_key(torch.randn(12, 3)), size=12, batch=5, steps=7))
    assert not torch.equal(passes[0], torch.arange(12))


def test_the_keys_and_orders_of_a_loop_and_of_vmap_agree() -> None:
    support = torch.randn(4, 12, 1, 16, 16, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    keys = torch.stack([task_key(x) for x in support])
    assert torch.equal(torch.func.vmap(task_key)(support), keys) and len(set(keys.tolist())) == 4
    orders = torch.func.vmap(lambda x: minibatch_order(task_key(x), 12, 5, 6))(support)
    assert torch.equal(orders, torch.stack([minibatch_order(k, 12, 5, 6) for k in keys]))


def test_epoch_batches_cut_each_fresh_pass_with_a_short_last_batch() -> None:
    key = task_key(torch.randn(10, 3))
    batches = epoch_batches(key, size=10, batch=4, steps=9)  # 3 batches a pass (4, 4, 2): three passes
    assert [len(b) for b in batches] == [4, 4, 2] * 3
    passes = [torch.cat(batches[i:i + 3]) for i in (0, 3, 6)]
    assert all(sorted(p.tolist()) == list(range(10)) for p in passes)
    assert not torch.equal(passes[0], passes[1])
    assert [b.tolist() for b in epoch_batches(key, 10, 4, 4)] == [b.tolist() for b in batches[:4]]  # cut at steps
    whole = epoch_batches(key, size=10, batch=10, steps=2)
    assert [len(b) for b in whole] == [10, 10]
    assert torch.equal(torch.cat(whole), torch.cat([p for p in minibatch_order(key, 10, 10, 2)]))  # the same shuffles

