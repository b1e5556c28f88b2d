"""A tiny random-weight Llama model with a locally trained tokenizer and a ChatML chat template,
for tests and CPU benchmarks: the whole LLM path (templates, batching, parsing, logging) runs on
it in a fraction of a second, and nothing is downloaded.

    python -m equity_backtest.llm.tiny OUT_DIR
"""

from __future__ import annotations

import sys
from pathlib import Path

CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>"]


def _corpus() -> list[str]:
    """Text like what the model will see and say: statement lines, numbers and JSON answers."""
    from .prompts import BALANCE, CASH_FLOW, INCOME, TEMPLATES

    lines = [p.read_text(encoding="utf-8") for p in sorted(TEMPLATES.glob("*.toml"))]
    lines += [" ".join(INCOME + BALANCE + CASH_FLOW)] * 3
    for d in ("BUY", "SELL", "HOLD"):
        for c in range(0, 101, 7):
            lines.append(f'{{"decision": "{d}", "confidence": {c}, "reason": "margin and growth"}}')
    lines += [
        f"{x:,.1f}  {x / 3:.2f}  {x * 7:.1f} 2020-03-31 t-1 t-2 m-3" for x in range(1, 400, 13)
    ]
    return lines


def build(
    out_dir: str | Path, *, vocab_size: int = 600, hidden: int = 64, layers: int = 2, seed: int = 0
) -> Path:
    """Train the tokenizer, make a random Llama of that vocabulary, save both to out_dir."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    out = Path(out_dir)
    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(), trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        padding_side="left",
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(out)
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(fast),
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        bos_token_id=fast.bos_token_id,
        eos_token_id=fast.eos_token_id,
        pad_token_id=fast.pad_token_id,
        tie_word_embeddings=True,
    )
    model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = fast.pad_token_id
    model.save_pretrained(out)
    return out


if __name__ == "__main__":
    print(build(sys.argv[1]))
