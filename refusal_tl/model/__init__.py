"""Loading a chat model: the bundled offline Qwen, HF ids, folders, GGUF; its chat format."""

from refusal_tl.model.chat import Batch, ChatFormat
from refusal_tl.model.load import RefusalModel, load_model, wrap_hf_model

__all__ = ["Batch", "ChatFormat", "RefusalModel", "load_model", "wrap_hf_model"]
