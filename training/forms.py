"""The launch form: shape only. Defaults are TrainConfig's, so the form shows what a run will use."""

from __future__ import annotations

from typing import Any

from django import forms

from curation.models import Project, ServerResource, Teacher
from training.models import TrainingRun
from training.selectors import trainable_teachers
from training.services import default_hyperparams

# The hyperparameters offered in the form, in display order; the rest keep their defaults.
FORM_HYPERPARAMS = (
    "learning_rate", "num_epochs", "max_steps", "per_device_batch_size", "grad_accum", "max_seq_len",
    "warmup_ratio", "save_steps", "logging_steps", "packing", "kd_temperature", "kd_alpha", "kd_jsd_beta",
    "dpo_beta", "lora_r", "lora_alpha", "lora_dropout",
)
LABELS = {
    "max_seq_len": "Max sequence length", "per_device_batch_size": "Batch size per device",
    "grad_accum": "Gradient accumulation", "packing": "Padding-free", "kd_temperature": "KD temperature",
    "kd_alpha": "KD alpha", "kd_jsd_beta": "KD JSD beta", "dpo_beta": "DPO beta", "lora_r": "LoRA rank",
    "lora_alpha": "LoRA alpha", "lora_dropout": "LoRA dropout",
}
HELP = {
    "max_steps": "-1: train for the number of epochs",
    "packing": "padding-free batches: no compute spent on padding",
    "kd_alpha": "weight of the cross-entropy on curated tokens (KD)",
    "kd_jsd_beta": "0 forward KL, 1 reverse KL, between: JSD (KD)",
    "kd_temperature": "softens both distributions (KD)",
    "dpo_beta": "DPO only",
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
        min_value=1, required=False, help_text="K of the teacher's layers (derive; default 10)"
    )
    student_path = forms.ChoiceField(
        label="Student model", choices=[], required=False,
        help_text="a model an operator registered: the student, or the LoRA base",
    )
    seed = forms.IntegerField(initial=0)

    def __init__(self, project: Project, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        teachers = trainable_teachers(project)
        models = ServerResource.objects.filter(kind=ServerResource.Kind.MODEL).values_list("name", flat=True)
        self.fields["student_path"].choices = [("", "—")] + [(name, name) for name in models]
        self.fields["teacher"].queryset = Teacher.objects.filter(pk__in=[t.pk for t in teachers])
        if teachers:
            self.fields["teacher"].initial = teachers[0].pk
        defaults = default_hyperparams()
        for name in FORM_HYPERPARAMS:
            self.fields[name] = _field(name, defaults[name])

    def service_kwargs(self) -> dict[str, Any]:
        """The cleaned data in the shape training_run_create takes."""
        data = self.cleaned_data
        return {
            "name": data["name"], "method": data["method"], "student_source": data["student_source"],
            "teacher": data["teacher"], "keep_layers": data["keep_layers"], "student_path": data["student_path"],
            "seed": data["seed"], "hyperparams": {name: data[name] for name in FORM_HYPERPARAMS},
        }

    def add_service_errors(self, error: Any) -> None:
        """A service ValidationError onto the fields it names (others, e.g. hyperparams, on the form)."""
        messages = error.message_dict if hasattr(error, "error_dict") else {None: error.messages}
        for field, texts in messages.items():
            self.add_error(field if field in self.fields else None, texts)
