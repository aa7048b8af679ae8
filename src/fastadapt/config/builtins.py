"""Importing this registers fastadapt's own components: each module registers the configs it defines."""

import fastadapt.algorithms
import fastadapt.datasets
import fastadapt.nn.backbones
import fastadapt.regression
import fastadapt.rl.configs
import fastadapt.targets  # noqa: F401
