"""Backbones, the functional application of any module, and parameter-dict helpers (``fastadapt.nn``)."""

from fastadapt.nn.backbones import MLP, Conv4, ResNet12, SpatialMean
from fastadapt.nn.batchnorm import BatchNorm
from fastadapt.nn.functional import call, exact_normalization, running_stat_overrides, with_support_statistics
from fastadapt.nn.params import Params, detach_params, parameter_dict, sgd_step
from fastadapt.nn.population import Moments, StatisticsRecorder, fixed_statistics

__all__ = [
    "MLP",
    "Conv4",
    "ResNet12",
    "SpatialMean",
    "BatchNorm",
    "call",
    "exact_normalization",
    "running_stat_overrides",
    "with_support_statistics",
    "Moments",
    "StatisticsRecorder",
    "fixed_statistics",
    "Params",
    "parameter_dict",
    "detach_params",
    "sgd_step",
]
