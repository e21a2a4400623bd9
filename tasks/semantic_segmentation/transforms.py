"""Joint image/mask transforms: the mask follows every geometric step with nearest-neighbour sampling."""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision import tv_tensors
from torchvision.transforms import v2

from shared.inputs.vision import ImageSpec, to_rgb

ORIENTATION_TAG = 0x0112
EXIF_TRANSPOSE = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
                  5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
                  8: Image.Transpose.ROTATE_90}  # as PIL.ImageOps.exif_transpose
Transform = Callable[[Image.Image, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def train_transform(spec: ImageSpec, scale_range: tuple[float, float], hflip: bool, ignore: int = 255) -> Transform:
    """Random rescale (aspect kept, relative to the input size), random crop of the input size, flip.

    torchvision.transforms.v2 applies one draw to the image and its tv_tensors.Mask, resizing the mask with
    nearest neighbour (class ids are never blended); the padding of small crops is ignored in the loss.
    With a scale range of (1, 1) the image is simply resized to the input size. The image stays PIL until
    the end (one cheap conversion); normalisation runs once per batch.
    """
    size = (spec.height, spec.width)
    steps = [v2.Resize(size, interpolation=spec.interpolation, antialias=True) if scale_range == (1.0, 1.0)
             else v2.ScaleJitter(size, scale_range, interpolation=spec.interpolation, antialias=True),
             v2.RandomCrop(size, pad_if_needed=True, fill={tv_tensors.Mask: ignore, "others": 0})]
    if hflip:
        steps.append(v2.RandomHorizontalFlip())
    pipeline = v2.Compose(steps + [v2.ToImage()])

    def apply(image: Image.Image, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        image, mask = pipeline(to_rgb(image), tv_tensors.Mask(mask))
        return image.as_subclass(torch.Tensor), mask.as_subclass(torch.Tensor).long()

    return apply


def eval_transform(processor) -> Transform:
    """The processor's own preprocessing of the image, so validation sees exactly what the saved pipeline
    will; the mask keeps its full size, and the logits are upsampled to it."""
    def apply(image: Image.Image, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pixels = processor(images=[to_rgb(image)], return_tensors="pt")["pixel_values"][0]
        return pixels, mask.long()

    return apply


def orient_like_image(image: Image.Image, mask: np.ndarray) -> np.ndarray:
    """The mask turned as the image will be: to_rgb applies the photo's EXIF orientation (as the pipeline's
    load_image does at inference), and a mask drawn on the stored pixel grid has to follow it."""
    method = EXIF_TRANSPOSE.get(image.getexif().get(ORIENTATION_TAG, 1))
    return mask if method is None else np.asarray(Image.fromarray(mask).transpose(method))


def pad_masks(masks: list[torch.Tensor], ignore: int) -> torch.Tensor:
    """Stack masks, padding smaller ones (bottom/right) with the ignore value."""
    height, width = max(m.shape[-2] for m in masks), max(m.shape[-1] for m in masks)
    return torch.stack([F.pad(m, (0, width - m.shape[-1], 0, height - m.shape[-2]), value=ignore) for m in masks])
