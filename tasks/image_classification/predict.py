"""Predict with a fine-tuned image classifier: `accelerate launch tasks/image_classification/predict.py
--model_name_or_path <run>/best --input images/ --output predictions.csv`."""
import tasks  # noqa: F401  (registers every task and the project's pipeline tags)
from shared.toolkit.cli import predict_main

if __name__ == "__main__":
    predict_main("image_classification")
