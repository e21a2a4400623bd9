"""Tag new text with a fine-tuned entity tagger: `accelerate launch tasks/token_classification/predict.py
--model_name_or_path <run>/best --input sentences.conll --output predictions.conll` (or .jsonl)."""
import tasks  # noqa: F401  (registers every task and the project's pipeline tags)
from shared.toolkit.cli import predict_main

if __name__ == "__main__":
    predict_main("token_classification")
