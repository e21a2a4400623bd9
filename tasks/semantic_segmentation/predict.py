"""Predict with a fine-tuned segmentation model: `accelerate launch tasks/semantic_segmentation/predict.py
--model_name_or_path <run>/best --input images/ --output masks/ [--overlay_dir overlays/]`."""
import tasks  # noqa: F401  (registers every task and the project's pipeline tags)
from shared.toolkit.cli import predict_main

if __name__ == "__main__":
    predict_main("semantic_segmentation")
