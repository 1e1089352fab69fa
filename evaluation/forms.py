"""Forms of the evaluation pages: they check shape; services check meaning."""

from __future__ import annotations

import re

from django import forms

from curation.models import JobStatus, Project
from curation.selectors.generation import teachers_for_project
from evaluation.harness import HarnessError, parse_model

def model_from_line(text: str) -> dict | None:
    """A model line (see ``harness.parse_model``) as the service's model dict; None if unreadable."""
    try:
        spec = parse_model(text)
    except HarnessError:
        return None
    explicit_label = "=" in text.split(":", 1)[0]
    model = {"kind": spec.kind, "path": spec.path, "api_model": spec.api_model, "role": spec.role,
             "label": spec.label if explicit_label else ""}
    return {k: v for k, v in model.items() if v}


class RunForm(forms.Form):
    name = forms.CharField(required=False, max_length=200)
    dataset_version = forms.ModelChoiceField(queryset=None, required=False,
                                             help_text="Its held-out split becomes the curated task.")
    teacher = forms.ModelChoiceField(queryset=None, required=False)
    training_runs = forms.ModelMultipleChoiceField(queryset=None, required=False, label="Students (training runs)")
    other_models = forms.CharField(
        required=False, label="Other models", widget=forms.Textarea(attrs={"rows": 2}),
        help_text="One per line: label=hf:NAME or label=gguf:NAME (a model an operator registered), "
                  "or label=api:URL#MODEL.",
    )
    tasks = forms.CharField(initial="heldout",
                            help_text="heldout, lm-eval task names, or task folders an operator registered.")
    limit = forms.FloatField(required=False, min_value=0.0001)
    num_fewshot = forms.IntegerField(required=False, min_value=0, max_value=64)
    batch_size = forms.IntegerField(initial=8, min_value=1, max_value=256)
    max_gen_toks = forms.IntegerField(initial=256, min_value=1, max_value=4096, label="Max new tokens")
    apply_chat_template = forms.BooleanField(required=False, initial=True)

    def __init__(self, *args, project: Project, **kwargs) -> None:
        from training.models import TrainingRun

        super().__init__(*args, **kwargs)
        self.fields["dataset_version"].queryset = project.dataset_versions.all()
        self.fields["teacher"].queryset = teachers_for_project(project)
        self.fields["training_runs"].queryset = TrainingRun.objects.filter(
            dataset_version__project=project, status=JobStatus.SUCCEEDED
        )

    def clean_other_models(self) -> list[dict]:
        models = []
        for line in (self.cleaned_data.get("other_models") or "").splitlines():
            if not line.strip():
                continue
            model = model_from_line(line)
            if model is None:
                raise forms.ValidationError(
                    f"Cannot read {line.strip()!r}: use label=hf:FOLDER, label=gguf:FILE or label=api:URL#MODEL."
                )
            models.append(model)
        return models

    def service_kwargs(self) -> dict:
        data = self.cleaned_data
        models = [{"teacher_id": data["teacher"].pk}] if data["teacher"] else []
        models += [{"training_run_id": run.pk} for run in data["training_runs"]]
        models += data["other_models"]
        limit = data["limit"]
        options = {"batch_size": data["batch_size"], "max_gen_toks": data["max_gen_toks"],
                   "apply_chat_template": data["apply_chat_template"], "num_fewshot": data["num_fewshot"],
                   "limit": int(limit) if limit is not None and limit >= 1 else limit}
        return {"name": data["name"], "dataset_version": data["dataset_version"], "models": models,
                "tasks": re.split(r"[\s,]+", data["tasks"].strip()),
                "options": {k: v for k, v in options.items() if v is not None}}


class SendBackForm(forms.Form):
    doc_ids = forms.TypedMultipleChoiceField(coerce=int, choices=())
    student = forms.CharField(max_length=100, required=False)

    def __init__(self, *args, doc_ids: list[int], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["doc_ids"].choices = [(d, d) for d in doc_ids]
