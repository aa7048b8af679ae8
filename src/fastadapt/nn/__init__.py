"""Backbones and parameter-dict helpers (``fastadapt.nn``)."""

from fastadapt.nn.backbones import MLP, Conv4, ResNet12, SpatialMean
from fastadapt.nn.batchnorm import BatchNorm, batch_norm, elementary_batch_norm
from fastadapt.nn.params import Params, detach_params, parameter_dict, sgd_step

__all__ = [
    "MLP",
    "Conv4",
    "ResNet12",
    "SpatialMean",
    "BatchNorm",
    "batch_norm",
    "elementary_batch_norm",
    "Params",
    "parameter_dict",
    "detach_params",
    "sgd_step",
]
