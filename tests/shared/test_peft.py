"""LoRA on every task's model: adapters on the pretrained part, new heads trained in full, nothing else moves."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from shared.training.peft_utils import apply_peft
from shared.task import get_task
from tests.helpers import build_task

LORA = SimpleNamespace(lora_r=4, lora_alpha=8, lora_dropout=0.0, lora_target_modules=None)


def _bert(kind, tiny_bert_dir):
    import transformers

    return getattr(transformers, kind).from_pretrained(tiny_bert_dir, num_labels=2)


def _bert2bert(tiny_bert_dir):
    from transformers import AutoTokenizer

    from tasks.translation.modeling import bert2bert

    return bert2bert(str(tiny_bert_dir), AutoTokenizer.from_pretrained(tiny_bert_dir))


def _dense_detector(_):
    from tasks.object_detection.modeling_dense_detector import DenseDetectorConfig, DenseDetectorForObjectDetection

    return DenseDetectorForObjectDetection(DenseDetectorConfig(backbone="test_convnext", out_indices=[1, 2, 3],
                                                               neck_channels=16, head_convs=1, num_labels=2))


def _conditional_detr(_):
    from transformers import ConditionalDetrConfig, ConditionalDetrForObjectDetection, TimmBackboneConfig

    config = ConditionalDetrConfig(backbone_config=TimmBackboneConfig(backbone="test_convnext", out_indices=[3]),
                                   d_model=32, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
                                   decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32, num_queries=5,
                                   num_labels=2)
    return ConditionalDetrForObjectDetection(config)


def _segformer(_):
    from transformers import SegformerConfig, SegformerForSemanticSegmentation

    return SegformerForSemanticSegmentation(SegformerConfig(
        num_encoder_blocks=2, depths=[1, 1], sr_ratios=[2, 1], hidden_sizes=[16, 32], patch_sizes=[3, 3],
        strides=[2, 2], num_attention_heads=[1, 2], mlp_ratios=[2, 2], decoder_hidden_size=16, num_labels=2))


CASES = {  # task -> (model builder, head modules that must train in full)
    "text_classification": (lambda d: _bert("BertForSequenceClassification", d), ["classifier"]),
    "question_answering": (lambda d: _bert("BertForQuestionAnswering", d), ["qa_outputs"]),
    "translation": (_bert2bert, ["crossattention", "cls.predictions.transform"]),
    "object_detection": (_dense_detector, ["lateral", "smooth", "heatmap_head", "box_head"]),
    "semantic_segmentation": (_segformer, ["decode_head"]),
    "token_classification": (lambda d: _bert("BertForTokenClassification", d), ["classifier"]),
}


def _trainable_split(wrapped, heads: list[str]) -> tuple[set, set, set]:
    """(LoRA parameters, head parameters, other trainable parameters) of a peft-wrapped model."""
    lora, head, other = set(), set(), set()
    for name, param in wrapped.named_parameters():
        if not param.requires_grad:
            continue
        if "lora_" in name:
            lora.add(name)
        elif "modules_to_save" in name and any(h in name for h in heads):
            head.add(name)
        else:
            other.add(name)
    return lora, head, other


@pytest.mark.parametrize("task_name", list(CASES))
def test_lora_adapts_the_pretrained_part_and_trains_new_heads_in_full(task_name, tiny_bert_dir):
    build, heads = CASES[task_name]
    torch.manual_seed(0)
    model = build(tiny_bert_dir)
    task = build_task(task_name)
    head_sizes = {n: p.numel() for n, p in model.named_parameters() if any(h in n for h in heads)}
    wrapped = apply_peft(model, LORA, task, log=lambda _: None)
    lora, head, other = _trainable_split(wrapped, heads)
    assert lora, f"{task_name}: no LoRA adapter was added"
    assert not other, f"{task_name}: trainable outside LoRA and the heads: {sorted(other)[:5]}"
    trained_head = sum(p.numel() for n, p in wrapped.named_parameters() if n in head)
    assert trained_head == sum(head_sizes.values()), f"{task_name}: a head is not trained in full"


def test_detr_keeps_its_new_transformer_and_heads_trainable_and_adapts_the_backbone(tiny_bert_dir):
    task = build_task("object_detection")
    model = _conditional_detr(tiny_bert_dir)
    heads = task.head_modules(model)
    assert "model.backbone" not in heads and "class_labels_classifier" in heads and "model.encoder" in heads
    wrapped = apply_peft(model, LORA, task, log=lambda _: None)
    lora, _, _ = _trainable_split(wrapped, heads)
    assert lora and all("backbone" in name for name in lora)


def test_lora_is_refused_for_a_translation_model_trained_from_scratch():
    from shared.toolkit.config import ConfigError, parse_config

    with pytest.raises(ConfigError, match="marian-scratch starts from random"):
        parse_config(get_task("translation").config_class, ["--use_peft"])
