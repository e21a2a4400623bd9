"""Object detection: COCO JSON or hub data, a dense head on a packaged backbone, or transformers detectors."""
from tasks.object_detection.models import register_dense_detector
from tasks.object_detection.task import ObjectDetection  # noqa: F401  (registers "object_detection")

register_dense_detector()
