"""Transformers that live inside the pickled pipelines (serving imports them by this path)."""

from train_pipeline.features.clinical import ClinicalFeatures
from train_pipeline.features.derived import news2_subscores, news2_total
from train_pipeline.features.encoding import TargetEncoder
from train_pipeline.features.impute import MedianImputer

__all__ = ["ClinicalFeatures", "MedianImputer", "TargetEncoder", "news2_subscores", "news2_total"]
