"""A Transformer encoder (embeddings, attention, dropout, LayerNorm) on few-shot token-sequence tasks,
meta-trained with ProtoNet and with MAML.

Each class is a source of token sequences: a random Markov chain over 24 tokens in which every
token has a few likely successors. A task gives 5 sequences of each of 5 sources; the model must
tell which source a new sequence comes from. 900 sources of 20 sequences of 20 tokens, split
600/150/150 by source. The sequences are int64 token ids in a ``ClassDataset``; a torch
``Dataset`` of ``(token_ids, label)`` pairs works the same way.

    python examples/transformer_tokens.py     # under 10 minutes on 2 CPU cores
"""

from __future__ import annotations

import argparse

import torch
from models import TransformerClassifier

import fastadapt as fa

VOCAB, LENGTH, SOURCES, PER_SOURCE = 24, 20, 900, 20


def markov_sources(seed: int = 0) -> fa.datasets.ClassDataset:
    """``PER_SOURCE`` sequences from each of ``SOURCES`` random sparse Markov chains."""
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(SOURCES, VOCAB, VOCAB, generator=generator) * 3
    transitions = logits.softmax(dim=-1)
    tokens = torch.empty(SOURCES, PER_SOURCE, LENGTH, dtype=torch.int64)
    tokens[:, :, 0] = torch.randint(0, VOCAB, (SOURCES, PER_SOURCE), generator=generator)
    rows = torch.arange(SOURCES)[:, None]
    for t in range(1, LENGTH):
        probabilities = transitions[rows, tokens[:, :, t - 1]]
        tokens[:, :, t] = torch.multinomial(probabilities.reshape(-1, VOCAB), 1, generator=generator).view(SOURCES, -1)
    labels = torch.arange(SOURCES).repeat_interleave(PER_SOURCE)
    return fa.datasets.ClassDataset(tokens.reshape(-1, LENGTH), labels, [f"s{i}" for i in range(SOURCES)], "markov")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--minutes", type=float, default=2.5, help="training time limit per method")
    parser.add_argument("--meta-batch", type=int, default=16)
    parser.add_argument("--val-episodes", type=int, default=50, help="validation tasks")
    parser.add_argument("--episodes", type=int, default=600, help="test tasks")
    args = parser.parse_args(argv)
    torch.manual_seed(0)  # the models' initial weights: the same numbers on every run
    data = markov_sources()
    splits = {"train": range(600), "val": range(600, 750), "test": range(750, 900)}
    tasks = {name: fa.FewShotTasks(data.subset(list(rows)), ways=5, shots=5, queries=10, seed=i)
             for i, (name, rows) in enumerate(splits.items())}
    learners = {
        "ProtoNet": fa.ProtoNet(TransformerClassifier(VOCAB, LENGTH, num_classes=32)),
        "MAML": fa.MAML(TransformerClassifier(VOCAB, LENGTH, num_classes=5), inner_lr=0.1, inner_steps=1,
                        test_inner_steps=3),
    }
    for name, learner in learners.items():
        fa.meta_train(learner, tasks["train"], steps=args.steps, meta_batch=args.meta_batch, val_tasks=tasks["val"],
                      val_every=100, val_episodes=args.val_episodes, max_minutes=args.minutes, progress=False)
        result = fa.meta_test(learner, tasks["test"], episodes=args.episodes)
        print(f"Transformer {name} on token sequences, 5-way 5-shot:", result)


if __name__ == "__main__":
    main()
