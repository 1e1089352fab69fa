"""Held-out items and tiny models fitted to them, so that scores mean something.

A randomly initialised tiny model only echoes its last token; a teacher fitted on
every item reproduces the curated answers (exact match 1.0), and a student fitted
on half of them fails the other half: those are the regressions a report must find.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.tiny import build_model, build_tokenizer

ITEMS = [
    ("p1", "What is 2 + 2?", "It is 4."),
    ("p2", "What is the capital of France?", "The capital of France is Paris."),
    ("p3", "What is 3 + 5?", "It is 8."),
    ("p4", "Rewrite this politely: send the report today.", "Please send the report today. Thank you!"),
    ("p5", "Explain photosynthesis in one sentence.", "Plants turn light, water and air into sugar."),
    ("p6", "What does the quick brown fox do?", "The quick brown fox jumps over the lazy dog."),
]
SYSTEM = "You are a helpful assistant."


def sft_records(items=ITEMS) -> list[dict]:
    """Records in the curation export "sft" format; the first one has a system turn."""
    records = []
    for i, (item_id, question, answer) in enumerate(items):
        messages = [{"role": "system", "content": SYSTEM}] if i == 0 else []
        messages += [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
        records.append({"id": item_id, "messages": messages})
    return records


def write_sft_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def save_fitted_model(folder: Path, records: list[dict], *, steps: int = 80, seed: int = 0) -> Path:
    """A tiny Llama trained to reproduce ``records`` through the ChatML template."""
    import torch

    # One thread: on a shared 2-core machine, more threads make this tiny job slower.
    torch.set_num_threads(1)
    tokenizer = build_tokenizer()
    model = build_model(tokenizer, layers=2, hidden=64, seed=seed)
    texts = [tokenizer.apply_chat_template(r["messages"], tokenize=False) for r in records]
    batch = tokenizer(texts, return_tensors="pt", padding=True)
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(steps):
        loss = model(**batch, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def make_heldout_version(project, records: list[dict], *, number: int = 1):
    """A frozen dataset version whose held-out rows are ``records``, each backed by a curation prompt."""
    from curation.models import DatasetRow, DatasetVersion
    from tests.factories import PromptFactory

    version = DatasetVersion.objects.create(
        project=project, number=number, row_count=len(records) + 1, train_count=1, heldout_count=len(records),
        content_hash=f"test-{number}",
    )
    train = PromptFactory(project=project)
    DatasetRow.objects.create(version=version, position=0, split="train", prompt_id=train.pk,
                              messages=train.messages, response="Some answer.", original="Some answer.")
    prompts = []
    for position, record in enumerate(records, start=1):
        turns = record["messages"][:-1]
        prompt = PromptFactory(project=project, text=turns[-1]["content"], messages=turns, status="approved")
        DatasetRow.objects.create(version=version, position=position, split="heldout", prompt_id=prompt.pk,
                                  messages=turns, response=record["messages"][-1]["content"],
                                  original=record["messages"][-1]["content"])
        prompts.append(prompt)
    return version, prompts


STUDENT_ROUGE = [1.0, 1.0, 1.0, 0.2, 0.5, 0.0]  # per held-out item; the teacher scores 1.0 everywhere


def finished_run(project, version, prompts, *, created_by=None):
    """A succeeded run written directly (no model): results as the service stores them, and samples."""
    from curation.models import JobStatus
    from evaluation.models import EvaluationRun, EvaluationSample

    def metrics(rouge: float, em: float, ppl: float) -> dict:
        return {"heldout_gen": {"exact_match": {"value": em, "stderr": 0.1, "higher_is_better": True},
                                "rougeL": {"value": rouge, "stderr": 0.05, "higher_is_better": True}},
                "heldout_ppl": {"word_perplexity": {"value": ppl, "stderr": None, "higher_is_better": False}}}

    student_mean = sum(STUDENT_ROUGE) / len(STUDENT_ROUGE)
    run = EvaluationRun.objects.create(
        project=project, dataset_version=version, name="finished", status=JobStatus.SUCCEEDED, progress=1.0,
        created_by=created_by, tasks=["heldout"], options={"batch_size": 2, "apply_chat_template": True},
        models_spec=[{"label": "teacher", "role": "teacher", "kind": "hf", "path": "/t"},
                     {"label": "student", "role": "student", "kind": "hf", "path": "/s"}],
        results={"teacher": {"role": "teacher", "metrics": metrics(1.0, 1.0, 2.0), "notes": []},
                 "student": {"role": "student", "metrics": metrics(student_mean, 0.5, 4.0), "notes": []}},
        measurements={"teacher": {"parameter_count": 1000, "size_on_disk_bytes": 4000, "tokens_per_second": 10.0,
                                  "batch_latency_s_mean": 2.0},
                      "student": {"parameter_count": 400, "size_on_disk_bytes": 1600, "tokens_per_second": 25.0,
                                  "batch_latency_s_mean": 0.8}},
    )
    rows = []
    for doc_id, (prompt, rouge) in enumerate(zip(prompts, STUDENT_ROUGE)):
        common = {"run": run, "task": "heldout_gen", "doc_id": doc_id, "prompt_id": prompt.pk, "prompt": prompt.text,
                  "target": f"answer {doc_id}"}
        rows += [EvaluationSample(model_label="teacher", response=f"answer {doc_id}",
                                  metrics={"rougeL": 1.0, "exact_match": 1.0}, **common),
                 EvaluationSample(model_label="student", response=f"student says {doc_id}",
                                  metrics={"rougeL": rouge, "exact_match": float(rouge == 1.0)}, **common)]
        ppl = {**common, "task": "heldout_ppl"}
        rows += [EvaluationSample(model_label="teacher", metrics={"word_perplexity": 2.0}, **ppl),
                 EvaluationSample(model_label="student", metrics={"word_perplexity": 2.0 + doc_id}, **ppl)]
    EvaluationSample.objects.bulk_create(rows)
    return run
