"""The algorithms, one file each; every one is a ``MetaLearner`` with ``meta_loss`` and ``adapt``."""

from fastadapt.algorithms.anil import ANIL
from fastadapt.algorithms.base import MetaLearner, Predictor, resolve_loss
from fastadapt.algorithms.maml import MAML
from fastadapt.algorithms.metasgd import MetaSGD
from fastadapt.algorithms.protonet import ProtoNet
from fastadapt.algorithms.reptile import Reptile

ALGORITHMS: dict[str, type[MetaLearner]] = {cls.name: cls for cls in (MAML, MetaSGD, ANIL, Reptile, ProtoNet)}

__all__ = ["MetaLearner", "Predictor", "resolve_loss", "MAML", "MetaSGD", "ANIL", "Reptile", "ProtoNet", "ALGORITHMS"]
