"""A tiny random Qwen3 and its tokenizer, built here in seconds with nothing downloaded.

For checking a training loop end to end (supervised warm-start, then GRPO through
both doors) on a CPU before a real model runs it on a GPU: the same script takes
`--model Qwen/...` there. The tokenizer is a byte-level BPE trained with `tokenizers`
on the conversations it will see, with the special tokens of Qwen3's chat format, and
uses TRL's own Qwen3 chat template (`trl.chat_template_utils.qwen3_chat_template`), so
TRL parses its tool calls as it parses a real Qwen3's.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
MARKUP_TOKENS = ("<think>", "</think>", "<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>")
"""Added as plain (not special) tokens, as in Qwen3: they must survive decoding."""


def tiny_tokenizer(texts: Iterable[str], vocab_size: int = 800) -> Any:
    """A `PreTrainedTokenizerFast` trained on `texts` (rendered conversations), with Qwen3's
    chat template. Left padding, `<|im_end|>` as end of turn, as TRL expects for generation."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast
    from trl.chat_template_utils import qwen3_chat_template

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tokenizer.train_from_iterator([*texts, "<think>\n\n</think>\n\n"], trainer)
    tokenizer.add_tokens([AddedToken(token, special=False, normalized=False) for token in MARKUP_TOKENS])
    wrapped = PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=tokenizer, eos_token="<|im_end|>", pad_token="<|endoftext|>", padding_side="left")
    # Exactly TRL's template: TRL recognises it by its text to parse tool calls.
    wrapped.chat_template = qwen3_chat_template
    return wrapped


def render(conversations: Iterable[dict[str, Any]]) -> list[str]:
    """Conversations (`messages`, optional `tools` as JSON text) as the chat template writes them,
    for training the tokenizer on what it will read."""
    import json

    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast
    from trl.chat_template_utils import qwen3_chat_template

    writer = PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=Tokenizer(models.WordLevel({"x": 0}, unk_token="x")))
    writer.chat_template = qwen3_chat_template
    texts = []
    for conversation in conversations:
        tools = conversation.get("tools")
        texts.append(str(writer.apply_chat_template(conversation["messages"],
                                                    tools=json.loads(tools) if tools else None, tokenize=False)))
    return texts


def tiny_qwen3(tokenizer: Any, hidden_size: int = 64, layers: int = 2, seed: int = 0) -> Any:
    """A randomly initialised Qwen3 for `tokenizer` (about 0.1M parameters at the defaults)."""
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

    torch.manual_seed(seed)
    config = Qwen3Config(vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=2 * hidden_size,
                         num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                         head_dim=hidden_size // 4, max_position_embeddings=4096, tie_word_embeddings=True,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, bos_token_id=None)
    model = Qwen3ForCausalLM(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model


__all__ = ["render", "tiny_qwen3", "tiny_tokenizer"]
