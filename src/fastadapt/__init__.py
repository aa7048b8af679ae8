"""fastadapt: meta-learning for PyTorch.

Tasks (``FewShotTasks``, ``SinusoidTasks``), algorithms (``MAML``, ``MetaSGD``, ``ANIL``,
``Reptile``, ``ProtoNet``, ``MatchingNet``, ``RelationNet``, ``Siamese``, ``FineTune``), the meta-training loop (``meta_train``) and the meta-test protocol
(``meta_test``); ``fastadapt.datasets`` and ``fastadapt.nn`` hold the data and the backbones.
"""

__version__ = "0.1.0"

from fastadapt import datasets, nn  # noqa: E402
from fastadapt.algorithms import (  # noqa: E402
    ANIL, MAML, FineTune, MatchingNet, MetaLearner, MetaSGD, ProtoNet, RelationNet, Reptile, Siamese,
)
from fastadapt.config import build_config  # noqa: E402
from fastadapt.evaluate import EvalResult, meta_test  # noqa: E402
from fastadapt.experiment import evaluate_run, load_learner, run_experiment  # noqa: E402
from fastadapt.regression import SinusoidTasks  # noqa: E402
from fastadapt.tasks import FewShotTasks, Task, TaskBatch, TaskDistribution  # noqa: E402
from fastadapt.train import TrainResult, meta_train  # noqa: E402

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
    "meta_train",
    "TrainResult",
    "meta_test",
    "EvalResult",
    "build_config",
    "run_experiment",
    "evaluate_run",
    "load_learner",
]
