"""Vision tasks: their shared options and backbone-rate rule, checked image loading, RGB conversion, image
folders, transforms, mixing, frozen BN."""
from __future__ import annotations

import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import datasets
import numpy as np
import torch
from datasets.packaged_modules.imagefolder.imagefolder import ImageFolder
from PIL import Image, ImageOps
from torchvision.transforms import InterpolationMode, v2

from shared.toolkit.config import TrainConfig
from shared.inputs.data import DataError, folder_files

# what datasets' imagefolder builder picks up; anything else in a class folder is ignored (and counted)
IMAGE_EXTENSIONS = frozenset(ImageFolder.EXTENSIONS)
_RESAMPLE = {0: InterpolationMode.NEAREST, 1: InterpolationMode.LANCZOS, 2: InterpolationMode.BILINEAR,
             3: InterpolationMode.BICUBIC, 4: InterpolationMode.BOX, 5: InterpolationMode.HAMMING}


@dataclass
class VisionConfig(TrainConfig):
    """The options every image task shares, declared once; a task's config adds its own data options."""

    hflip: bool = field(default=True, metadata={"help": "Random horizontal flips of training images."})
    backbone_learning_rate: Optional[float] = field(default=None, metadata={
        "help": "Rate of the pretrained backbone; the new head (and neck) use --learning_rate. Default: "
                "--learning_rate x --backbone_lr_scale when every weight trains; --learning_rate under LoRA.",
        "range": "(0, inf)"})
    backbone_lr_scale: float = field(default=0.1, metadata={
        "help": "Default backbone rate as a fraction of --learning_rate: pretrained features move slower than a "
                "new head. 1 = one rate.", "range": "(0, 1]"})
    verify_images: bool = field(default=True, metadata={"help": "Open every image (and mask) once before training."})
    channels_last: bool = field(default=True, metadata={
        "help": "NHWC memory layout: MobileNetV2 training steps measured 1.45x faster on CPU (bf16)."})


def backbone_rates(cfg: VisionConfig, model: torch.nn.Module, head_test: Callable[[], Callable[[str], bool] | None],
                   frozen: bool = False) -> dict[str, float] | None:
    """The one backbone-rate rule of the vision tasks, as lr_overrides (parameter-name prefix -> rate).

    Head parameters keep --learning_rate; everything else gets --backbone_learning_rate, by default
    --learning_rate x --backbone_lr_scale. With no explicit rate, LoRA (adapters start at zero and take the
    head's rate) and a frozen backbone (no rate to give) train at one rate. `head_test()` gives the
    is-a-head-parameter test, or None for one rate; it is called only when two rates are wanted, since
    finding the head can fail on an unfamiliar architecture.
    """
    rate = cfg.backbone_learning_rate
    if rate is None:
        if cfg.use_peft or frozen or cfg.backbone_lr_scale == 1.0:
            return None
        rate = cfg.learning_rate * cfg.backbone_lr_scale
    is_head = head_test()
    if is_head is None:
        return None
    # exact names first (the head keeps --learning_rate), then "" which matches every other parameter
    heads = {name: cfg.learning_rate for name, _ in model.named_parameters() if is_head(name)}
    return {**heads, "": rate}


