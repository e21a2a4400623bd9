"""Tiny random-init models (saved from configs) and tiny learnable data for each task's GPU check."""
from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch


@dataclass
class TaskFixture:
    """What one task's check trains with, and how its saved best/ is probed through its pipeline."""
    flags: list[str]  # model and data flags, and step counts that let the tiny model learn
    probe: Callable[[object], str]  # pipeline -> a short description; raises AssertionError when wrong
    model: str  # what the model is, for the report


def _wordpiece(out: Path, corpus: list[str], vocab_size: int):
    """A fast uncased BERT tokenizer trained on `corpus`, saved into `out`."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import BertTokenizerFast

    out.mkdir(parents=True, exist_ok=True)
    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tokenizer.train_from_iterator(corpus, trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=specials))
    tokenizer.save(str(out / "tokenizer.json"))
    fast = BertTokenizerFast(tokenizer_file=str(out / "tokenizer.json"))
    fast.save_pretrained(out)
    return fast


def _bert(out: Path, model_class, vocab_size: int, **config) -> Path:
    from transformers import BertConfig

    sizes = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
                 max_position_embeddings=128)
    torch.manual_seed(0)  # the same initial weights on every machine and in every run of the check
    model_class(BertConfig(vocab_size=vocab_size, **{**sizes, **config})).save_pretrained(out)
    return out


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


TEXT_VALIDATION_ROWS = 60


def text_data(work: Path, n_train: int = 240, n_validation: int = TEXT_VALIDATION_ROWS) -> tuple[Path, Path]:
    from tasks.text_classification.sample_data import make_rows, write

    work.mkdir(parents=True, exist_ok=True)
    write(work / "train.csv", make_rows(n_train, seed=0))
    write(work / "validation.csv", make_rows(n_validation, seed=1))
    return work / "train.csv", work / "validation.csv"


def text_classification(work: Path) -> TaskFixture:
    from transformers import BertForSequenceClassification

    from tasks.text_classification.sample_data import make_rows

    train, validation = text_data(work / "data")
    fast = _wordpiece(work / "model", [text for text, _ in make_rows(400, seed=2)], 300)
    model = _bert(work / "model", BertForSequenceClassification, fast.vocab_size, num_labels=3)

    def probe(pipe) -> str:
        [top] = pipe(["The kettle works perfectly."])
        assert top["label"] in ("negative", "neutral", "positive"), top
        return f"label {top['label']} ({top['score']:.2f})"

    return TaskFixture(["--model_name_or_path", str(model), "--train_file", str(train), "--validation_file",
                        str(validation), "--num_train_epochs", "4", "--learning_rate", "3e-3",
                        "--per_device_train_batch_size", "16", "--logging_steps", "3"], probe,
                       "BERT 2 layers x 64 (random init)")


def question_answering(work: Path) -> TaskFixture:
    from transformers import BertForQuestionAnswering

    from tasks.question_answering.sample_data import make_rows

    train = _jsonl(work / "data" / "train.jsonl", make_rows(240, seed=0, facts_per_context=1))
    validation = _jsonl(work / "data" / "validation.jsonl", make_rows(40, seed=1, facts_per_context=1))
    corpus = [f"{r['context']} {r['question']}" for r in make_rows(300, seed=2)]
    fast = _wordpiece(work / "model", corpus, 300)
    model = _bert(work / "model", BertForQuestionAnswering, fast.vocab_size)
    context = "The capital of Kalomir is Tavendor."

    def probe(pipe) -> str:
        answer = pipe(question="What is the capital of Kalomir?", context=context)
        assert context[answer["start"]:answer["end"]] == answer["answer"], answer  # a span of the context
        return f"answer {answer['answer']!r}"

    return TaskFixture(["--model_name_or_path", str(model), "--train_file", str(train), "--validation_file",
                        str(validation), "--num_train_epochs", "4", "--learning_rate", "3e-3",
                        "--per_device_train_batch_size", "16", "--max_seq_length", "64", "--doc_stride", "16",
                        "--logging_steps", "3"], probe, "BERT 2 layers x 64 (random init)")


def translation(work: Path) -> TaskFixture:
    from tasks.translation.sample_data import make_pairs

    train = _jsonl(work / "data" / "train.jsonl", make_pairs(320, seed=0))
    validation = _jsonl(work / "data" / "validation.jsonl", make_pairs(32, seed=1))

    def probe(pipe) -> str:
        [out] = pipe("the small dog sees the big cat")
        assert isinstance(out["translation_text"], str), out
        return f"translation {out['translation_text']!r}"

    # No model flag: the task builds a Marian model from scratch with a BPE tokenizer trained on the data.
    return TaskFixture(["--train_file", str(train), "--validation_file", str(validation), "--source_lang", "en",
                        "--target_lang", "toy", "--d_model", "64", "--ffn_dim", "128", "--encoder_layers", "2",
                        "--decoder_layers", "2", "--vocab_size", "400", "--learning_rate", "2e-3",
                        "--num_train_epochs", "4", "--per_device_train_batch_size", "16", "--num_beams", "1",
                        "--max_target_length", "24", "--logging_steps", "3"], probe,
                       "Marian 2+2 layers x 64 from scratch")


def _images_probe(folder: Path, labels: list[str]) -> Callable[[object], str]:
    def probe(pipe) -> str:
        found = pipe([str(p) for p in sorted(folder.rglob("*.png"))[:3]])
        assert len(found) == 3 and all(f[0]["label"] in labels for f in found), found
        return "labels " + ", ".join(f[0]["label"] for f in found)
    return probe


def image_classification(work: Path, packaged: bool = True) -> TaskFixture:
    """The packaged ImageNet MobileNetV2 (its wheel travels with the check), or a tiny ViT in a dry run."""
    from tasks.image_classification.sample_data import write_image_folder

    classes = ["circle", "square", "stripes"]
    data = write_image_folder(work / "data", {"train": 32, "validation": 8}, size=64, classes=classes,
                              colour_coded=True)
    model, described = "mobilenetv2", "packaged MobileNetV2 (ImageNet weights)"
    if not packaged:
        from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

        model, described = str(work / "model"), "ViT 2 layers x 32 (random init)"
        torch.manual_seed(0)
        ViTForImageClassification(ViTConfig(image_size=64, patch_size=16, hidden_size=32, num_hidden_layers=2,
                                             num_attention_heads=2, intermediate_size=64)).save_pretrained(model)
        ViTImageProcessor(size={"height": 64, "width": 64}).save_pretrained(model)
    return TaskFixture(["--model_name_or_path", model, "--train_dir", str(data / "train"), "--validation_dir",
                        str(data / "validation"), "--num_train_epochs", "4", "--learning_rate", "1e-3",
                        "--per_device_train_batch_size", "16", "--logging_steps", "2"],
                       _images_probe(data / "validation", classes), described)


def object_detection(work: Path) -> TaskFixture:
    from transformers import ConditionalDetrImageProcessor

    from tasks.object_detection.modeling_dense_detector import DenseDetectorConfig, DenseDetectorForObjectDetection
    from tasks.object_detection.sample_data import CLASSES, write_dataset

    data = write_dataset(work / "data", {"train": 48, "validation": 16}, size=96, colour_coded=True)
    model = work / "model"
    torch.manual_seed(0)
    config = DenseDetectorConfig(backbone="test_convnext", out_indices=[1, 2, 3], neck_channels=32, head_convs=1,
                                 num_labels=len(CLASSES))
    DenseDetectorForObjectDetection(config).save_pretrained(model)
    ConditionalDetrImageProcessor(size={"height": 96, "width": 96}, do_pad=False, image_mean=[0.5] * 3,
                                  image_std=[0.5] * 3).save_pretrained(model)
    image = sorted((data / "validation").glob("*.png"))[0]

    def probe(pipe) -> str:
        found = pipe(str(image), threshold=0.0)
        assert all(d["label"] in CLASSES and set(d["box"]) == {"xmin", "ymin", "xmax", "ymax"} for d in found), found
        return f"{len(found)} boxes at threshold 0"

    return TaskFixture(["--model_name_or_path", str(model), "--train_dir", str(data / "train"), "--validation_dir",
                        str(data / "validation"), "--num_train_epochs", "8", "--learning_rate", "5e-3",
                        "--backbone_learning_rate", "5e-3", "--per_device_train_batch_size", "8",
                        "--freeze_backbone_batchnorm", "false", "--logging_steps", "3"], probe,
                       "dense detector on timm test_convnext (random init)")


def semantic_segmentation(work: Path) -> TaskFixture:
    from PIL import Image
    from transformers import SegformerConfig, SegformerForSemanticSegmentation, SegformerImageProcessor

    from tasks.semantic_segmentation.sample_data import LABELS, write_dataset

    data = write_dataset(work / "data", {"train": 48, "validation": 12}, size=32, colour_coded=True)
    model = work / "model"
    torch.manual_seed(0)
    config = SegformerConfig(num_encoder_blocks=2, depths=[1, 1], sr_ratios=[2, 1], hidden_sizes=[16, 32],
                             patch_sizes=[3, 3], strides=[2, 2], num_attention_heads=[1, 2], mlp_ratios=[2, 2],
                             decoder_hidden_size=32, num_labels=2)
    SegformerForSemanticSegmentation(config).save_pretrained(model)
    SegformerImageProcessor(size={"height": 32, "width": 32}).save_pretrained(model)
    image = Image.open(data / "validation" / "images" / "000.png")

    def probe(pipe) -> str:
        segments = pipe(image)
        assert segments and all(s["label"] in LABELS and s["mask"].size == image.size for s in segments), segments
        return "segments " + ", ".join(s["label"] for s in segments)

    return TaskFixture(["--model_name_or_path", str(model), "--train_dir", str(data / "train"), "--validation_dir",
                        str(data / "validation"), "--max_train_steps", "40", "--learning_rate", "5e-3",
                        "--lr_scheduler_type", "constant", "--per_device_train_batch_size", "8",
                        "--eval_strategy", "steps", "--eval_steps", "20", "--logging_steps", "4"], probe,
                       "SegFormer 2 blocks x 16/32 (random init)")


PEOPLE, PLACES = ["anna", "boris", "carla", "dmitri", "elena"], ["paris", "lima", "oslo", "cairo", "delhi"]
FILLER = ["went", "to", "the", "market", "in", "with", "and", "saw", "friends", "yesterday"]


def _tagged_sentences(n: int, seed: int) -> list[dict]:
    """Sentences whose names are PER and places LOC (IOB2): learnable from the words alone."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        tokens, tags = [], []
        for _ in range(rng.randint(4, 9)):
            kind = rng.random()
            word, tag = ((rng.choice(PEOPLE), "B-PER") if kind < 0.2 else (rng.choice(PLACES), "B-LOC")
                         if kind < 0.4 else (rng.choice(FILLER), "O"))
            tokens.append(word)
            tags.append(tag)
        rows.append({"tokens": tokens, "tags": tags})
    return rows


