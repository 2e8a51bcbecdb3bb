"""Checks an adapter folder before it goes near the server: files present and readable, rank within the
server's maximum, built for the served base model, and only LoRA on layers vLLM serves."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from core.grounding import Grounding
from core.grounding import load as load_grounding
from inference.errors import AdapterInvalid

CONFIG_FILE = "adapter_config.json"
# what vLLM applies LoRA to in a Llama-style model: every linear projection, and the output head (its logits
# processor takes a LoRA too); embeddings and whole saved modules are not served
SERVED_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "lm_head")
WEIGHT_FILES = ("adapter_model.safetensors", "adapter_model.bin")


@dataclass(frozen=True)
class AdapterInfo:
    path: Path
    rank: int
    base_model: str
    target_modules: tuple[str, ...]


def same_model(a: str, b: str) -> bool:
    """Paths compare resolved; ids compare as written."""
    if a == b:
        return True
    pa, pb = Path(a).expanduser(), Path(b).expanduser()
    return pa.exists() and pb.exists() and pa.resolve() == pb.resolve()


def inspect_adapter(path: Path, base_model: str, max_rank: int) -> AdapterInfo:
    """The adapter's facts, or `AdapterInvalid` with the reason the server would refuse it (or worse)."""
    config_path = path / CONFIG_FILE
    if not path.is_dir() or not config_path.is_file():
        raise AdapterInvalid("missing_files", f"adapter at {path} has no {CONFIG_FILE}")
    try:
        config = json.loads(config_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, OSError) as exc:
        raise AdapterInvalid("corrupt_files", f"{config_path} is not readable JSON: {exc}") from None
    if not isinstance(config, dict):
        raise AdapterInvalid("corrupt_files", f"{config_path} holds a {type(config).__name__}, not an object")
    weights = next((path / f for f in WEIGHT_FILES if (path / f).is_file()), None)
    if weights is None:
        raise AdapterInvalid("missing_files", f"adapter at {path} has no weights ({' or '.join(WEIGHT_FILES)})")
    if weights.suffix == ".safetensors":
        _check_safetensors(weights)
    rank = config.get("r", 0)
    if isinstance(rank, bool) or not isinstance(rank, int) or rank < 1:
        raise AdapterInvalid("corrupt_files", f"{config_path}: rank r={config.get('r')!r} is not a positive integer")
    if rank > max_rank:
        raise AdapterInvalid("rank_too_large", f"adapter rank {rank} exceeds the server's maximum {max_rank}")
    trained_on = config.get("base_model_name_or_path") or ""
    if not isinstance(trained_on, str):
        raise AdapterInvalid("corrupt_files", f"{config_path}: base_model_name_or_path={trained_on!r} is not a string")
    if not same_model(trained_on, base_model):
        raise AdapterInvalid("wrong_base_model", f"adapter was trained on {trained_on!r}, the server serves {base_model!r}")
    if config.get("modules_to_save"):
        raise AdapterInvalid("unservable", f"adapter saves whole modules {config['modules_to_save']}; "
                                           "vLLM serves LoRA on linear layers only")
    raw = config.get("target_modules") or []
    if not isinstance(raw, (list, str)) or (isinstance(raw, list) and not all(isinstance(t, str) for t in raw)):
        raise AdapterInvalid("corrupt_files", f"{config_path}: target_modules={raw!r} is neither a name nor a list of names")
    targets = tuple(raw) if isinstance(raw, list) else (raw,)
    unserved = [t for t in targets if t.rsplit(".", 1)[-1] not in SERVED_MODULES]
    if isinstance(raw, list) and unserved:
        raise AdapterInvalid("unservable", f"adapter targets {unserved}; vLLM serves LoRA on {', '.join(SERVED_MODULES)}")
    return AdapterInfo(path, rank, trained_on, targets)


META_FILE = "cda_adapter.json"  # the trainer's record of the version (`trainer.registry`)


def check_prompt_version(path: Path, current: int) -> None:
    """Refuse an adapter the trainer made for another prompt format: it would be asked in words it never saw.
    A folder without the trainer's record (placed by hand) cannot tell, and is let through."""
    meta_path = path / META_FILE
    if not meta_path.is_file():
        return
    try:
        meta = json.loads(meta_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, OSError) as exc:
        raise AdapterInvalid("corrupt_files", f"{meta_path} is not readable JSON: {exc}") from None
    trained_for = meta.get("prompt_version", 1) if isinstance(meta, dict) else None
    if trained_for != current:
        raise AdapterInvalid("wrong_prompt_version", f"adapter was trained for prompt version {trained_for!r}, "
                                                     f"this server asks in prompt version {current}")


def _check_safetensors(weights: Path) -> None:
    """A safetensors file must hold a readable header and every tensor's bytes."""
    try:
        from safetensors import safe_open
    except ImportError:  # the slim install: header check only
        safe_open = None
    try:
        if safe_open is not None:
            with safe_open(str(weights), framework="numpy") as handle:
                if not list(handle.keys()):
                    raise AdapterInvalid("corrupt_files", f"{weights} holds no tensors")
                for key in handle.keys():
                    handle.get_slice(key)
        else:
            json.loads(weights.read_bytes()[8:8 + int.from_bytes(weights.read_bytes()[:8], "little")])
    except AdapterInvalid:
        raise
    except Exception as exc:
        raise AdapterInvalid("corrupt_files", f"{weights} is not a readable safetensors file: {exc}") from None


def read_grounding(path: Path) -> Grounding:
    """The grounding rules the trainer left beside the weights (none for a folder without them)."""
    try:
        return load_grounding(path)
    except ValueError as exc:
        raise AdapterInvalid("corrupt_files", str(exc)) from None
