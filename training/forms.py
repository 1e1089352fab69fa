"""The launch form: shape only. Defaults are TrainConfig's, so the form shows what a run will use."""

from __future__ import annotations

from typing import Any

from django import forms

from curation.models import DatasetVersion, Project, ServerResource, Teacher
from training.models import TrainingRun
from training.selectors import cacheable_teachers
from training.services import default_hyperparams

# The hyperparameters offered in the form, in display order; the rest keep their defaults.
FORM_HYPERPARAMS = (
    "learning_rate", "num_epochs", "max_steps", "per_device_batch_size", "grad_accum", "max_seq_len",
    "warmup_ratio", "save_steps", "logging_steps", "packing", "max_train_seconds", "calibration_examples",
    "recovery_steps", "kd_temperature", "kd_alpha", "kd_jsd_beta", "onpolicy_lmbda", "onpolicy_max_new_tokens",
    "onpolicy_temperature", "dpo_beta", "lora_r", "lora_alpha", "lora_dropout",
)
LABELS = {
    "max_seq_len": "Max sequence length", "per_device_batch_size": "Batch size per device",
    "grad_accum": "Gradient accumulation", "packing": "Padding-free", "kd_temperature": "KD temperature",
    "kd_alpha": "KD alpha", "kd_jsd_beta": "KD JSD beta", "dpo_beta": "DPO beta", "lora_r": "LoRA rank",
    "lora_alpha": "LoRA alpha", "lora_dropout": "LoRA dropout",
}
HELP = {
    "learning_rate": "peak AdamW learning rate, reached after the warmup; 1e-4 suits full fine-tuning of small students",
    "num_epochs": "passes over the training split",
    "max_steps": "-1: train for the number of epochs; a number stops there (quick trials)",
    "per_device_batch_size": "examples per optimizer micro-step",
    "grad_accum": "micro-steps per optimizer step: effective batch = batch size × this",
    "max_seq_len": "longer examples are truncated (tokens, prompt + reply)",
    "warmup_ratio": "share of the steps spent ramping the learning rate up",
    "save_steps": "a checkpoint every N steps: cancel and resume continue from the last one",
    "logging_steps": "loss and speed are reported every N steps",
    "packing": "padding-free batches: no compute spent on padding (SFT and KD)",
    "kd_alpha": "weight of the cross-entropy on curated tokens; 1 - alpha goes to matching the teacher",
    "kd_jsd_beta": "0 forward KL, 1 reverse KL, between: generalised JSD",
    "kd_temperature": "softens both distributions before they are compared",
    "dpo_beta": "strength of the pull towards the reference model; 0.1 is TRL's default",
    "lora_r": "rank of the adapters: more is closer to full fine-tuning, and bigger",
    "lora_alpha": "adapter scaling; usually twice the rank",
    "lora_dropout": "dropout on the adapters' input",
    "max_train_seconds": "0: no limit; else stop (and export) after this many seconds of training",
    "calibration_examples": "training rows measured to choose the kept layers (derive, by importance)",
    "recovery_steps": "steps on the recovery version before the curated set",
    "onpolicy_lmbda": "share of batches whose replies the student samples (on-policy)",
    "onpolicy_max_new_tokens": "longest sampled reply (on-policy)",
    "onpolicy_temperature": "sampling temperature of the student (on-policy)",
}
# Which fields matter for which choice: the form hides the others (their defaults are still sent). Each entry
# is a list of field=value conditions, any of which shows the field.
SHOW_WHEN = {
    "kd_temperature": ["method=kd", "method=onpolicy"], "kd_alpha": ["method=kd", "method=onpolicy"],
    "kd_jsd_beta": ["method=kd", "method=onpolicy"],
    "onpolicy_lmbda": ["method=onpolicy"], "onpolicy_max_new_tokens": ["method=onpolicy"],
    "onpolicy_temperature": ["method=onpolicy"],
    "layer_selection": ["student_source=derive"], "calibration_examples": ["student_source=derive"],
    "dpo_beta": ["method=dpo"], "packing": ["method=sft", "method=kd"],
    "lora_r": ["student_source=lora"], "lora_alpha": ["student_source=lora"], "lora_dropout": ["student_source=lora"],
    "teacher": ["student_source=derive", "method=kd", "method=onpolicy"], "keep_layers": ["student_source=derive"],
    "student_path": ["student_source=folder", "student_source=lora"],
}


