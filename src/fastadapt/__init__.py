"""fastadapt: meta-learning for PyTorch.

Tasks (``FewShotTasks``, ``SinusoidTasks``), algorithms (``MAML``, ``MetaSGD``, ``ANIL``,
``Reptile``, ``ProtoNet``, ``MatchingNet``, ``RelationNet``, ``Siamese``, ``FineTune``; ``Ensemble`` tests several
trained ones as one), the
meta-training loop (``meta_train``) and the meta-test protocol (``meta_test``);
``fastadapt.datasets`` and ``fastadapt.nn`` hold the data and the backbones.
"""

from fastadapt import datasets, nn
from fastadapt.algorithms import (
    ANIL,
    MAML,
    Ensemble,
    FineTune,
    MatchingNet,
    MetaLearner,
    MetaSGD,
    ProtoNet,
    RelationNet,
    Reptile,
    Siamese,
)
from fastadapt.config import build_config
from fastadapt.evaluate import EvalResult, meta_test, population_moments
from fastadapt.experiment import evaluate_run, load_learner, run_experiment
from fastadapt.regression import SinusoidTasks
from fastadapt.tasks import FewShotTasks, Task, TaskBatch, TaskDistribution
from fastadapt.train import TrainConfig, TrainResult, meta_train
from fastadapt.version import __version__

__all__ = [
    "__version__",
    "datasets",
    "nn",
    "Task",
    "TaskBatch",
    "TaskDistribution",
    "FewShotTasks",
    "SinusoidTasks",
    "MetaLearner",
    "MAML",
    "MetaSGD",
    "ANIL",
    "Reptile",
    "ProtoNet",
    "MatchingNet",
    "RelationNet",
    "Siamese",
    "FineTune",
    "Ensemble",
    "meta_train",
    "TrainResult",
    "TrainConfig",
    "meta_test",
    "population_moments",
    "EvalResult",
    "build_config",
    "run_experiment",
    "evaluate_run",
    "load_learner",
]
