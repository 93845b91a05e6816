"""Unsupervised curation of System 2 outputs (paper §3.2): all traces of one input → at most one target."""

from s2d.filters.base import Filter, FilterResult
from s2d.filters.input_perturbation import InputPerturbation
from s2d.filters.none import NoFilter
from s2d.filters.self_consistency import SelfConsistency
from s2d.filters.usc import UniversalSelfConsistency

__all__ = ["Filter", "FilterResult", "InputPerturbation", "NoFilter", "SelfConsistency", "UniversalSelfConsistency"]
