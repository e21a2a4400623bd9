"""Predict with an extractive question answering model: `accelerate launch tasks/question_answering/predict.py
--model_name_or_path <run>/best --input questions.jsonl --output predictions.json`."""
import tasks  # noqa: F401  (registers every task and the project's pipeline tags)
from shared.toolkit.cli import predict_main

if __name__ == "__main__":
    predict_main("question_answering")
