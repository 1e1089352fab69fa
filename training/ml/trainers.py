"""Trainer subclasses: SFT, logit distillation (live or cached teacher) and on-policy distillation share one
loss; DPO is TRL's DPOTrainer.

Why a hand-written distillation loss: TRL's `trl.experimental.gkd` computes its generalised JSD at temperature 1
whatever `GKDConfig.temperature` says (that only affects sampling), and TRL's `DistillationTrainer` trains
on-policy only (the student generates every completion). We distil off-policy on the curated replies, with a
temperature and a cross-entropy weight, which is a few lines on top of the Trainer.
"""

from __future__ import annotations

import inspect
import math
from typing import Any

import torch
import torch.nn.functional as F
from transformers import Trainer, TrainingArguments

from training.ml.config import TrainConfig
from training.ml.data import IGNORE


def divergence(student_logits: torch.Tensor, teacher_logits: torch.Tensor, *, temperature: float, beta: float):
    """Per-token generalised JSD between softened distributions (rows = tokens, columns = vocabulary).

    beta = 0 is forward KL(teacher || student), beta = 1 reverse KL(student || teacher); in between, the
    mixture is beta * teacher + (1 - beta) * student, as in TRL's GKD, so the numbers are comparable.
    """
    s = F.log_softmax(student_logits.float() / temperature, dim=-1)
    t = F.log_softmax(teacher_logits.float() / temperature, dim=-1)
    return divergence_from_log_probs(s, t, beta=beta)


def divergence_from_log_probs(s: torch.Tensor, t: torch.Tensor, *, beta: float) -> torch.Tensor:
    """The generalised JSD of `divergence`, on log-probabilities already softened and normalised."""
    if beta == 0.0:
        return F.kl_div(s, t, reduction="none", log_target=True).sum(-1)
    if beta == 1.0:
        return F.kl_div(t, s, reduction="none", log_target=True).sum(-1)
    mixture = torch.logsumexp(torch.stack([s + math.log(1.0 - beta), t + math.log(beta)]), dim=0)
    kl_teacher = F.kl_div(mixture, t, reduction="none", log_target=True).sum(-1)
    kl_student = F.kl_div(mixture, s, reduction="none", log_target=True).sum(-1)
    return beta * kl_teacher + (1.0 - beta) * kl_student


class TokenCountMixin:
    """Counts real (non-pad) input tokens into `state.num_input_tokens_seen`.

    The Trainer's own "non_padding" count falls back to `input_ids != pad_id` when a batch has no attention mask,
    which is wrong twice here: padding-free batches have no mask, and pad = eos, so every reply's end would be
    missed. Padding-free batches hold no padding at all, so their size is the count.
    """

    def training_step(self, model, inputs, num_items_in_batch=None):
        mask = inputs.get("attention_mask")
        count = mask.sum() if mask is not None else torch.tensor(inputs["input_ids"].numel())
        count = count.reshape(1).to(self.args.device)
        if self.accelerator.num_processes > 1:
            count = self.accelerator.gather(count)
        self.state.num_input_tokens_seen += int(count.sum().item())
        return super().training_step(model, inputs, num_items_in_batch)