def token_classification(work: Path) -> TaskFixture:
    from transformers import BertForTokenClassification

    train = _jsonl(work / "data" / "train.jsonl", _tagged_sentences(240, 0))
    validation = _jsonl(work / "data" / "validation.jsonl", _tagged_sentences(40, 1))
    fast = _wordpiece(work / "model", [" ".join(PEOPLE + PLACES + FILLER)] * 4, 100)
    model = _bert(work / "model", BertForTokenClassification, fast.vocab_size, num_labels=3)

    def probe(pipe) -> str:
        found = pipe("anna went to paris")
        assert isinstance(found, list) and all("entity" in f or "entity_group" in f for f in found), found
        return f"{len(found)} entities"

    return TaskFixture(["--model_name_or_path", str(model), "--train_file", str(train), "--validation_file",
                        str(validation), "--num_train_epochs", "4", "--learning_rate", "3e-3",
                        "--per_device_train_batch_size", "16", "--logging_steps", "3"], probe,
                       "BERT 2 layers x 64 (random init)")


BUILDERS: dict[str, Callable[[Path], TaskFixture]] = {
    "text_classification": text_classification, "question_answering": question_answering,
    "translation": translation, "image_classification": image_classification,
    "object_detection": object_detection, "semantic_segmentation": semantic_segmentation,
    "token_classification": token_classification,
}


def minilm_shape(out: Path, corpus: list[str]) -> Path:
    """A random-init BERT of all-MiniLM-L6-v2's shape (its weights, 90 MB, do not travel), 3 labels."""
    from transformers import BertForSequenceClassification

    fast = _wordpiece(out, corpus, 30522)  # the tokenizer covers the corpus; the embedding keeps MiniLM's size
    assert fast.vocab_size <= 30522
    return _bert(out, BertForSequenceClassification, 30522, hidden_size=384, num_hidden_layers=6,
                 num_attention_heads=12, intermediate_size=1536, max_position_embeddings=512, num_labels=3)
