"""Boxes and labels drawn on an image (PIL), for the evaluation report and the demo."""
from __future__ import annotations

from PIL import Image, ImageDraw, ImageFont

PALETTE = [(230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180), (70, 240, 240),
           (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128)]


def draw_detections(image: Image.Image, prediction: dict, labels: list[str], threshold: float,
                    reference: dict | None = None) -> Image.Image:
    """A copy of `image` with predictions (boxes x1, y1, x2, y2 in pixels) at or above `threshold` drawn in a
    colour per class with "label score", and the reference boxes, if given, as thin white outlines."""
    canvas = image.convert("RGB").copy()
    pen = ImageDraw.Draw(canvas)
    width = max(2, round(max(canvas.size) / 200))
    font = ImageFont.load_default(size=max(12, round(max(canvas.size) / 35)))
    for box in (reference or {}).get("boxes", []):
        pen.rectangle([float(v) for v in box], outline=(255, 255, 255), width=max(1, width // 2))
    for box, score, label in zip(prediction["boxes"], prediction["scores"], prediction["labels"]):
        if score < threshold:
            continue
        index = labels.index(label) if isinstance(label, str) and label in labels else label
        name = label if isinstance(label, str) else labels[int(label)]  # pipeline output carries names
        colour = PALETTE[int(index) % len(PALETTE)] if not isinstance(index, str) else PALETTE[0]
        x0, y0, x1, y1 = (float(v) for v in box)
        pen.rectangle([x0, y0, x1, y1], outline=colour, width=width)
        text = f"{name} {float(score):.2f}"
        left, top, right, bottom = pen.textbbox((x0, y0), text, font=font)
        top_y = max(0.0, y0 - (bottom - top) - 2)
        pen.rectangle([x0, top_y, x0 + (right - left) + 4, top_y + (bottom - top) + 2], fill=colour)
        pen.text((x0 + 2, top_y), text, fill=(255, 255, 255), font=font)
    return canvas
