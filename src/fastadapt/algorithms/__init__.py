"""The algorithms, one file each; every one is a ``MetaLearner`` with ``meta_loss`` and ``adapt``."""

from fastadapt.algorithms.anil import ANIL
from fastadapt.algorithms.base import MetaLearner, Predictor, resolve_loss
from fastadapt.algorithms.ensemble import Ensemble
from fastadapt.algorithms.finetune import FineTune
from fastadapt.algorithms.maml import MAML
from fastadapt.algorithms.matchingnet import MatchingNet
from fastadapt.algorithms.metasgd import MetaSGD
from fastadapt.algorithms.protonet import ProtoNet
from fastadapt.algorithms.relationnet import RelationNet
from fastadapt.algorithms.reptile import Reptile
from fastadapt.algorithms.siamese import Siamese

ALGORITHMS: dict[str, type[MetaLearner]] = {
    cls.name: cls for cls in (MAML, MetaSGD, ANIL, Reptile, ProtoNet, MatchingNet, RelationNet, Siamese, FineTune)
}
# Methods that learn an embedding: their backbone has no output layer and any number of ways works.
EMBEDDING_ALGORITHMS = ("protonet", "matchingnet", "relationnet", "siamese", "finetune")

__all__ = [
    "MetaLearner", "Predictor", "resolve_loss", "MAML", "MetaSGD", "ANIL", "Reptile", "ProtoNet", "MatchingNet",
    "RelationNet", "Siamese", "FineTune", "Ensemble", "ALGORITHMS", "EMBEDDING_ALGORITHMS",
]
