"""The files of the demo release: a tiny but real checkpoint, its config and its tokenizer.

Each file is a few kilobytes and is generated, byte for byte the same on every run (no randomness), so that
re-seeding the demo produces the same sha256 sums. The checkpoint follows the safetensors format
(https://github.com/huggingface/safetensors#format): an 8-byte little-endian header length, a JSON header
naming each tensor's dtype, shape and byte range, then the raw little-endian tensor data. It is written by
hand here so that the demo needs no machine-learning library; ``safetensors.safe_open`` reads it.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass

VOCAB_SIZE = 64
HIDDEN_SIZE = 8
INTERMEDIATE_SIZE = 16
ATTENTION_HEADS = 2
SPECIAL_TOKENS = ("<pad>", "<unk>", "<s>", "</s>")
_WORDS = (
    "the of and to a in is it that for on with as was be by this are or at from an have not but which "
    "they you he we can model open weights release license access research safety data train eval token "
    "layer head attention vector matrix learn"
).split()


@dataclass(frozen=True, slots=True)
class DemoFile:
    path: str
    body: bytes
    content_type: str


def safetensors_bytes(
    tensors: dict[str, tuple[tuple[int, ...], list[float]]], metadata: dict[str, str]
) -> bytes:
    """Serialise float32 tensors, given as ``name: (shape, flat values)``, in the safetensors format.

    Tensors are laid out in name order with no gaps, as the format requires; the header is padded with
    spaces to a multiple of 8 bytes so that the data that follows is aligned.
    """
    header: dict[str, object] = {"__metadata__": metadata}
    data = bytearray()
    for name in sorted(tensors):
        shape, values = tensors[name]
        if math.prod(shape) != len(values):
            raise ValueError(f"Tensor {name} has shape {shape} but {len(values)} values.")
        raw = struct.pack(f"<{len(values)}f", *values)
        header[name] = {
            "dtype": "F32",
            "shape": list(shape),
            "data_offsets": [len(data), len(data) + len(raw)],
        }
        data += raw
    header_bytes = json.dumps(header, separators=(",", ":")).encode("utf-8")
    header_bytes += b" " * (-len(header_bytes) % 8)
    return struct.pack("<Q", len(header_bytes)) + header_bytes + bytes(data)


def _values(count: int, phase: float) -> list[float]:
    """Small deterministic weights, in the range a freshly initialised layer would have."""
    return [round(0.02 * math.sin(phase + 0.37 * index), 6) for index in range(count)]


def _checkpoint() -> bytes:
    shapes: dict[str, tuple[int, ...]] = {
        "model.embed_tokens.weight": (VOCAB_SIZE, HIDDEN_SIZE),
        "model.layers.0.input_layernorm.weight": (HIDDEN_SIZE,),
        "model.layers.0.self_attn.q_proj.weight": (HIDDEN_SIZE, HIDDEN_SIZE),
        "model.layers.0.self_attn.k_proj.weight": (HIDDEN_SIZE, HIDDEN_SIZE),
        "model.layers.0.self_attn.v_proj.weight": (HIDDEN_SIZE, HIDDEN_SIZE),
        "model.layers.0.self_attn.o_proj.weight": (HIDDEN_SIZE, HIDDEN_SIZE),
        "model.layers.0.post_attention_layernorm.weight": (HIDDEN_SIZE,),
        "model.layers.0.mlp.gate_proj.weight": (INTERMEDIATE_SIZE, HIDDEN_SIZE),
        "model.layers.0.mlp.up_proj.weight": (INTERMEDIATE_SIZE, HIDDEN_SIZE),
        "model.layers.0.mlp.down_proj.weight": (HIDDEN_SIZE, INTERMEDIATE_SIZE),
        "model.norm.weight": (HIDDEN_SIZE,),
    }
    tensors = {}
    for phase, (name, shape) in enumerate(sorted(shapes.items())):
        # Norm weights start at one, as in a real initialisation.
        values = (
            [1.0] * math.prod(shape) if name.endswith("norm.weight") else _values(math.prod(shape), phase)
        )
        tensors[name] = (shape, values)
    return safetensors_bytes(tensors, {"format": "pt"})


def _config() -> dict:
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": VOCAB_SIZE,
        "hidden_size": HIDDEN_SIZE,
        "intermediate_size": INTERMEDIATE_SIZE,
        "num_hidden_layers": 1,
        "num_attention_heads": ATTENTION_HEADS,
        "num_key_value_heads": ATTENTION_HEADS,
        "max_position_embeddings": 128,
        "rms_norm_eps": 1e-6,
        "hidden_act": "silu",
        "tie_word_embeddings": True,
        "pad_token_id": 0,
        "bos_token_id": 2,
        "eos_token_id": 3,
        "torch_dtype": "float32",
    }


def _tokenizer() -> dict:
    """A word-level tokenizer in the Hugging Face ``tokenizers`` JSON format."""
    tokens = [*SPECIAL_TOKENS, *_WORDS][:VOCAB_SIZE]
    tokens += [f"<extra_{index}>" for index in range(VOCAB_SIZE - len(tokens))]
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [
            {
                "id": index,
                "content": token,
                "single_word": False,
                "lstrip": False,
                "rstrip": False,
                "normalized": False,
                "special": True,
            }
            for index, token in enumerate(SPECIAL_TOKENS)
        ],
        "normalizer": {"type": "Lowercase"},
        "pre_tokenizer": {"type": "Whitespace"},
        "post_processor": None,
        "decoder": None,
        "model": {
            "type": "WordLevel",
            "vocab": {token: index for index, token in enumerate(tokens)},
            "unk_token": "<unk>",
        },
    }


def _json_bytes(document: dict) -> bytes:
    return (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def demo_release_files() -> list[DemoFile]:
    """The files of the demo release ``acme/llama-lite v1.0``, in path order."""
    return [
        DemoFile("config.json", _json_bytes(_config()), "application/json"),
        DemoFile("model.safetensors", _checkpoint(), "application/octet-stream"),
        DemoFile("tokenizer.json", _json_bytes(_tokenizer()), "application/json"),
    ]
