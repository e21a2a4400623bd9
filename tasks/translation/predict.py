"""Predict with a fine-tuned translation model: `accelerate launch tasks/translation/predict.py
--model_name_or_path <run>/best --input sources.txt --output translations.txt`."""
import tasks  # noqa: F401  (registers every task and the project's pipeline tags)
from shared.toolkit.cli import predict_main

if __name__ == "__main__":
    predict_main("translation")
