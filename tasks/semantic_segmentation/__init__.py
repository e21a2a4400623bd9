"""Semantic segmentation: a class for every pixel, with transformers models or UperNet on a packaged backbone."""
from tasks.semantic_segmentation.task import SemanticSegmentation, SemanticSegmentationConfig

__all__ = ["SemanticSegmentation", "SemanticSegmentationConfig"]
