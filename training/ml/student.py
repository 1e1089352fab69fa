"""Building the student: a plain folder, LoRA adapters on a base, or K of the teacher's N layers.

Deriving copies embeddings, final norm, head and the kept layers verbatim (DistilBERT-style initialisation),
so the student starts close to the teacher instead of from noise.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from training.ml.config import TrainConfig

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

_LAYER_KEY = re.compile(r"(^|\.)layers\.(\d+)\.")


@dataclass
class Student:
    model: Any  # PreTrainedModel, or a peft PeftModel for "lora"
    tokenizer: PreTrainedTokenizerBase
    teacher_params: int | None
    student_params: int
    trainable_params: int
    kept_layers: list[int] | None = None
    teacher: PreTrainedModel | None = None  # loaded only for logit distillation
    notes: dict[str, Any] = field(default_factory=dict)


def evenly_spaced_layers(total: int, keep: int) -> list[int]:
    """First and last layer always kept, the rest spread evenly (10 of 30 -> 0,3,6,10,13,16,19,23,26,29)."""
    if not 1 <= keep <= total:
        raise ValueError(f"cannot keep {keep} of {total} layers")
    if keep == 1:
        return [total - 1]
    return [round(i * (total - 1) / (keep - 1)) for i in range(keep)]


def count_params(model: torch.nn.Module) -> int:
    """Unique parameters: tied embedding and head are one tensor and count once."""
    seen: set[int] = set()
    total = 0
    for p in model.parameters():
        if id(p) not in seen:
            seen.add(id(p))
            total += p.numel()
    return total


def count_params_in_folder(path: Path | str) -> int:
    """Parameter count from the config alone, on the meta device: no weights are read."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(path)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    return count_params(model)


def load_causal_lm(path: Path | str, dtype: torch.dtype | None = None) -> PreTrainedModel:
    import torch
    from transformers import AutoModelForCausalLM

    # transformers 5 takes the dtype from the saved config; training wants fp32 master weights unless told.
    return AutoModelForCausalLM.from_pretrained(path, dtype=dtype or torch.float32)


def load_tokenizer(path: Path | str) -> PreTrainedTokenizerBase:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if not tokenizer.chat_template:
        raise ValueError(f"the tokenizer in {path} has no chat template; the exported data are conversations")
    return tokenizer


def derive_student(
    teacher: PreTrainedModel, keep: int, *, layers: list[int] | None = None
) -> tuple[PreTrainedModel, list[int]]:
    """A new model with `keep` of the teacher's layers (evenly spaced unless `layers` names them); every weight
    copied, none left at random init."""
    import copy

    from transformers import AutoModelForCausalLM

    total = teacher.config.num_hidden_layers
    kept = sorted(layers) if layers is not None else evenly_spaced_layers(total, keep)
    if len(set(kept)) != keep or not all(0 <= i < total for i in kept):
        raise ValueError(f"layers {kept} are not {keep} distinct layers of {total}")
    config = copy.deepcopy(teacher.config)
    config.num_hidden_layers = keep
    # Hybrid models (sliding/full attention per layer) list a type per layer: keep the kept layers' types.
    if isinstance(getattr(config, "layer_types", None), list) and len(config.layer_types) == total:
        config.layer_types = [config.layer_types[i] for i in kept]
    student = AutoModelForCausalLM.from_config(config, dtype=teacher.dtype)

    new_index = {old: new for new, old in enumerate(kept)}
    state: dict[str, torch.Tensor] = {}
    for key, tensor in teacher.state_dict().items():
        match = _LAYER_KEY.search(key)
        if match is None:
            state[key] = tensor.clone()
            continue
        old = int(match.group(2))
        if old in new_index:
            start, end = match.span(2)
            state[key[:start] + str(new_index[old]) + key[end:]] = tensor.clone()
    # strict=True: a missing or unexpected key means the copy is wrong, and training would hide it.
    student.load_state_dict(state, strict=True)
    if getattr(teacher, "generation_config", None) is not None:
        student.generation_config = copy.deepcopy(teacher.generation_config)
    return student, kept


def needs_live_teacher(config: TrainConfig) -> bool:
    """The teacher's forward pass runs at every step: on-policy always, logit KD unless its logits are cached."""
    return config.method == "onpolicy" or (config.method == "kd" and not config.logit_cache_dir)


def build_student(config: TrainConfig) -> Student:
    """Load or build the student; the teacher too when it is needed (derive, live KD), once for both uses."""
    import gc

    source = config.student_source
    teacher = None
    if source == "derive" or needs_live_teacher(config):
        teacher = load_causal_lm(config.teacher_path)
        teacher.eval().requires_grad_(False)
    teacher_params = count_params(teacher) if teacher is not None else None
    if teacher_params is None and config.teacher_path:
        teacher_params = count_params_in_folder(config.teacher_path)
    kd_teacher = teacher if needs_live_teacher(config) else None

    if source == "derive":
        tokenizer = load_tokenizer(config.teacher_path)
        notes: dict[str, Any] = {}
        layers = None
        if config.layer_selection == "importance":
            from training.ml.data import read_jsonl
            from training.ml.pruning import select_layers

            selection = select_layers(
                teacher, tokenizer, read_jsonl(config.train_file), config.keep_layers,
                max_examples=config.calibration_examples, max_len=min(config.max_seq_len, 512),
            )
            layers = selection.kept
            notes["layer_selection"] = selection.to_dict()
        model, kept = derive_student(teacher, config.keep_layers, layers=layers)
        model.requires_grad_(True)
        params = count_params(model)
        if kd_teacher is None:
            del teacher
            gc.collect()  # the cached-logit path must not keep the teacher's weights around
        return Student(
            model, tokenizer, teacher_params, params, params, kept_layers=kept, teacher=kd_teacher, notes=notes
        )

    tokenizer = load_tokenizer(config.student_path)
    model = load_causal_lm(config.student_path)
    params = count_params(model)
    if source == "folder":
        return Student(model, tokenizer, teacher_params, params, params, teacher=kd_teacher)

    from peft import LoraConfig, get_peft_model

    lora = LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules="all-linear",
        task_type="CAUSAL_LM",
    )
    model = get_peft_model(model, lora)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    # Merged on export, so the exported student has exactly the base's parameter count.
    return Student(
        model, tokenizer, teacher_params, params, trainable, teacher=kd_teacher, notes={"lora_r": config.lora_r}
    )


def eos_token_ids(model: Any, tokenizer: Any) -> list[int]:
    """Every id that ends a reply: the generation config's (one or a list) and the tokenizer's eos."""
    configured = model.generation_config.eos_token_id
    ids = configured if isinstance(configured, list) else [configured]
    ids = [i for i in ids if i is not None]
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(tokenizer.eos_token_id)
    return ids


def export_student(model: Any, tokenizer: PreTrainedTokenizerBase, folder: Path) -> Path:
    """Save safetensors + tokenizer (with its chat template); LoRA adapters are merged into the base first."""
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    folder.mkdir(parents=True, exist_ok=True)
    model.config.use_cache = True  # training turned the cache off; generation wants it back
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
