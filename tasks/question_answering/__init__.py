"""Extractive question answering: answer spans found in a context, SQuAD v1.1/v2.0 style."""
from tasks.question_answering.pipeline import ExtractiveQuestionAnsweringPipeline
from tasks.question_answering.task import QuestionAnswering, QuestionAnsweringConfig

__all__ = ["ExtractiveQuestionAnsweringPipeline", "QuestionAnswering", "QuestionAnsweringConfig"]
