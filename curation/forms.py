"""Forms of the curation pages: they check shape; services check meaning."""

from __future__ import annotations

from django import forms

from curation.models import ImportJob, Prompt, Review
from curation.services.reviews import ReviewInput


def _int_list(value: str) -> list[int]:
    try:
        return [int(part) for part in value.split(",") if part.strip()]
    except ValueError as exc:
        raise forms.ValidationError("A ranking is a comma-separated list of candidate ids.") from exc


class ReviewForm(forms.Form):
    decision = forms.ChoiceField(choices=Review.Decision.choices)
    version = forms.IntegerField(min_value=0)
    ranking = forms.CharField(required=False)
    chosen = forms.IntegerField(required=False)
    edited_text = forms.CharField(required=False, strip=False, max_length=200_000)
    comment = forms.CharField(required=False, max_length=10_000)
    seconds_spent = forms.FloatField(required=False, min_value=0)

    def clean_ranking(self) -> list[int]:
        return _int_list(self.cleaned_data.get("ranking") or "")

    def to_input(self) -> ReviewInput:
        data = self.cleaned_data
        return ReviewInput(
            decision=data["decision"], version=data["version"], ranking=data["ranking"], chosen_id=data["chosen"],
            edited_text=(data["edited_text"] or "").replace("\r\n", "\n"), comment=data["comment"] or "",
            seconds_spent=data["seconds_spent"] or 0.0,
        )

    def posted_state(self) -> dict:
        """What the annotator had on screen, to show again when the save is refused (never lose their text)."""
        raw = self.data
        try:
            ranking = _int_list(raw.get("ranking", ""))
        except forms.ValidationError:
            ranking = []
        chosen = raw.get("chosen", "")
        return {
            "ranking": ranking,
            "chosen": int(chosen) if chosen.isdigit() else None,
            "edited_text": raw.get("edited_text", ""),
            "comment": raw.get("comment", ""),
        }


class DraftForm(forms.Form):
    ranking = forms.CharField(required=False)
    chosen = forms.IntegerField(required=False)
    edited_text = forms.CharField(required=False, strip=False, max_length=200_000)
    comment = forms.CharField(required=False, max_length=10_000)

    def clean_ranking(self) -> list[int]:
        return _int_list(self.cleaned_data.get("ranking") or "")


class RevertForm(forms.Form):
    version = forms.IntegerField(min_value=0)


class ImportForm(forms.Form):
    file = forms.FileField()
    format = forms.ChoiceField(choices=ImportJob.Format.choices, initial=ImportJob.Format.AUTO)
    batch_input_file = forms.FileField(required=False, help_text="OpenAI Batch only: the input file, to recover prompts.")
    skip_invalid = forms.BooleanField(required=False, help_text="Import the valid lines and report the others.")


class FreezeForm(forms.Form):
    heldout_fraction = forms.FloatField(min_value=0, max_value=0.9, initial=0.1)
    seed = forms.IntegerField(initial=0)
    note = forms.CharField(required=False, max_length=2000)


class BrowseForm(forms.Form):
    q = forms.CharField(required=False, max_length=200, label="Search")
    status = forms.ChoiceField(required=False, choices=[("", "Any status"), *Prompt.Status.choices])
    annotator = forms.IntegerField(required=False)
    source = forms.CharField(required=False, max_length=200)
    flag = forms.CharField(required=False, max_length=40)
    tag = forms.CharField(required=False, max_length=60)
    min_length = forms.IntegerField(required=False, min_value=0)
    max_length = forms.IntegerField(required=False, min_value=0)
    has_edit = forms.BooleanField(required=False)
    disagreement = forms.BooleanField(required=False)
    cursor = forms.IntegerField(required=False, min_value=0)


class BulkForm(forms.Form):
    ACTIONS = [("approve", "Approve"), ("reject", "Reject"), ("requeue", "Re-queue"), ("tag", "Tag")]
    action = forms.ChoiceField(choices=ACTIONS)
    tag_name = forms.CharField(required=False, max_length=60)
    confirm = forms.BooleanField(required=False)
    expected = forms.IntegerField(required=False, min_value=0)

    def clean(self):
        data = super().clean()
        if data.get("action") == "tag" and not (data.get("tag_name") or "").strip():
            raise forms.ValidationError("Name the tag to add.")
        return data