def _field(name: str, default: Any) -> forms.Field:
    label = LABELS.get(name, name.replace("_", " ").capitalize())
    help_text = HELP.get(name, "")
    if isinstance(default, bool):
        return forms.BooleanField(label=label, initial=default, required=False, help_text=help_text)
    if isinstance(default, int):
        return forms.IntegerField(label=label, initial=default, help_text=help_text)
    return forms.FloatField(label=label, initial=default, help_text=help_text)


class TrainingRunForm(forms.Form):
    name = forms.CharField(max_length=200, required=False)
    method = forms.ChoiceField(choices=TrainingRun.Method.choices, initial=TrainingRun.Method.SFT)
    student_source = forms.ChoiceField(
        label="Student", choices=TrainingRun.StudentSource.choices, initial=TrainingRun.StudentSource.DERIVE
    )
    teacher = forms.ModelChoiceField(
        queryset=Teacher.objects.none(), required=False, help_text="local model folder (derive, KD)"
    )
    keep_layers = forms.IntegerField(
        min_value=1, required=False, initial=10, help_text="K of the teacher's layers, evenly spaced (10 of SmolLM2's 30 keep 47% of its parameters)"
    )
    layer_selection = forms.ChoiceField(
        choices=[("importance", "By measured importance (lowest starting loss)"), ("even", "Evenly spaced")],
        initial="importance", help_text="which of the teacher's layers a derived student keeps",
    )
    recovery_version = forms.ModelChoiceField(
        queryset=DatasetVersion.objects.none(), required=False,
        help_text="general teacher text (e.g. synthesized prompts with the teacher's answers) to distil on first",
    )
    student_path = forms.ChoiceField(
        label="Student model", choices=[], required=False,
        help_text="a model an operator registered: the student, or the LoRA base",
    )
    seed = forms.IntegerField(initial=0)

    def __init__(self, project: Project, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        teachers = cacheable_teachers(project)  # an API teacher: KD from its logit cache
        models = ServerResource.objects.filter(kind=ServerResource.Kind.MODEL).values_list("name", flat=True)
        self.fields["student_path"].choices = [("", "—")] + [(name, name) for name in models]
        self.fields["teacher"].queryset = Teacher.objects.filter(pk__in=[t.pk for t in teachers])
        if teachers:
            self.fields["teacher"].initial = teachers[0].pk
        self.fields["recovery_version"].queryset = DatasetVersion.objects.filter(project=project)
        defaults = default_hyperparams()
        for name in FORM_HYPERPARAMS:
            self.fields[name] = _field(name, defaults[name])
        for name, conditions in SHOW_WHEN.items():
            self.fields[name].widget.attrs["data-show-when"] = " ".join(conditions)

    def service_kwargs(self) -> dict[str, Any]:
        """The cleaned data in the shape training_run_create takes."""
        data = self.cleaned_data
        return {
            "name": data["name"], "method": data["method"], "student_source": data["student_source"],
            "teacher": data["teacher"], "keep_layers": data["keep_layers"], "student_path": data["student_path"],
            "seed": data["seed"], "recovery_version": data["recovery_version"],
            "hyperparams": {**{name: data[name] for name in FORM_HYPERPARAMS}, "layer_selection": data["layer_selection"]},
        }

    def add_service_errors(self, error: Any) -> None:
        """A service ValidationError onto the fields it names (others, e.g. hyperparams, on the form)."""
        messages = error.message_dict if hasattr(error, "error_dict") else {None: error.messages}
        for field, texts in messages.items():
            self.add_error(field if field in self.fields else None, texts)
