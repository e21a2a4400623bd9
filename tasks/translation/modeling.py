"""Translation models: a small Marian trained from scratch (with its own tokenizer), bert2bert, or any seq2seq model."""
from __future__ import annotations

import hashlib
import json

from filelock import FileLock
from transformers import (AutoConfig, AutoModelForSeq2SeqLM, AutoTokenizer, EncoderDecoderModel, MarianConfig,
                          MarianMTModel, PreTrainedTokenizerFast)

from shared.toolkit.models import cache_dir, resolve_model
from tasks.translation.pipeline import input_limit

SCRATCH = "marian-scratch"
SPECIALS = ["<pad>", "</s>", "<unk>"]  # ids 0, 1, 2: pad doubles as Marian's decoder start token


def train_tokenizer(texts: list[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """A joint BPE tokenizer over both languages: Metaspace keeps spaces reversible, </s> is appended."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.normalizer = normalizers.NFKC()
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    tokenizer.decoder = decoders.Metaspace()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIALS, show_progress=False)
    tokenizer.train_from_iterator(texts, trainer)
    tokenizer.post_processor = processors.TemplateProcessing(
        single="$A </s>", pair="$A $B </s>", special_tokens=[("</s>", SPECIALS.index("</s>"))])
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")


def scratch_tokenizer(texts: list[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """The tokenizer for these texts, trained once and cached by content, so every process of a launch
    and every resumed run gets the very same vocabulary."""
    digest = hashlib.sha256(json.dumps([vocab_size, texts]).encode()).hexdigest()[:16]
    target = cache_dir() / "tokenizers" / f"bpe-{digest}"
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if not (target / "tokenizer.json").is_file():
            train_tokenizer(texts, vocab_size).save_pretrained(target)
    return AutoTokenizer.from_pretrained(target)


def marian_from_scratch(cfg, tokenizer) -> MarianMTModel:
    """A randomly initialised Marian transformer sized by the --d_model/--*_layers/... flags."""
    config = MarianConfig(
        vocab_size=len(tokenizer), decoder_vocab_size=len(tokenizer), d_model=cfg.d_model,
        encoder_layers=cfg.encoder_layers, decoder_layers=cfg.decoder_layers,
        encoder_attention_heads=cfg.attention_heads, decoder_attention_heads=cfg.attention_heads,
        encoder_ffn_dim=cfg.ffn_dim, decoder_ffn_dim=cfg.ffn_dim, dropout=cfg.dropout,
        max_position_embeddings=cfg.max_position_embeddings,  # sinusoidal: sized for use, not for the training data
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.pad_token_id, forced_eos_token_id=tokenizer.eos_token_id,
        share_encoder_decoder_embeddings=True, scale_embedding=True)  # unscaled embeddings drown under the positions
    return MarianMTModel(config)


def bert2bert(path: str, tokenizer) -> EncoderDecoderModel:
    """An encoder-decoder warm-started from one encoder checkpoint (decoder gains cross-attention)."""
    model = EncoderDecoderModel.from_encoder_decoder_pretrained(path, path)
    # generation and the label shift need these; BERT-style: start with [CLS], stop at [SEP]
    ids = {"decoder_start_token_id": tokenizer.cls_token_id, "pad_token_id": tokenizer.pad_token_id,
           "eos_token_id": tokenizer.sep_token_id}
    for config in (model.config, model.generation_config):
        for name, value in ids.items():
            setattr(config, name, value)
    model.config.vocab_size = model.config.decoder.vocab_size
    # not in an encoder checkpoint: randomly initialised, so LoRA trains them in full (Task.head_modules)
    model.fresh_modules = [name for name, _ in model.named_modules()
                           if name.endswith(("crossattention", "cls.predictions.transform"))]
    return model


def build_tokenizer(cfg, train_texts: list[str]):
    if cfg.model_name_or_path == SCRATCH:
        tokenizer = scratch_tokenizer(train_texts, cfg.vocab_size)
        tokenizer.model_max_length = cfg.max_position_embeddings  # saved: the real limit, not the training length
        return tokenizer
    return AutoTokenizer.from_pretrained(resolve_model(cfg.model_name_or_path))


def build_seq2seq(cfg, tokenizer):
    """marian-scratch, an encoder-only checkpoint (bert2bert, e.g. 'minilm'), or a seq2seq hub id / dir."""
    if cfg.model_name_or_path == SCRATCH:
        model = marian_from_scratch(cfg, tokenizer)
    else:
        path = resolve_model(cfg.model_name_or_path)
        config = AutoConfig.from_pretrained(path)
        model = AutoModelForSeq2SeqLM.from_pretrained(path) if config.is_encoder_decoder else bert2bert(path, tokenizer)
    # saved with the model, so pipeline() translates the way evaluation did
    model.generation_config.num_beams = cfg.num_beams
    model.generation_config.max_length = cfg.generation_length()
    for name in ("no_repeat_ngram_size", "repetition_penalty", "length_penalty"):
        setattr(model.generation_config, name, getattr(cfg, name))
    if cfg.source_prefix:
        model.config.prefix = cfg.source_prefix
    # the real input limit, and the length training saw (the pipeline splits sentences beyond it)
    model.config.max_input_length = input_limit(model.config, tokenizer)
    model.config.max_source_length = cfg.max_source_length
    return model
