"""Translation: sentence pairs into a seq2seq model (Marian from scratch, bert2bert, or any hub model)."""
from tasks.translation.pipeline import Seq2SeqTranslationPipeline
from tasks.translation.task import Translation, TranslationConfig

__all__ = ["Seq2SeqTranslationPipeline", "Translation", "TranslationConfig"]
