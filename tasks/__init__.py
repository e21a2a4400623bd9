"""The seven tasks. Importing this package registers each one (and the project's pipeline tags)."""
from tasks import text_classification  # noqa: F401  (registers "text_classification")
from tasks import question_answering  # noqa: F401  (registers "question_answering" and extractive-question-answering)
from tasks import image_classification  # noqa: F401  (registers "image_classification")
from tasks import translation  # noqa: F401  (registers "translation" and seq2seq-translation)
from tasks import object_detection  # noqa: F401  (registers "object_detection" and the dense detector Auto classes)
from tasks import semantic_segmentation  # noqa: F401  (registers "semantic_segmentation")
from tasks import token_classification  # noqa: F401  (registers "token_classification")
