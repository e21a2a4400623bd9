"""Run a training script in this process and record its peak GPU memory and the BERT tokens it trained on.

    python benchmarks/gpu/measure.py OUT.json SCRIPT [script flags]

Both sides of a speed pair (our train.py, the transformers.Trainer baseline) run under this wrapper, so the
memory and token counts come from the same place and neither script needs code of its own for them.
"""
from __future__ import annotations

import json
import resource
import runpy
import sys

import torch


def count_bert_tokens(counts: dict) -> None:
    """Wrap BertModel.forward: per training forward, add batch x length and batch x length^2 (attention)."""
    from transformers.models.bert import modeling_bert

    forward = modeling_bert.BertModel.forward

    def counted(self, input_ids=None, *args, **kwargs):
        if self.training and input_ids is not None:
            batch, length = input_ids.shape
            counts["train_tokens"] += batch * length
            counts["train_token_squares"] += batch * length * length
            counts["train_forwards"] += 1
        return forward(self, input_ids, *args, **kwargs)

    modeling_bert.BertModel.forward = counted


def main() -> None:
    out, script, args = sys.argv[1], sys.argv[2], sys.argv[3:]
    counts = {"train_tokens": 0, "train_token_squares": 0, "train_forwards": 0}
    count_bert_tokens(counts)
    sys.argv = [script, *args]
    try:
        runpy.run_path(script, run_name="__main__")
    finally:
        cuda = torch.cuda.is_available() and torch.cuda.is_initialized()
        record = {**counts, "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                  "max_memory_allocated_mb": round(torch.cuda.max_memory_allocated() / 2 ** 20, 1) if cuda else None,
                  "max_memory_reserved_mb": round(torch.cuda.max_memory_reserved() / 2 ** 20, 1) if cuda else None}
        with open(out, "w") as handle:
            json.dump(record, handle, indent=1)


if __name__ == "__main__":
    main()