class DistillTrainer(TokenCountMixin, Trainer):
    """Cross-entropy on the reply tokens, plus (with a teacher) a softened divergence to the teacher's logits.

    Logits are computed only where a reply token is predicted (`logits_to_keep` with a boolean mask): the
    vocabulary projection and softmax are a large share of a small model's compute, and prompt positions
    would be thrown away anyway.
    """

    # compute_loss divides by the token count of the whole accumulated batch itself.
    loss_is_scaled_for_ga = True

    def __init__(
        self,
        *args: Any,
        teacher: torch.nn.Module | None = None,
        train_config: TrainConfig,
        cached_teacher: bool = False,
        **kwargs: Any,
    ):
        super().__init__(*args, **kwargs)
        self.train_config = train_config
        self.teacher = teacher
        # The collator adds the teacher's cached top-k to each batch (training.ml.logit_cache).
        self.cached_teacher = cached_teacher
        # Always have the Trainer count target tokens over the accumulated batch (num_items_in_batch).
        self.model_accepts_loss_kwargs = True
        base = self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model
        self._slice_logits = "logits_to_keep" in inspect.signature(base.forward).parameters
        if teacher is not None:
            teacher.to(self.args.device)
            self._teacher_slices = "logits_to_keep" in inspect.signature(teacher.forward).parameters
        self._parts = {"ce": 0.0, "kd": 0.0, "n": 0}

    def _reply_logits(self, model, inputs: dict[str, torch.Tensor], keep: torch.Tensor, sliced: bool):
        if sliced:
            return model(**inputs, logits_to_keep=keep, use_cache=False).logits
        return model(**inputs, use_cache=False).logits[keep]

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        inputs = dict(inputs)
        labels = inputs.pop("labels")
        cached = (inputs.pop("teacher_values", None), inputs.pop("teacher_indices", None))
        targets = labels[:, 1:]
        valid = targets != IGNORE
        # Position i predicts token i + 1; the last position predicts nothing.
        keep = torch.cat([valid, torch.zeros_like(valid[:, :1])], dim=1)
        y = targets[valid]
        logits = self._reply_logits(model, inputs, keep, self._slice_logits)
        cfg = self.train_config
        # One full-vocabulary log-softmax serves the cross-entropy and, at temperature 1, the cached divergence:
        # the vocabulary projection and its softmax are a large share of a small student's step.
        log_probs = F.log_softmax(logits.float(), dim=-1)
        ce = F.nll_loss(log_probs, y, reduction="sum")
        loss_sum = ce
        if self.teacher is not None:
            with torch.no_grad():
                teacher_logits = self._reply_logits(self.teacher, inputs, keep, self._teacher_slices)
            vocab = min(logits.shape[-1], teacher_logits.shape[-1])  # heads may be padded past the tokenizer
            kd = divergence(
                logits[:, :vocab], teacher_logits[:, :vocab], temperature=cfg.kd_temperature, beta=cfg.kd_jsd_beta
            ).sum()
            # T^2 keeps the divergence's gradient scale independent of the temperature (Hinton et al.).
            loss_sum = cfg.kd_alpha * ce + (1.0 - cfg.kd_alpha) * cfg.kd_temperature**2 * kd
            self._parts["kd"] += float(kd.detach())
        elif self.cached_teacher:
            from training.ml.logit_cache import cached_divergence

            values, indices = cached
            kd = cached_divergence(
                logits, values.to(logits.device), indices.to(logits.device),
                temperature=cfg.kd_temperature, beta=cfg.kd_jsd_beta,
                student_log_probs=log_probs if cfg.kd_temperature == 1.0 else None,
            ).sum()
            loss_sum = cfg.kd_alpha * ce + (1.0 - cfg.kd_alpha) * cfg.kd_temperature**2 * kd
            self._parts["kd"] += float(kd.detach())
        self._parts["ce"] += float(ce.detach())
        self._parts["n"] += int(y.numel())

        if num_items_in_batch is None:
            loss = loss_sum / max(y.numel(), 1) / self.current_gradient_accumulation_steps
        else:
            loss = loss_sum / num_items_in_batch
            if self.args.average_tokens_across_devices and self.accelerator.num_processes > 1:
                # The count is global; gradients are averaged over processes, so undo that average.
                loss = loss * self.accelerator.num_processes
        return (loss, {"logits": logits}) if return_outputs else loss

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs and self._parts["n"]:
            logs["ce_loss"] = round(self._parts["ce"] / self._parts["n"], 6)
            if self.teacher is not None or self.cached_teacher:
                logs["kd_loss"] = round(self._parts["kd"] / self._parts["n"], 6)
            self._parts = {"ce": 0.0, "kd": 0.0, "n": 0}
        super().log(logs, start_time)


