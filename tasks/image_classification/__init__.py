"""Image classification: images into one class, or several labels each, with timm or transformers backbones."""
from tasks.image_classification.task import ImageClassification, ImageClassificationConfig

__all__ = ["ImageClassification", "ImageClassificationConfig"]
