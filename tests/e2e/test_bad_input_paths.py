"""Data files stay inside their data folder unless asked (--allow_paths_outside_data), and the vision readers
(COCO JSON, labels.json, masks, image tables) refuse what they cannot decode or what has the wrong shape, each with
one `error: ` line naming the file, the entry or row, and the reason, before any training step
(tests/e2e/refusals.py). Every symbolic link here is a real one in the test's scratch folder.

Folder readers list their files through shared.inputs.data.folder_files: image-class folders
(`--train_dir split/<class>/*.png`) and segmentation `images/` + `masks/`; COCO `file_name` and image tables name
their files and go through shared.inputs.data.inside_data_folder.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import datasets
import pytest
from PIL import Image

from shared.inputs.data import DataError, folder_files
from shared.inputs.vision import load_image_folders
from tasks.semantic_segmentation.data import load_folder
from tests.e2e.bad_box_and_mask_inputs import BadInput, _coco, _scenes
from tests.e2e.refusals import PNG, assert_refused, write
from tests.e2e.test_bad_input import _image_table, _images
from tests.helpers import IMAGE_CLASSES, tiny_image_data, tiny_vit_dir

OUTSIDE = r"a symbolic link that leads outside the data folder .*{}; pass --allow_paths_outside_data"


# ------------------------------------------------------------------ files that leave their data folder, label files
# (moved from tests/e2e/test_bad_input.py)
def _elsewhere(tmp: Path) -> Path:
    """An image outside every data folder of the row."""
    Image.new("RGB", (32, 32), "red").save(tmp / "elsewhere.png")
    return tmp / "elsewhere.png"


def _linked(tmp: Path, fx: dict) -> list[str]:
    flags = _image_table(tmp, fx, [("train/circle/000.png", "circle"), ("link.png", "square")])
    (tmp / "shapes" / "link.png").symlink_to(_elsewhere(tmp))
    return flags


def _single_class(root: Path) -> None:
    for split in ("train", "validation"):
        for name in IMAGE_CLASSES[1:]:
            shutil.rmtree(root / split / name)


def _labels_file(tmp: Path, fx: dict, text: str) -> list[str]:
    flags = _image_table(tmp, fx, [("train/circle/000.png", "0"), ("train/square/000.png", "1")],
                         [("validation/circle/000.png", "0")])
    (tmp / "shapes" / "labels.json").write_text(text)
    return flags


PATHS = [
    BadInput("image-table-path-leaves-folder", "image_classification",
             lambda t, fx: _image_table(t, fx, [("train/circle/000.png", "circle"), (f"../{_elsewhere(t).name}", "square")]),
             r"train\.csv row 1 \(line 3\): .*elsewhere\.png is outside the data folder .*shapes; pass "
             r"--allow_paths_outside_data", subprocess=True),
    BadInput("image-table-absolute-path", "image_classification",
             lambda t, fx: _image_table(t, fx, [("train/circle/000.png", "circle"), (str(_elsewhere(t)), "square")]),
             r"train\.csv row 1 \(line 3\): .*elsewhere\.png is outside the data folder"),
    BadInput("image-table-symlink-out", "image_classification", _linked,
             r"train\.csv row 1 \(line 3\): .*link\.png is outside the data folder"),
    BadInput("coco-file-name-outside", "object_detection",
             lambda t, fx: _coco(t, fx, lambda coco, folder: coco["images"][0].update(file_name=f"../../{_elsewhere(t).name}")),
             r"_annotations\.coco\.json: image id \d+ \(elsewhere\.png\): .* is outside the data folder .*coco"),
    BadInput("image-single-class-folder", "image_classification", lambda t, fx: _images(t, fx, _single_class),
             r"shapes/train: the training data has a single class \['circle'\]; classification needs at least two"),
    BadInput("image-labels-json-broken", "image_classification", lambda t, fx: _labels_file(t, fx, '{"0": "circle",'),
             r"shapes/labels\.json line 1 column 16: not valid JSON \(Expecting property name"),
    BadInput("image-labels-json-gap", "image_classification",
             lambda t, fx: _labels_file(t, fx, '{"0": "circle", "2": "square"}'),
             r"shapes/labels\.json: label ids must be 0\.\.N-1, got \[0, 2\]"),
]


# ------------------------------------------------------------------ symbolic links inside data folders
def _outside_folder(tmp: Path) -> Path:
    folder = tmp / "outside"
    folder.mkdir(exist_ok=True)
    Image.new("RGB", (32, 32), "blue").save(folder / "private.png")
    return folder


def _link(link: Path, target: Path) -> None:
    if link.exists() or link.is_symlink():
        shutil.rmtree(link) if link.is_dir() and not link.is_symlink() else link.unlink()
    link.symlink_to(target, target_is_directory=target.is_dir())


def _linked_folder(split: str, name: str, target: str):
    """An image-class folder (split/<...>/name) holding a link to `target` under the scratch folder."""
    return lambda t, fx: _images(t, fx, lambda root: _link(root / split / name, _outside_folder(t).parent / target))


def _linked_scenes(where: str, target: str):
    def make(tmp: Path, fx: dict) -> list[str]:
        flags = _scenes(tmp, fx)
        outside = _outside_folder(tmp)
        shutil.copytree(tmp / "scenes" / "train" / "masks", outside / "masks")
        _link(tmp / "scenes" / "train" / where, outside / target)
        return flags + ["--model_name_or_path", str(tmp / "no_model")]
    return make


def _coco_link(tmp: Path, fx: dict) -> list[str]:
    flags = _coco(tmp, fx)
    _link(tmp / "coco" / "0001.png", _outside_folder(tmp) / "private.png")
    return flags + ["--model_name_or_path", str(tmp / "no_model")]


LINKS = [
    BadInput("class-folder-file-link", "image_classification", _linked_folder("train", "circle/link.png",
                                                                              "outside/private.png"),
             r"shapes/train/circle/link\.png: " + OUTSIDE.format("shapes/train"), subprocess=True),
    BadInput("class-folder-link-to-a-missing-file", "image_classification",
             _linked_folder("train", "circle/link.png", "outside/missing.png"),
             r"shapes/train/circle/link\.png: " + OUTSIDE.format("shapes/train")),
    BadInput("class-folder-folder-link", "image_classification", _linked_folder("train", "circle/more", "outside"),
             r"shapes/train/circle/more: " + OUTSIDE.format("shapes/train")),
    BadInput("class-folder-is-a-link", "image_classification", _linked_folder("train", "oval", "outside"),
             r"shapes/train/oval: " + OUTSIDE.format("shapes/train")),
    BadInput("validation-class-folder-file-link", "image_classification",
             _linked_folder("validation", "square/000.png", "outside/private.png"),
             r"shapes/validation/square/000\.png: " + OUTSIDE.format("shapes/validation")),
    BadInput("segmentation-image-link", "semantic_segmentation", _linked_scenes("images/003.png", "private.png"),
             r"scenes/train/images/003\.png: " + OUTSIDE.format("scenes/train")),
    BadInput("segmentation-masks-folder-link", "semantic_segmentation", _linked_scenes("masks", "masks"),
             r"scenes/train/masks: " + OUTSIDE.format("scenes/train")),
    BadInput("coco-image-file-link", "object_detection", _coco_link,
             r"_annotations\.coco\.json: image id 1 \(0001\.png\): .*0001\.png is outside the data folder .*coco; pass "
             r"--allow_paths_outside_data"),
]


# ------------------------------------------------------------------ COCO JSON, labels.json, masks, image tables
def _coco_written(tmp: Path, content: str | bytes) -> list[str]:
    flags = _coco(tmp, {})
    write(tmp / "coco" / "_annotations.coco.json", content)
    return flags + ["--model_name_or_path", str(tmp / "no_model")]


def _coco_changed(change):
    return lambda t, fx: _coco(t, fx, change) + ["--model_name_or_path", str(t / "no_model")]


def _seg_labels(content: str | bytes):
    def make(tmp: Path, fx: dict) -> list[str]:
        flags = _scenes(tmp, fx)
        write(tmp / "scenes" / "labels.json", content)
        return flags + ["--model_name_or_path", str(tmp / "no_model")]
    return make


def _seg_damaged(damage):
    return lambda t, fx: _scenes(t, fx, damage) + ["--model_name_or_path", str(t / "no_model")]


def _table(name: str, rows: list[dict] | bytes):
    """An image table under shapes/ (JSON lines of `rows`, or the bytes given) and a good validation table."""
    def make(tmp: Path, fx: dict) -> list[str]:
        tiny_image_data(tmp / "shapes", 2, 1)
        content = rows if isinstance(rows, bytes) else "".join(json.dumps(row) + "\n" for row in rows)
        train = write(tmp / "shapes" / name, content)
        validation = write(tmp / "shapes" / "validation.jsonl", json.dumps({"image": "validation/circle/000.png",
                                                                            "label": "circle"}) + "\n")
        return ["--model_name_or_path", str(fx["vit"]), "--train_file", str(train), "--validation_file",
                str(validation)]
    return make


def _set_image(index: int, **values):
    return lambda coco, folder: coco["images"][index].update(values)


ROWS = [{"image": "train/circle/000.png", "label": "circle"}, {"image": "train/square/000.png", "label": "square"}]
READERS = [
    BadInput("coco-not-utf8", "object_detection", lambda t, fx: _coco_written(t, b'{"images": "caf\xe9"}'),
             r"coco/_annotations\.coco\.json line 1: not UTF-8 text \(byte 0xe9", subprocess=True),
    BadInput("coco-binary-file", "object_detection", lambda t, fx: _coco_written(t, PNG),
             r"_annotations\.coco\.json line 1: not UTF-8 text \(byte 0x89: a binary file"),
    BadInput("coco-cut-off", "object_detection", lambda t, fx: _coco_written(t, '{"images": [{"id": 0,\n "file'),
             r"_annotations\.coco\.json line 2 column 2: not valid JSON \(Unterminated string"),
    BadInput("coco-a-list", "object_detection", lambda t, fx: _coco_written(t, "[]"),
             r"_annotations\.coco\.json: expected a COCO object with images, annotations and categories, got a list"),
    BadInput("coco-images-an-object", "object_detection",
             _coco_changed(lambda coco, folder: coco.update(images={"0": coco["images"][0]})),
             r"_annotations\.coco\.json: 'images' must be a list, got an object"),
    BadInput("coco-image-a-string", "object_detection", _coco_changed(lambda c, f: c["images"].__setitem__(1, "x")),
             r"_annotations\.coco\.json: image 1: expected an object, got a string"),
    BadInput("coco-width-a-string", "object_detection", _coco_changed(_set_image(0, width="64")),
             r"_annotations\.coco\.json: image 0 \(id 0\): 'width' must be a positive integer, got a string"),
    BadInput("coco-no-file-name", "object_detection", _coco_changed(lambda c, f: c["images"][2].pop("file_name")),
             r"_annotations\.coco\.json: image 2 \(id 2\): 'file_name' must be a string, got nothing"),
    BadInput("coco-duplicate-image-id", "object_detection", _coco_changed(_set_image(2, id=0)),
             r"_annotations\.coco\.json: image 2: duplicate id 0 \(also entry 0 of 'images'\)"),
    BadInput("coco-category-name-an-object", "object_detection",
             _coco_changed(lambda c, f: c["categories"][0].update(name={"en": "circle"})),
             r"_annotations\.coco\.json: category 0 \(id 1\): 'name' must be a string, got an object"),
    BadInput("coco-bbox-a-number", "object_detection",
             _coco_changed(lambda c, f: c["annotations"][0].update(bbox=5)),
             r"_annotations\.coco\.json: annotation 0 \(id 0\): 'bbox' must be a list \[x, y, w, h\], got a number"),
    BadInput("coco-bbox-strings", "object_detection",
             _coco_changed(lambda c, f: c["annotations"][0].update(bbox=["1", "2", "3", "4"])),
             r"_annotations\.coco\.json: annotation 0 \(id 0\) on 0000\.png: bbox values must be numbers"),
    BadInput("segmentation-labels-not-utf8", "semantic_segmentation", _seg_labels(b'{"0": "stra\xdfe", "1": "sky"}'),
             r"scenes/labels\.json line 1: not UTF-8 text \(byte 0xdf"),
    BadInput("segmentation-labels-cut-off", "semantic_segmentation", _seg_labels('{"id2label": {"0": "road"'),
             r"scenes/labels\.json line 1 column 26: not valid JSON"),
    BadInput("segmentation-labels-name-an-object", "semantic_segmentation",
             _seg_labels('{"id2label": {"0": {"en": "road"}, "1": "sky"}}'),
             r"scenes/labels\.json: the name of class 0 must be a string, got an object"),
    BadInput("segmentation-labels-ignore-a-string", "semantic_segmentation",
             _seg_labels('{"id2label": {"0": "road", "1": "sky"}, "ignore_index": "void"}'),
             r"scenes/labels\.json: ignore_index must be a mask value 0-255 \(or null\), got 'void'"),
    BadInput("segmentation-labels-a-list", "semantic_segmentation", _seg_labels('["road", "sky"]'),
             r"scenes/labels\.json: expected \{\"id2label\""),
    BadInput("segmentation-mask-cut-off", "semantic_segmentation",
             _seg_damaged(lambda image, mask: mask.write_bytes(mask.read_bytes()[:40])),
             r"masks/003\.png: unreadable mask"),
    BadInput("segmentation-mask-a-text-file", "semantic_segmentation",
             _seg_damaged(lambda image, mask: mask.write_text("not a mask")), r"masks/003\.png: unreadable mask"),
    BadInput("image-table-paths-objects", "image_classification",
             _table("train.jsonl", [{**row, "image": {"path": row["image"]}} for row in ROWS]),
             r"shapes/train\.jsonl line 1: column 'image' must hold one plain value \(a string or a number\), got an"),
    BadInput("image-table-path-a-number", "image_classification",
             _table("train.jsonl", [{**row, "image": 5} for row in ROWS]),
             r"shapes/train\.jsonl line 1: the image path in column 'image' must be a string, got a number \(5\)"),
    BadInput("image-table-labels-objects", "image_classification",
             _table("train.jsonl", [{**row, "label": {"name": row["label"]}} for row in ROWS]),
             r"shapes/train\.jsonl line 1: a label must be a string or a number, got an object"),
    BadInput("image-table-not-utf8", "image_classification", _table("train.csv", b"image,label\n\xff.png,a\n"),
             r"shapes/train\.csv line 2: not UTF-8 text \(byte 0xff"),
]

CASES = PATHS + LINKS + READERS


@pytest.fixture(scope="module")
def fx(tmp_path_factory) -> dict:
    return {"vit": tiny_vit_dir(tmp_path_factory.mktemp("vit"))}


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_a_path_or_vision_reader_refuses_naming_file_entry_and_reason(case, fx, tmp_path, capsys):
    assert_refused(case, fx, tmp_path, capsys)


def test_a_link_out_gets_the_same_line_whether_its_target_exists_or_not(tmp_path):
    """No existence oracle: a link to a readable file, to a missing one and to one in an unreadable folder outside
    are refused alike, before the target is looked at."""
    private = tmp_path / "private"
    (private / "locked").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(private / "here.png")
    Image.new("RGB", (8, 8)).save(private / "locked" / "inside.png")
    (private / "locked").chmod(0)
    messages = []
    try:
        for target in ("here.png", "missing.png", "locked/inside.png"):
            data = tmp_path / f"data-{len(messages)}"
            (data / "cat").mkdir(parents=True)
            (data / "cat" / "x.png").symlink_to(private / target)
            with pytest.raises(DataError) as refused:
                folder_files(data, allow_outside=False)
            messages.append(str(refused.value).replace(str(data), "<data>"))
    finally:
        (private / "locked").chmod(0o755)
    assert len(set(messages)) == 1, messages
    assert messages[0] == ("<data>/cat/x.png: a symbolic link that leads outside the data folder <data>; pass "
                           "--allow_paths_outside_data to read files from elsewhere")


def test_links_are_followed_when_allowed_and_inside_and_a_loop_ends(tmp_path):
    root = tiny_image_data(tmp_path / "shapes", 2, 1)
    outside = _outside_folder(tmp_path)
    (root / "train" / "circle" / "far.png").symlink_to(outside / "private.png")
    (root / "train" / "square" / "near.png").symlink_to(root / "train" / "square" / "000.png")
    (root / "train" / "square" / "loop").symlink_to(root / "train", target_is_directory=True)
    with pytest.raises(DataError, match="far.png: a symbolic link that leads outside"):
        load_image_folders(str(root / "train"), str(root / "validation"))
    data = load_image_folders(str(root / "train"), str(root / "validation"), allow_outside=True)
    paths = [item["path"] for item in data["train"].cast_column("image", datasets.Image(decode=False))["image"]]
    assert any(p.endswith("circle/far.png") for p in paths) and any(p.endswith("square/near.png") for p in paths)
    listed = folder_files(root / "train", allow_outside=False, base=tmp_path)  # the loop back to train/ ends
    assert "loop" not in {part for p in listed for part in p.parts} and root / "train" / "square" / "near.png" in listed


def test_segmentation_folders_follow_links_only_when_allowed(tmp_path):
    _scenes(tmp_path, {})
    split = tmp_path / "scenes" / "train"
    outside = _outside_folder(tmp_path)
    shutil.copy(split / "images" / "003.png", outside / "003.png")
    _link(split / "images" / "003.png", outside / "003.png")
    with pytest.raises(DataError, match=r"images/003\.png: a symbolic link that leads outside"):
        load_folder(split, "--train_dir")
    assert len(load_folder(split, "--train_dir", allow_outside=True)) == 4
