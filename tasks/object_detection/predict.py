"""Predict with a fine-tuned detector: `accelerate launch tasks/object_detection/predict.py
--model_name_or_path <run>/best --input images/ --output detections.json [--draw_dir drawn/]`."""
import tasks  # noqa: F401  (registers every task and the project's pipeline tags)
from shared.toolkit.cli import predict_main

if __name__ == "__main__":
    predict_main("object_detection")