# ---------------------------------------------------------------- reading and checking images
def to_rgb(image: Image.Image) -> Image.Image:
    """An RGB version of any PIL image; every image passes through here before its transforms.

    The EXIF orientation is applied (as transformers' `load_image` does at inference). Grayscale is
    copied into the three channels; 16/32-bit grayscale is scaled to 8 bits by its maximum value;
    transparency (RGBA, LA, palette with a transparent colour) is composited onto a white background,
    so transparent pixels become white rather than whatever colour they hid. CMYK, YCbCr, palette and
    the rest go through PIL's own conversion.
    """
    image = ImageOps.exif_transpose(image)
    if image.mode == "RGB":
        return image
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        array = np.asarray(image, dtype=np.float64)
        peak = array.max() if array.max() > 255 else 255.0
        image = Image.fromarray(np.clip(array * (255.0 / peak), 0, 255).astype(np.uint8))
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def check_image(source: str | Path | bytes, name: str) -> None:
    """Raise DataError naming the image if it cannot be decoded.

    `verify()` checks the structure (and PNG checksums) without decoding, but passes a truncated
    JPEG; a JPEG is therefore also decoded in draft mode at 1/8 scale, which reads the whole
    compressed stream (about 1.5 ms per photo here) and so finds a cut-off file.
    """
    opened = (lambda: io.BytesIO(source)) if isinstance(source, bytes) else (lambda: source)
    try:
        with Image.open(opened()) as image:
            image.verify()
        with Image.open(opened()) as image:
            if image.format == "JPEG":
                image.draft("RGB", (max(1, image.width // 8), max(1, image.height // 8)))
                image.load()
    except FileNotFoundError:
        raise DataError(f"{name}: image file not found") from None
    except Exception as err:  # PIL raises many types (UnidentifiedImageError, OSError, SyntaxError, ...)
        raise DataError(f"{name}: unreadable image ({type(err).__name__}: {err})") from None


def check_image_column(dataset: datasets.Dataset, column: str, describe: Callable[[int], str]) -> None:
    """check_image on every image of `dataset[column]`; errors name `describe(row)` (may be "") and the file."""
    raw = dataset.cast_column(column, datasets.Image(decode=False))
    for row, item in enumerate(raw[column]):
        path, label = (item or {}).get("path"), describe(row)
        name = f"{label}: {path}" if label and path else (label or path or f"row {row}")
        if item is None or not (item.get("bytes") or path):
            raise DataError(f"{name}: no image in column {column!r}")
        check_image(item["bytes"] if item.get("bytes") else path, name)


# ---------------------------------------------------------------- image folders
def _class_folders(root: Path, flag: str, allow_outside: bool) -> dict[Path, list[Path]]:
    """The class subfolders of an image folder with their images (each at least one), or DataError. Listed by
    shared.inputs.data.folder_files, so a symbolic link out of `root` is refused unless `allow_outside`."""
    if not root.is_dir():
        raise DataError(f"{flag} {root}: no such folder")
    by_class = {}
    for file in folder_files(root, allow_outside):
        parts = file.relative_to(root).parts
        if len(parts) > 1:  # files beside the class folders belong to no class
            by_class.setdefault(parts[0], []).append(file)
    folders = [d for d in sorted(root.iterdir()) if d.is_dir() and not d.name.startswith(".")]
    if not folders:
        raise DataError(f"{flag} {root}: expected one subfolder per class ({root}/<class>/*.jpg), found none")
    classes = {}
    for folder in folders:
        inside = by_class.get(folder.name, [])
        images = [f for f in inside if f.suffix.lower() in IMAGE_EXTENSIONS]
        if not images:
            raise DataError(f"{folder}: class folder has no images ({len(inside)} other files); add images with one "
                            f"of the extensions {sorted(IMAGE_EXTENSIONS)[:8]}... or remove the folder")
        if len(images) < len(inside):
            print(f"note: {folder}: ignored {len(inside) - len(images)} non-image files "
                  f"(for example {next(f.name for f in inside if f.suffix.lower() not in IMAGE_EXTENSIONS)})")
        classes[folder] = images
    return classes


def load_image_folders(train_dir: str, validation_dir: str | None = None, test_dir: str | None = None,
                       allow_outside: bool = False) -> datasets.DatasetDict:
    """`split/<class>/*.jpg` folders through datasets' imagefolder builder, with the class folders checked.

    Images stay on disk (the dataset stores paths). A validation or test class with no training folder is refused,
    and so is a symbolic link that leads out of its split folder, unless `allow_outside`.
    """
    train_classes = {d.name for d in _class_folders(Path(train_dir), "--train_dir", allow_outside)}
    if len(train_classes) < 2:  # the imagefolder builder would drop the label column altogether
        raise DataError(f"{train_dir}: the training data has a single class {sorted(train_classes)}; "
                        "classification needs at least two (one folder per class)")
    data_files = {"train": str(Path(train_dir) / "**")}
    for split, held_out in (("validation", validation_dir), ("test", test_dir)):
        if not held_out:
            continue
        for folder, images in _class_folders(Path(held_out), f"--{split}_dir", allow_outside).items():
            if folder.name not in train_classes:
                raise DataError(f"{images[0]}: class {folder.name!r} of --{split}_dir has no training folder in "
                                f"{train_dir} (training classes: {sorted(train_classes)})")
        data_files[split] = str(Path(held_out) / "**")
    data = datasets.load_dataset("imagefolder", data_files=data_files)
    if set(data["train"].features["label"].names) != train_classes:  # the builder reads labels from folder names
        raise DataError(f"{train_dir}: labels {data['train'].features['label'].names} do not match the class "
                        f"folders {sorted(train_classes)}; nest images exactly one level deep: <class>/<image>")
    return data


# ---------------------------------------------------------------- transforms
@dataclass(frozen=True)
class ImageSpec:
    """How a model's own processor prepares images: final size, normalisation, interpolation."""

    height: int
    width: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    interpolation: InterpolationMode


def image_spec(processor) -> ImageSpec:
    """Read the input size and normalisation from a timm data config or a transformers image processor."""
    timm_cfg = getattr(processor, "data_config", None)
    if timm_cfg is not None:  # TimmWrapperImageProcessor
        _, height, width = timm_cfg["input_size"]
        mode = InterpolationMode(timm_cfg["interpolation"]) if timm_cfg.get("interpolation") in (
            m.value for m in InterpolationMode) else InterpolationMode.BILINEAR  # timm also allows "random"
        return ImageSpec(height, width, tuple(timm_cfg["mean"]), tuple(timm_cfg["std"]), mode)
    size = getattr(processor, "crop_size", None) if getattr(processor, "do_center_crop", False) else None
    size = size or getattr(processor, "size", None) or {"height": 224, "width": 224}
    side = size.get("shortest_edge") or size.get("height")
    height, width = size.get("height", side), size.get("width", side)
    mean = tuple(getattr(processor, "image_mean", None) or (0.5, 0.5, 0.5))
    std = tuple(getattr(processor, "image_std", None) or (0.5, 0.5, 0.5))
    resample = getattr(processor, "resample", 2)
    mode = resample if isinstance(resample, InterpolationMode) else _RESAMPLE.get(int(resample), InterpolationMode.BILINEAR)
    return ImageSpec(int(height), int(width), mean, std, mode)


def train_transform(spec: ImageSpec, augment: str = "none", hflip: bool = True,
                    crop_scale: tuple[float, float] = (0.08, 1.0)) -> v2.Compose:
    """Random resized crop, horizontal flip, optional RandAugment/TrivialAugment: PIL in, uint8 tensor out.

    Every step runs on the PIL image, and the float conversion and normalisation are left to
    `normalize` on the whole batch: per-image torch ops cost about 25 ms each on a busy 2-core
    machine (thread start-up), against about 1 ms for the whole chain here.
    """
    steps = [v2.RandomResizedCrop((spec.height, spec.width), scale=crop_scale, interpolation=spec.interpolation,
                                  antialias=True)]
    if hflip:
        steps.append(v2.RandomHorizontalFlip())
    if augment == "randaugment":
        steps.append(v2.RandAugment(interpolation=spec.interpolation))
    elif augment == "trivialaugment":
        steps.append(v2.TrivialAugmentWide(interpolation=spec.interpolation))
    elif augment != "none":
        raise ValueError(f"unknown augment {augment!r}; use none, randaugment or trivialaugment")
    return v2.Compose(steps + [v2.ToImage()])


def normalize(pixels: torch.Tensor, spec: ImageSpec) -> torch.Tensor:
    """A uint8 batch [B, C, H, W] as floats in [0, 1], normalised with the model's mean and std."""
    mean = torch.tensor(spec.mean, device=pixels.device).view(1, -1, 1, 1)
    std = torch.tensor(spec.std, device=pixels.device).view(1, -1, 1, 1)
    return (pixels.float().div_(255.0) - mean).div_(std)


def eval_transform(processor) -> Callable[[Image.Image], torch.Tensor]:
    """The processor's own preprocessing, so validation sees exactly what the saved pipeline will."""
    return lambda image: processor(images=[image], return_tensors="pt")["pixel_values"][0]


# ---------------------------------------------------------------- batches and models
def mix_batch(pixels: torch.Tensor, targets: torch.Tensor, mixup_alpha: float,
              cutmix_alpha: float) -> tuple[torch.Tensor, torch.Tensor]:
    """MixUp or CutMix (chosen with equal odds when both are on) of a batch and its soft/multi-hot targets.

    Draws from torch's global RNG, which the engine seeds and restores on resume.
    """
    use_cutmix = cutmix_alpha > 0 and (mixup_alpha <= 0 or bool(torch.rand(()) < 0.5))
    alpha = cutmix_alpha if use_cutmix else mixup_alpha
    if alpha <= 0 or len(pixels) < 2:
        return pixels, targets
    lam = float(torch.distributions.Beta(alpha, alpha).sample())
    order = torch.randperm(len(pixels), device=pixels.device)
    if use_cutmix:  # paste a box of area (1 - lam) from the partner image; lam is then the exact kept area
        height, width = pixels.shape[-2:]
        cut_h, cut_w = int(height * math.sqrt(1 - lam)), int(width * math.sqrt(1 - lam))
        cy, cx = int(torch.randint(height, ())), int(torch.randint(width, ()))
        y0, y1 = max(cy - cut_h // 2, 0), min(cy + cut_h // 2, height)
        x0, x1 = max(cx - cut_w // 2, 0), min(cx + cut_w // 2, width)
        pixels = pixels.clone()
        pixels[..., y0:y1, x0:x1] = pixels[order][..., y0:y1, x0:x1]
        lam = 1.0 - (y1 - y0) * (x1 - x0) / (height * width)
    else:
        pixels = lam * pixels + (1.0 - lam) * pixels[order]
    return pixels, lam * targets + (1.0 - lam) * targets[order]


def _stay_in_eval(module: torch.nn.Module, args) -> None:
    module.train(False)


def freeze_batchnorm(model: torch.nn.Module) -> int:
    """Keep every BatchNorm in eval mode (running statistics used, never updated); return how many.

    A frozen backbone should see the statistics it was trained with, but the engine puts the whole
    model in train mode; a forward pre-hook switches these layers back before each call.
    """
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for module in norms:
        module.register_forward_pre_hook(_stay_in_eval)
    return len(norms)


def modules_outside(model: torch.nn.Module, inner: torch.nn.Module) -> list[str]:
    """Names of the largest submodules of `model` that neither are nor contain `inner`.

    With `inner` the pretrained backbone, these are the freshly built parts (necks, heads, a DETR
    transformer), which LoRA keeps fully trainable: `model.backbone` gives every other top-level child,
    `model.model.backbone` gives the other children of `model.model` plus the top-level heads.
    """
    containers = (torch.nn.ModuleList, torch.nn.ModuleDict)  # no forward of their own: peft wraps their items
    names = []
    for name, child in model.named_children():
        if child is inner:
            continue
        if isinstance(child, containers) or any(module is inner for module in child.modules()):
            names += [f"{name}.{sub}" for sub in modules_outside(child, inner)]
        elif any(True for _ in child.parameters()):
            names.append(name)
    return names


def adaptable_layers(model: torch.nn.Module, exclude: list[str]) -> list[str]:
    """LoRA targets for a vision model: every Linear and every 1x1, ungrouped Conv2d outside `exclude`.

    1x1 convolutions are the channel-mixing matrices of convnets (MobileNet's pointwise layers), the
    analogue of a transformer's linear layers; spatial and depthwise kernels are left alone. Returned as
    leaf names (peft matches them as suffixes) when every module of that name qualifies, else full names.
    """
    def excluded(name: str) -> bool:
        return any(name == e or name.startswith(e + ".") for e in exclude)

    def qualifies(module: torch.nn.Module) -> bool:
        if isinstance(module, torch.nn.Linear):
            return True
        return isinstance(module, torch.nn.Conv2d) and module.kernel_size == (1, 1) and module.groups == 1

    chosen = [name for name, module in model.named_modules() if name and qualifies(module) and not excluded(name)]
    leaves = sorted({name.rsplit(".", 1)[-1] for name in chosen})
    others = [name for name, _ in model.named_modules() if name.rsplit(".", 1)[-1] in leaves and name not in chosen]
    return leaves if not others else chosen
