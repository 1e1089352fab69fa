"""The import service: every format, sniffing, bad input with line numbers, all-or-nothing, skip-invalid."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from curation.hashing import messages_hash, text_hash
from curation.models import Completion, ImportJob, JobStatus, Prompt
from curation.services import imports
from curation.services.imports import import_file, import_job_run

pytestmark = pytest.mark.django_db


def write_jsonl(path: Path, records: list) -> Path:
    lines = [r if isinstance(r, str) else json.dumps(r, ensure_ascii=False) for r in records]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_generic_jsonl_strings_objects_and_messages(project, tmp_path):
    path = write_jsonl(tmp_path / "out.jsonl", [
        {"prompt": "What is 2 + 2?", "completion": "4", "id": 17, "metadata": {"topic": "maths"}},
        {"prompt": "Capital of France?", "completions": [
            "Paris.",
            {"text": "Lyon.", "source": "smol", "finish_reason": "length", "params": {"temperature": 0.7},
             "logprobs": [{"token": "Ly", "logprob": -0.5}]},
        ]},
        {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                      {"role": "assistant", "content": "Hello"}, {"role": "user", "content": "Bye?"}],
         "completion": "Bye."},
        {"messages": [{"role": "user", "content": "Name a colour."}, {"role": "assistant", "content": "Blue."}]},
        {"prompt": "Only a prompt, for the teacher to answer later."},
    ])
    job = import_file(project=project, path=path)
    assert job.status == JobStatus.SUCCEEDED, job.message
    assert (job.detected_format, job.read_count, job.imported_count, job.invalid_count) == ("jsonl", 5, 5, 0)
    first = Prompt.objects.get(project=project, text="What is 2 + 2?")
    assert first.external_id == "17" and first.metadata == {"topic": "maths"}
    assert first.content_hash == messages_hash(first.messages)
    lyon = Completion.objects.get(text="Lyon.")
    assert (lyon.source, lyon.finish_reason, lyon.truncated, lyon.length) == ("smol", "length", True, 5)
    assert lyon.params == {"temperature": 0.7} and lyon.logprobs[0]["token"] == "Ly"
    assert lyon.text_hash == text_hash("Lyon.")
    multi = Prompt.objects.get(project=project, text="Bye?")
    assert [m["role"] for m in multi.messages] == ["system", "user", "assistant", "user"]  # kept as given
    sft = Prompt.objects.get(project=project, text="Name a colour.")
    assert sft.messages == [{"role": "user", "content": "Name a colour."}]
    assert list(sft.completions.values_list("text", flat=True)) == ["Blue."]
    assert not Prompt.objects.get(project=project, text__startswith="Only a prompt").completions.exists()


def test_reimport_adds_no_duplicates_and_merges_new_completions(project, tmp_path):
    path = write_jsonl(tmp_path / "a.jsonl", [{"prompt": "Q1", "completion": "A1"}, {"prompt": "Q2", "completion": "A2"}])
    import_file(project=project, path=path)
    again = import_file(project=project, path=path)
    assert (again.status, again.imported_count, again.duplicate_count) == (JobStatus.SUCCEEDED, 0, 2)
    assert Prompt.objects.filter(project=project).count() == 2 and Completion.objects.count() == 2
    more = write_jsonl(tmp_path / "b.jsonl", [
        {"prompt": "Q1", "completion": "A1 again, better"}, {"prompt": "Q1", "completion": "A1"},
        {"prompt": "Q3", "completion": "A3"}, {"prompt": "Q3", "completion": "A3 bis"},
    ])
    job = import_file(project=project, path=more)
    assert (job.imported_count, job.duplicate_count) == (3, 1)
    assert Prompt.objects.filter(project=project).count() == 3
    assert Completion.objects.filter(prompt__text="Q3").count() == 2


def test_same_prompt_in_another_project_is_not_a_duplicate(project, tmp_path):
    from tests.factories import ProjectFactory

    path = write_jsonl(tmp_path / "a.jsonl", [{"prompt": "Q", "completion": "A"}])
    import_file(project=project, path=path)
    job = import_file(project=ProjectFactory(), path=path)
    assert job.imported_count == 1 and Prompt.objects.count() == 2


def test_openai_batch_output_joined_to_its_input(project, tmp_path):
    requests = tmp_path / "batch_input.jsonl"
    write_jsonl(requests, [
        {"custom_id": "req-1", "method": "POST", "url": "/v1/chat/completions",
         "body": {"model": "gpt-4o-mini", "temperature": 0.2,
                  "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"}]}},
        {"custom_id": "req-2", "method": "POST", "url": "/v1/chat/completions",
         "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}]}},
    ])
    output = write_jsonl(tmp_path / "batch_output.jsonl", [
        {"id": "batch_req_2", "custom_id": "req-2", "error": None, "response": {"status_code": 200, "body": {
            "model": "gpt-4o-mini-2024-07-18",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello!"}, "finish_reason": "stop"}]}}},
        {"id": "batch_req_1", "custom_id": "req-1", "error": None, "response": {"status_code": 200, "body": {
            "model": "gpt-4o-mini-2024-07-18",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "4"}, "finish_reason": "length"}]}}},
    ])
    job = import_file(project=project, path=output, batch_input=requests)
    assert (job.status, job.detected_format, job.imported_count) == (JobStatus.SUCCEEDED, "openai-batch", 2), job.message
    prompt = Prompt.objects.get(external_id="req-1")
    assert prompt.messages == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"}]
    completion = prompt.completions.get()
    assert (completion.text, completion.source, completion.finish_reason) == ("4", "gpt-4o-mini-2024-07-18", "length")
    assert completion.params == {"model": "gpt-4o-mini", "temperature": 0.2}
    assert Prompt.objects.get(external_id="req-2").text == "Hi"


def test_openai_batch_without_input_is_a_clear_error(project, tmp_path):
    output = write_jsonl(tmp_path / "out.jsonl", [{"custom_id": "x", "response": {"status_code": 200, "body": {}}}])
    job = import_file(project=project, path=output)
    assert job.status == JobStatus.FAILED and "batch input" in job.message
    assert not Prompt.objects.exists()


def test_openai_batch_failed_requests_and_unknown_ids_are_invalid_lines(project, tmp_path):
    requests = write_jsonl(tmp_path / "in.jsonl", [
        {"custom_id": "a", "body": {"messages": [{"role": "user", "content": "Q"}]}},
    ])
    output = write_jsonl(tmp_path / "out.jsonl", [
        {"custom_id": "a", "error": {"code": "rate_limit", "message": "Too many requests"}, "response": None},
        {"custom_id": "zzz", "response": {"status_code": 200, "body": {"choices": [{"message": {"content": "A"}}]}}},
        {"custom_id": "a", "response": {"status_code": 500, "body": {"error": {"message": "server error"}}}},
    ])
    job = import_file(project=project, path=output, format="openai-batch", batch_input=requests)
    reasons = {e["line"]: e["reason"] for e in job.errors}
    assert job.status == JobStatus.FAILED
    assert "Too many requests" in reasons[1]
    assert "'zzz' is not in the batch input file" in reasons[2]
    assert "HTTP 500" in reasons[3] and "server error" in reasons[3]


def test_sharegpt(project, tmp_path):
    path = write_jsonl(tmp_path / "share.jsonl", [
        {"id": "c1", "conversations": [
            {"from": "system", "value": "You are kind."}, {"from": "human", "value": "Hi"},
            {"from": "gpt", "value": "Hello"}, {"from": "human", "value": "How are you?"},
            {"from": "gpt", "value": "Fine, thanks."}]},
        {"conversations": [{"from": "human", "value": "Unanswered question?"}]},
    ])
    job = import_file(project=project, path=path)
    assert (job.detected_format, job.imported_count) == ("sharegpt", 2), job.message
    prompt = Prompt.objects.get(external_id="c1")
    assert [m["role"] for m in prompt.messages] == ["system", "user", "assistant", "user"]
    assert prompt.text == "How are you?"
    assert list(prompt.completions.values_list("text", flat=True)) == ["Fine, thanks."]
    assert not Prompt.objects.get(text="Unanswered question?").completions.exists()


def test_alpaca(project, tmp_path):
    path = write_jsonl(tmp_path / "alpaca.jsonl", [
        {"instruction": "Translate to French.", "input": "Good morning", "output": "Bonjour"},
        {"instruction": "Name a prime number.", "input": "", "output": "7"},
    ])
    job = import_file(project=project, path=path)
    assert (job.detected_format, job.imported_count) == ("alpaca", 2)
    assert Prompt.objects.get(text="Translate to French.\n\nGood morning").completions.get().text == "Bonjour"
    assert Prompt.objects.filter(text="Name a prime number.").exists()


def test_csv_streams_with_quoted_multiline_fields_and_extra_columns(project, tmp_path):
    path = tmp_path / "data.csv"
    path.write_text('prompt,completion,category\n"Write two lines","Line one\nLine two",poetry\nQ2,A2,misc\n')
    job = import_file(project=project, path=path)
    assert (job.detected_format, job.imported_count, job.read_count) == ("csv", 2, 2), job.message
    prompt = Prompt.objects.get(text="Write two lines")
    assert prompt.metadata == {"category": "poetry"}
    assert prompt.completions.get().text == "Line one\nLine two"


@pytest.mark.parametrize(("name", "content", "expected"), [
    ("x.jsonl", '{"prompt": "p", "completion": "c"}\n', "jsonl"),
    ("x.jsonl", '{"messages": [{"role": "user", "content": "p"}]}\n', "jsonl"),
    ("x.jsonl", '{"conversations": [{"from": "human", "value": "p"}]}\n', "sharegpt"),
    ("x.json", '{"instruction": "p", "output": "c"}\n', "alpaca"),
    ("upload.txt", "prompt,completion\np,c\n", "csv"),
    ("x.csv", "prompt\np\n", "csv"),
    ("x.jsonl", 'not json\n{"prompt": "p"}\n', "jsonl"),  # sniffing looks past a bad first line
])
def test_auto_detects_the_format(project, tmp_path, name, content, expected):
    path = tmp_path / name
    path.write_text(content)
    job = import_file(project=project, path=path, skip_invalid=True)
    assert job.detected_format == expected


@pytest.mark.parametrize(("content", "needle"), [
    ('[1, 2]\n', "items must be objects"),
    ('[]\n', "empty JSON array"),
    ('[{"prompt": ', "cannot be read"),
    ('{"question": "p", "answer": "a"}\n', "Could not detect"),
    ('{"custom_id": "a", "method": "POST", "body": {}}\n', "Batch input file"),
    ("", "no records"),
    ("\n\n", "no records"),
    ("\udcff\udcfe binary\n", "cannot be read as text"),
])
def test_unreadable_files_fail_with_a_clear_message(project, tmp_path, content, needle):
    path = tmp_path / "file.jsonl"
    path.write_bytes(content.encode("utf-8", "surrogateescape"))
    job = import_file(project=project, path=path)
    assert job.status == JobStatus.FAILED and needle in job.message


def test_missing_file_fails_the_job(project, tmp_path):
    job = import_file(project=project, path=tmp_path / "nope.jsonl", format="jsonl")
    assert job.status == JobStatus.FAILED and "Cannot read nope.jsonl" in job.message


BAD_LINES = [
    '{"prompt": "fine", "completion": "ok"}',  # 1
    '{"prompt": "unclosed", ',  # 2 bad JSON
    '{"completion": "no prompt"}',  # 3 missing field
    '{"prompt": 42, "completion": "x"}',  # 4 wrong type
    '{"prompt": "   ", "completion": "x"}',  # 5 empty text
    None,  # 6 undecodable bytes, written below
    '{"prompt": "long", "completion": "' + "x" * 300 + '"}',  # 7 over the size limit
    '{"prompt": "p", "completions": ["ok", ""]}',  # 8 empty completion
    '{"prompt": "fine too", "completion": "ok"}',  # 9
    '{"prompt": "nul", "completion": "a\\u0000b"}',  # 10 NUL, which PostgreSQL text cannot hold
]
EXPECTED_REASONS = {
    2: "bad JSON", 3: "missing field: prompt", 4: "wrong type: prompt must be a string, not a number",
    5: "empty text: prompt", 6: "undecodable bytes", 7: "line over the size limit", 8: "empty text: completions[1]",
    10: "NUL character in completion",
}


def write_bad_file(path: Path) -> Path:
    with open(path, "wb") as handle:
        for line in BAD_LINES:
            handle.write(b'{"prompt": "caf\xe9"}' if line is None else line.encode())
            handle.write(b"\n")
    return path


def test_all_or_nothing_reports_every_bad_line_and_imports_nothing(project, tmp_path):
    job = import_file(project=project, path=write_bad_file(tmp_path / "bad.jsonl"), max_line_bytes=200)
    assert job.status == JobStatus.FAILED
    assert (job.read_count, job.invalid_count, job.imported_count) == (10, 8, 0)
    reasons = {error["line"]: error["reason"] for error in job.errors}
    assert set(reasons) == set(EXPECTED_REASONS)
    for line, needle in EXPECTED_REASONS.items():
        assert needle in reasons[line], (line, reasons[line])
    assert "Nothing imported" in job.message
    assert not Prompt.objects.exists()
    assert not job.rejects_path


def test_skip_invalid_imports_valid_lines_and_writes_rejects(project, tmp_path):
    rejects = tmp_path / "rejects.jsonl"
    job = import_file(
        project=project, path=write_bad_file(tmp_path / "bad.jsonl"), skip_invalid=True, rejects_path=rejects,
        max_line_bytes=200,
    )
    assert job.status == JobStatus.SUCCEEDED
    assert (job.read_count, job.imported_count, job.invalid_count) == (10, 2, 8)
    assert set(Prompt.objects.values_list("text", flat=True)) == {"fine", "fine too"}
    entries = [json.loads(line) for line in rejects.read_text().splitlines()]
    assert [e["line"] for e in entries] == sorted(EXPECTED_REASONS)
    assert entries[0]["raw"] == BAD_LINES[1] and "bad JSON" in entries[0]["reason"]
    assert entries[5]["raw"] is None  # the oversized line is not copied
    assert job.rejects_path == str(rejects) and "8 rejected lines" in job.message
    assert str(tmp_path) not in job.message  # curators see the message: no server path in it


def test_skip_invalid_defaults_the_rejects_file_beside_the_uploads(project, tmp_path, settings):
    settings.MEDIA_ROOT = tmp_path / "private"
    job = import_file(project=project, path=write_jsonl(tmp_path / "x.jsonl", ["{oops", {"prompt": "p"}]), skip_invalid=True)
    assert Path(job.rejects_path).parent == tmp_path / "private" / "rejects"
    assert json.loads(Path(job.rejects_path).read_text())["line"] == 1


def test_all_or_nothing_holds_across_batches(project, tmp_path, settings):
    settings.IMPORT_BATCH_RECORDS = 3
    records = [{"prompt": f"Q{i}", "completion": f"A{i}"} for i in range(10)] + ["{broken"]
    job = import_file(project=project, path=write_jsonl(tmp_path / "x.jsonl", records))
    assert job.status == JobStatus.FAILED and job.errors == [{"line": 11, "reason": job.errors[0]["reason"]}]
    assert not Prompt.objects.exists()
    ok = import_file(project=project, path=write_jsonl(tmp_path / "y.jsonl", records[:10]))
    assert (ok.imported_count, Prompt.objects.count(), Completion.objects.count()) == (10, 10, 10)


@pytest.mark.parametrize(("content", "line", "needle"), [
    (b"prompt,completion\nok,fine\nonly one cell\n", 3, "wrong number of columns"),
    (b"prompt,completion\nok,fine\n\"bad\"quote,x\n", 3, "bad CSV"),
    (b"prompt,completion\nok,fine\ncaf\xe9,x\n", 3, "undecodable bytes"),
    (b"prompt,completion\nok,fine\n,empty prompt\n", 3, "empty text: prompt"),
    (b"prompt,completion\nok,fine\n\"never closed,x\nmore,y\n", 3, "bad CSV"),
])
def test_csv_bad_rows_have_line_numbers(project, tmp_path, content, line, needle):
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    job = import_file(project=project, path=path)
    assert job.status == JobStatus.FAILED
    assert job.errors[0]["line"] == line and needle in job.errors[0]["reason"], job.errors


def test_csv_without_prompt_column_fails(project, tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("question,answer\nq,a\n")
    job = import_file(project=project, path=path)
    assert job.status == JobStatus.FAILED and "'prompt' column" in job.message


def test_import_job_create_queues_after_commit_and_run_claims_once(project, curator, tmp_path, monkeypatch,
                                                                    django_capture_on_commit_callbacks, settings):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from curation import tasks

    settings.MEDIA_ROOT = tmp_path / "media"
    queued = []
    monkeypatch.setattr(tasks.import_job_run, "delay", queued.append)
    upload = SimpleUploadedFile("outputs.jsonl", b'{"prompt": "p", "completion": "c"}\n')
    with django_capture_on_commit_callbacks(execute=True):
        job = imports.import_job_create(project=project, uploaded_file=upload, format="auto", skip_invalid=False,
                                        created_by=curator)
    assert queued == [job.pk] and job.status == JobStatus.QUEUED and job.original_name == "outputs.jsonl"
    done = import_job_run(job.pk)
    assert done.status == JobStatus.SUCCEEDED and done.imported_count == 1
    assert import_job_run(job.pk) is None  # a redelivered task finds nothing to claim
    assert Prompt.objects.count() == 1


def test_unknown_format_is_a_validation_error(project, tmp_path):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError):
        import_file(project=project, path=tmp_path / "x", format="parquet")


def test_quality_flags_are_computed_after_the_import_and_roll_back_with_it(project, tmp_path):
    from curation.models import Flag

    records = [{"prompt": "Explain gravity.", "completions": [{"text": "Gravity is the pull", "finish_reason": "length"}]}]
    failed = import_file(project=project, path=write_jsonl(tmp_path / "bad.jsonl", [*records, "{oops"]))
    assert failed.status == JobStatus.FAILED and not Flag.objects.exists()
    import_file(project=project, path=write_jsonl(tmp_path / "ok.jsonl", records))
    assert Flag.objects.filter(kind="truncated", completion__text="Gravity is the pull").exists()


def test_quality_flags_can_be_left_out(project, tmp_path):
    from curation.models import Flag

    records = [{"prompt": "Q", "completions": [{"text": "cut", "finish_reason": "length"}]}]
    import_file(project=project, path=write_jsonl(tmp_path / "x.jsonl", records), flag_quality=False)
    assert Prompt.objects.exists() and not Flag.objects.exists()


# Stanford alpaca_data.json as published: one pretty-printed JSON array (indent=4), "input" often empty.
ALPACA_ARRAY = [
    {"instruction": "Give three tips for staying healthy.", "input": "",
     "output": "1. Eat a balanced diet.\n2. Exercise regularly.\n3. Get enough sleep."},
    {"instruction": "Translate the sentence into French.", "input": "The cat sleeps.", "output": "Le chat dort."},
    {"instruction": "What is the capital of France?", "input": "", "output": "Paris."},
]


@pytest.mark.parametrize("fmt", ["auto", "alpaca"])
def test_alpaca_data_json_as_published_imports_as_a_streamed_array(project, tmp_path, fmt):
    path = tmp_path / "alpaca_data.json"
    path.write_text(json.dumps(ALPACA_ARRAY, indent=4, ensure_ascii=False))
    job = import_file(project=project, path=path, format=fmt)
    assert job.status == JobStatus.SUCCEEDED, job.message
    assert (job.detected_format, job.read_count, job.imported_count, job.invalid_count) == ("alpaca", 3, 3, 0)
    translated = Prompt.objects.get(project=project, text__startswith="Translate")
    assert translated.messages == [{"role": "user", "content": "Translate the sentence into French.\n\nThe cat sleeps."}]
    assert translated.completions.get().text == "Le chat dort."


def test_generic_records_in_a_json_array_with_a_bom_and_bad_items_numbered(project, tmp_path):
    records = [{"prompt": "one", "completion": "1"}, {"completion": "no prompt"}, "not an object",
               {"messages": [{"role": "user", "content": "two"}], "completions": ["2", "deux"]}]
    path = tmp_path / "records.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(records, indent=2).encode())
    job = import_file(project=project, path=path, skip_invalid=True)
    assert job.detected_format == "jsonl" and job.imported_count == 2
    assert [(e["line"], e["reason"].split(":")[0]) for e in job.errors] == [(2, "missing field"), (3, "wrong type")]
    assert sorted(Prompt.objects.filter(project=project).values_list("text", flat=True)) == ["one", "two"]


def test_a_json_array_cut_short_reports_where_it_broke(project, tmp_path):
    path = tmp_path / "cut.json"
    path.write_text(json.dumps(ALPACA_ARRAY, indent=4)[:-40])
    job = import_file(project=project, path=path, format="alpaca", skip_invalid=True)
    assert job.imported_count == 2 and job.errors[-1]["line"] == 3 and "bad JSON after array item 2" in job.errors[-1]["reason"]


def test_batches_are_bounded_by_bytes_as_well_as_records(project, tmp_path, settings):
    from curation.services.imports import _Batch

    settings.IMPORT_BATCH_RECORDS, settings.IMPORT_BATCH_BYTES = 5000, 200_000
    records = [{"prompt": f"Q{i}", "completion": "x" * 50_000} for i in range(12)]
    sizes, batch = [], _Batch()
    from curation.importers import read_records

    with read_records(write_jsonl(tmp_path / "big.jsonl", records)) as (_, items):
        for item in items:
            if batch.add(item):
                sizes.append(len(batch.records))
                batch.clear()
    assert sizes == [4, 4, 4]  # 50 KB lines: four to a 200 KB batch, not 5,000
    job = import_file(project=project, path=tmp_path / "big.jsonl", skip_invalid=True)
    assert job.status == JobStatus.SUCCEEDED and job.imported_count == 12 and job.resume_line == 12


@pytest.mark.parametrize("skip_invalid", [True, False])
def test_a_nul_inside_metadata_is_a_per_line_error_never_a_half_failed_job(project, tmp_path, settings, skip_invalid):
    settings.IMPORT_BATCH_RECORDS = 4
    records = [{"prompt": f"Q{i}", "completion": f"A{i}", "metadata": {"k": "v"}} for i in range(10)]
    records[6]["metadata"] = {"note": "bad\u0000byte"}
    records[8]["completion"] = "also\u0000bad"
    job = import_file(project=project, path=write_jsonl(tmp_path / "nul.jsonl", records), skip_invalid=skip_invalid)
    assert [e["line"] for e in job.errors] == [7, 9] and "NUL" in job.errors[0]["reason"]
    if skip_invalid:
        assert job.status == JobStatus.SUCCEEDED and (job.imported_count, job.invalid_count) == (8, 2)
        assert Prompt.objects.count() == 8
    else:
        assert job.status == JobStatus.FAILED and not Prompt.objects.exists()


def test_json_nested_ten_thousand_deep_is_a_per_line_error(project, tmp_path):
    path = tmp_path / "deep.jsonl"
    path.write_text(json.dumps({"prompt": "ok", "completion": "fine"}) + "\n"
                    + '{"prompt": "p", "metadata": ' + "[" * 10_000 + "]" * 10_000 + "}\n")
    job = import_file(project=project, path=path, skip_invalid=True)
    assert job.status == JobStatus.SUCCEEDED and job.imported_count == 1
    assert job.errors == [{"line": 2, "reason": "bad JSON: nested too deeply"}]


def test_a_resumed_skip_invalid_import_continues_after_its_last_committed_batch(project, tmp_path, settings):
    """An attempt that died after two batches: the next one skips what they covered, counting nothing twice."""
    settings.IMPORT_BATCH_RECORDS, settings.MEDIA_ROOT = 3, tmp_path
    records = [{"prompt": f"Q{i}", "completion": f"A{i}"} for i in range(10)]
    records[1] = "{broken"
    path = write_jsonl(tmp_path / "x.jsonl", records)
    first = import_file(project=project, path=path, skip_invalid=True)
    assert (first.imported_count, first.invalid_count, first.read_count) == (9, 1, 10)
    Prompt.objects.filter(text__in=[f"Q{i}" for i in range(7, 10)]).delete()  # as if lost with the last batch
    ImportJob.objects.filter(pk=first.pk).update(
        status=JobStatus.QUEUED, resume_line=7, read_count=7, imported_count=6, invalid_count=1, worker="")
    job = ImportJob.objects.get(pk=first.pk)
    job.file.name = path.name
    job.save(update_fields=["file"])

    done = import_job_run(job.pk)

    assert done.status == JobStatus.SUCCEEDED and done.attempts == 2
    assert (done.read_count, done.imported_count, done.duplicate_count, done.invalid_count) == (10, 9, 0, 1)
    assert Prompt.objects.count() == 9 and len(done.errors) == 1


def test_background_import_commits_rows_first_and_its_follow_up_job_flags_them(
        project, curator, tmp_path, monkeypatch, django_capture_on_commit_callbacks, settings):
    """The worker's path: rows are committed (and reviewable) before their flags, which a queued follow-up job
    computes outside the import's transactions; the job's progress is on the import's API."""
    from django.core.files.uploadedfile import SimpleUploadedFile
    from rest_framework.test import APIClient

    from curation import tasks
    from curation.models import Flag, PendingFlag, QualityFlagJob
    from curation.services.quality import quality_flag_job_run

    settings.MEDIA_ROOT = tmp_path / "media"
    queued = []
    monkeypatch.setattr(tasks.import_job_run, "delay", queued.append)
    monkeypatch.setattr(tasks.quality_flag_job_run, "delay", queued.append)
    lines = b"".join(json.dumps({"prompt": f"Question number {i}", "completions": [
        {"text": f"Answer {i}", "finish_reason": "length"}]}).encode() + b"\n" for i in range(3))
    with django_capture_on_commit_callbacks(execute=True):
        job = imports.import_job_create(project=project, uploaded_file=SimpleUploadedFile("o.jsonl", lines),
                                        created_by=curator)
    with django_capture_on_commit_callbacks(execute=True):
        done = import_job_run(job.pk)
    flag_job = QualityFlagJob.objects.get(import_job=job)
    assert done.status == JobStatus.SUCCEEDED and queued == [job.pk, flag_job.pk]
    assert Prompt.objects.count() == 3 and not Flag.objects.exists()  # usable now; flags come after
    assert flag_job.status == JobStatus.QUEUED and (flag_job.total, flag_job.done) == (3, 0)

    client = APIClient()
    client.force_authenticate(curator)
    body = client.get(f"/api/v1/imports/{job.pk}/").json()
    assert body["status"] == "succeeded" and body["flags"]["status"] == "queued" and body["flags"]["total"] == 3

    assert quality_flag_job_run(job_id=flag_job.pk) == JobStatus.SUCCEEDED
    assert quality_flag_job_run(job_id=flag_job.pk) is None  # a redelivered task finds nothing to claim
    flag_job.refresh_from_db()
    assert flag_job.done == 3 and not PendingFlag.objects.exists()
    assert Flag.objects.filter(kind="truncated").count() == 3
    assert client.get(f"/api/v1/imports/{job.pk}/").json()["flags"]["done"] == 3


