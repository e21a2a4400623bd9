"""Token classification: a tag per word (named entities: people, places, organisations, ...)."""
from tasks.token_classification.task import TokenClassification, TokenClassificationConfig

__all__ = ["TokenClassification", "TokenClassificationConfig"]
