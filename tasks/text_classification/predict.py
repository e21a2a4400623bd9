"""Predict with a fine-tuned text classifier: `accelerate launch tasks/text_classification/predict.py
--model_name_or_path <run>/best --input texts.csv --output predictions.csv`."""
import tasks  # noqa: F401  (registers every task and the project's pipeline tags)
from shared.toolkit.cli import predict_main

if __name__ == "__main__":
    predict_main("text_classification")