def test_a_resumed_follow_up_job_flags_only_what_is_left(project, tmp_path, monkeypatch):
    """An attempt that died after some chunks left their marks removed; the resumed job flags the rest."""
    from curation.jobs import services as jobs
    from curation.models import Flag, PendingFlag, QualityFlagJob
    from curation.services import quality

    monkeypatch.setattr(quality, "CHUNK", 2)  # prompts per transaction
    records = [{"prompt": f"Prompt {i}", "completions": [{"text": "cut", "finish_reason": "length"}]} for i in range(5)]
    job = import_file(project=project, path=write_jsonl(tmp_path / "x.jsonl", records), flags_inline=False)
    flag_job = QualityFlagJob.objects.get(import_job=job)
    mark = PendingFlag.objects.get(import_job=job)  # the import's one batch
    assert mark.size == 5 and mark.prompt_ids == sorted(Prompt.objects.values_list("pk", flat=True))
    first, rest = mark.prompt_ids[:2], mark.prompt_ids[2:]
    quality.quality_flag_prompts(first)  # what the dead attempt committed: flags with their marks removed
    PendingFlag.objects.filter(pk=mark.pk).update(prompt_ids=rest, size=len(rest))
    QualityFlagJob.objects.filter(pk=flag_job.pk).update(status=JobStatus.FAILED, done=2)
    jobs.job_resume(job=flag_job, enqueue=False)
    assert quality.quality_flag_job_run(job_id=flag_job.pk) == JobStatus.SUCCEEDED
    flag_job.refresh_from_db()
    assert flag_job.done == 5 and not PendingFlag.objects.exists()
    assert Flag.objects.filter(kind="truncated").count() == 5  # each once: replaced, never doubled


def test_a_prompt_deleted_before_its_flags_is_skipped(project, tmp_path):
    from curation.models import Flag, PendingFlag, QualityFlagJob
    from curation.services.quality import quality_flag_job_run

    records = [{"prompt": f"Prompt {i}", "completions": [{"text": "cut", "finish_reason": "length"}]} for i in range(3)]
    job = import_file(project=project, path=write_jsonl(tmp_path / "x.jsonl", records), flags_inline=False)
    flag_job = QualityFlagJob.objects.get(import_job=job)
    Prompt.objects.filter(pk=min(PendingFlag.objects.get().prompt_ids)).delete()
    assert quality_flag_job_run(job_id=flag_job.pk) == JobStatus.SUCCEEDED
    assert Flag.objects.filter(kind="truncated").count() == 2 and not PendingFlag.objects.exists()
