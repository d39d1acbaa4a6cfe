"""Semantic priors: the shared format, the SAM source, the thermal fallback, the async worker."""

from .format import SemanticPrior, label_boundaries, overlay

__all__ = ["SemanticPrior", "label_boundaries", "overlay"]