class OnPolicyDistillTrainer(DistillTrainer):
    """On-policy distillation: with probability lmbda the student writes the replies, the teacher scores them.

    The idea and the lmbda/beta knobs are TRL's GKD (Agarwal et al. 2024). Hand-written on our DistillTrainer
    instead of `trl.experimental.gkd.GKDTrainer` because GKD's generalised JSD runs at temperature 1 whatever
    `GKDConfig.temperature` says (that only changes sampling), and because this keeps the reply-only logits,
    token counting, progress and cancel of the other methods. The loss on a sampled batch is the divergence to
    the teacher on the sampled tokens (no cross-entropy: a sample is not a target); on a curated batch it is the
    usual kd_alpha mix.
    """

    def __init__(self, *args: Any, pad_token_id: int, eos_token_ids: list[int], **kwargs: Any):
        super().__init__(*args, **kwargs)
        if self.teacher is None:
            raise ValueError("on-policy distillation needs the teacher in memory to score the student's samples")
        self.pad_token_id = pad_token_id
        self.eos_token_ids = eos_token_ids
        self._rng = torch.Generator().manual_seed(self.args.seed)
        self.onpolicy_batches = 0

    def training_step(self, model, inputs, num_items_in_batch=None):
        cfg = self.train_config
        if float(torch.rand((), generator=self._rng)) < cfg.onpolicy_lmbda:
            inputs = self.sample_replies(model, inputs)
            self.onpolicy_batches += 1
            # num_items_in_batch counted the curated replies; the sampled ones differ in length.
            num_items_in_batch = None
        return super().training_step(model, inputs, num_items_in_batch)

    def sample_replies(self, model, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The batch's prompts (left padded) with replies sampled from the student, labelled for the loss."""
        from training.ml.data import CausalLMCollator

        cfg = self.train_config
        prompts = []
        for ids, labels, mask in zip(inputs["input_ids"], inputs["labels"], inputs["attention_mask"], strict=True):
            n = int(mask.sum())
            reply = (labels[:n] != IGNORE).nonzero()
            cut = int(reply[0]) if len(reply) else n
            prompts.append(ids[:cut].tolist())
        width = max(len(p) for p in prompts)
        ids = torch.full((len(prompts), width), self.pad_token_id, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for row, prompt in enumerate(prompts):
            ids[row, width - len(prompt) :] = torch.tensor(prompt)
            mask[row, width - len(prompt) :] = 1
        student = self.accelerator.unwrap_model(model)
        was_training = student.training
        student.eval()
        with torch.no_grad():
            out = student.generate(
                input_ids=ids.to(self.args.device), attention_mask=mask.to(self.args.device),
                do_sample=True, temperature=cfg.onpolicy_temperature, top_p=1.0, top_k=0,
                max_new_tokens=cfg.onpolicy_max_new_tokens, pad_token_id=self.pad_token_id,
                eos_token_id=self.eos_token_ids, use_cache=True,
            )
        student.train(was_training)
        examples = []
        for row, prompt in enumerate(prompts):
            new = out[row, width:].tolist()
            stop = next((i for i, t in enumerate(new) if t in self.eos_token_ids), None)
            reply = new if stop is None else new[: stop + 1]
            examples.append({"input_ids": prompt + reply, "labels": [IGNORE] * len(prompt) + reply})
        batch = CausalLMCollator(self.pad_token_id)(examples)
        batch["sampled"] = torch.ones(1)
        return batch

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        inputs = dict(inputs)
        if inputs.pop("sampled", None) is None:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        # A sampled batch: pure divergence to the teacher on the student's own tokens.
        alpha = self.train_config.kd_alpha
        self.train_config.kd_alpha = 0.0
        try:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        finally:
            self.train_config.kd_alpha = alpha


def cpu_has_bf16() -> bool:
    """Native bf16 matrix units (AVX512-BF16, AMX). There, bf16 autocast trained the 64M student ~1.5-2x faster
    per CPU second than fp32 (bench/training_throughput.py); without them it is emulated and slower."""
    try:
        capability = torch._C._cpu._get_cpu_capability()
    except AttributeError:  # a torch without the probe: assume the worst, fp32 is always correct
        return False
    return bool(capability.get("avx512_bf16") or capability.get("amx_bf16"))


def resolve_precision(config: TrainConfig) -> str:
    """auto: bf16 autocast where the hardware runs it natively (recent GPUs and CPUs), else fp32."""
    if config.precision != "auto":
        return config.precision
    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if cpu_has_bf16() else "fp32"


def precision_flags(config: TrainConfig) -> dict[str, bool]:
    precision = resolve_precision(config)
    return {"bf16": precision == "bf16", "fp16": precision == "fp16"}


def common_arguments(config: TrainConfig) -> dict[str, Any]:
    """TrainingArguments shared by every method; TRL configs subclass TrainingArguments and take them too."""
    return {
        "output_dir": str(config.checkpoints_dir),
        "per_device_train_batch_size": config.per_device_batch_size,
        "gradient_accumulation_steps": config.grad_accum,
        "learning_rate": config.learning_rate,
        "num_train_epochs": config.num_epochs,
        "max_steps": config.max_steps,
        "warmup_steps": config.warmup_ratio,  # a float below 1 is a ratio of the total steps
        "weight_decay": config.weight_decay,
        "max_grad_norm": config.max_grad_norm,
        "lr_scheduler_type": config.lr_scheduler,
        "logging_steps": config.logging_steps,
        "logging_first_step": True,
        "save_strategy": "steps",
        "save_steps": config.save_steps,
        "save_total_limit": config.save_total_limit,
        "seed": config.seed,
        "data_seed": config.seed,
        # The new names win over TRL's `gradient_checkpointing=True` default, which would cost ~20% speed.
        "activation_checkpointing": config.gradient_checkpointing,
        "activation_checkpointing_kwargs": {"use_reentrant": False},
        "report_to": "none",
        "disable_tqdm": True,
        "remove_unused_columns": False,
        "dataloader_num_workers": 0,
        "dataloader_pin_memory": torch.cuda.is_available(),
        # Without a GPU, say so: the Trainer then runs data parallel on CPU processes (gloo) under torchrun.
        "use_cpu": not torch.cuda.is_available(),
        "ddp_find_unused_parameters": False,  # every weight takes part in every step; the search costs a pass
        "include_num_input_tokens_seen": "no",  # TokenCountMixin counts instead
        **precision_flags(config),
    }


def sft_arguments(config: TrainConfig) -> TrainingArguments:
    return TrainingArguments(**common_arguments(config))


def build_dpo_trainer(config: TrainConfig, *, model, tokenizer, dataset, callbacks) -> Trainer:
    """TRL's DPOTrainer with our token count; the frozen reference is a copy of the starting student."""
    from trl import DPOConfig, DPOTrainer

    class CountingDPOTrainer(TokenCountMixin, DPOTrainer):
        pass

    args = DPOConfig(
        **common_arguments(config),
        beta=config.dpo_beta,
        max_length=config.max_seq_len,
        dataset_num_proc=None,
    )
    return CountingDPOTrainer(
        model=model, args=args, train_dataset=dataset, processing_class=tokenizer, callbacks=callbacks
    )
