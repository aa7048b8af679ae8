"""Reproduce papers' experiments in one command and compare with their numbers (``fastadapt reproduce``)."""

from fastadapt.reproduce.registry import Reproduction, get, reproductions
from fastadapt.reproduce.report import format_table
from fastadapt.reproduce.run import reproduce

__all__ = ["Reproduction", "format_table", "get", "reproduce", "reproductions"]
