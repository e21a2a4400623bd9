"""Text classification: sentences or sentence pairs into labels, or a regression score."""
from tasks.text_classification.task import TextClassification, TextClassificationConfig

__all__ = ["TextClassification", "TextClassificationConfig"]
