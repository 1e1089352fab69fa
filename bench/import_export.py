"""Import / freeze / export throughput and memory, through the real services, on whatever DATABASE_URL says.

    python bench/import_export.py [--n 200000] [--flags-n 20000] [--wide-mb 200] [--keep]

Generates a synthetic JSONL of N records (a prompt and two teacher completions each), imports it into a fresh
project by the default path (quality flags on: THE import figure, the rows committed with their follow-up
flags job queued), runs that follow-up job (import_flags: the flags of every prompt imported), imports it into a
second fresh project without flags (beside it), imports it again (all duplicates), computes the quality flags of
the first --flags-n prompts alone, approves every prompt (one review each, not timed), freezes a dataset version,
and exports it as SFT and DPO JSON lines; then imports a second file of --wide-mb MB made of 50 KB lines (few
records, each large: the case where batches must be bounded by bytes, not only by records). "rows" are records
(prompts) throughout. Prints
rows/s, CPU seconds (this process, and its PostgreSQL backend) and peak RSS per phase, and writes
bench/results/import_export.json (one entry per database vendor). DEBUG is off unless DJANGO_DEBUG says otherwise.

Peak RSS: each phase runs in its own child process (a fresh interpreter, Django set up, nothing else loaded);
the child reports ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` (the high-water mark of its resident memory,
start-up included) and its RSS just before the phase began, so ``peak - baseline`` is what the phase added.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "import_export.json"
WORDS = ("model teacher student answer question data token layer weight train curate review edit rank "
         "prompt batch loss gradient sample value number city river planet colour music history").split()


def setup_django() -> None:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    # Measure what production runs: DEBUG keeps every query's text and slows the ORM down.
    if os.environ.setdefault("DJANGO_DEBUG", "0") == "0":
        os.environ.setdefault("SECRET_KEY", "bench-only-" + "x" * 40)
    import django

    django.setup()


def rss_mb() -> float:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


def sentence(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words))


def generate_wide(path: Path, megabytes: int, line_kb: int = 50) -> int:
    """Records of about ``line_kb`` KB each (a long prompt and two long completions), ``megabytes`` in all."""
    rng = random.Random(1)
    n = megabytes * 1024 // line_kb
    words = line_kb * 1024 // 3 // 7  # three texts per line, ~7 bytes a word
    with open(path, "w", encoding="utf-8") as handle:
        for i in range(n):
            record = {"prompt": f"Document {i}: {sentence(rng, words)}",
                      "completions": [{"text": f"Summary {i}a. {sentence(rng, words)}"},
                                      {"text": f"Summary {i}b. {sentence(rng, words)}"}]}
            handle.write(json.dumps(record) + "\n")
    return n


def generate(path: Path, n: int) -> None:
    rng = random.Random(0)
    with open(path, "w", encoding="utf-8") as handle:
        for i in range(n):
            record = {
                "prompt": f"Question {i}: {sentence(rng, 15)}?",
                "completions": [
                    {"text": f"Answer {i}a. {sentence(rng, 50)}.", "source": "bench-teacher", "finish_reason": "stop",
                     "params": {"temperature": 0.7}},
                    {"text": f"Answer {i}b. {sentence(rng, 50)}", "source": "bench-teacher", "finish_reason": "length",
                     "params": {"temperature": 0.7}},
                ],
                "metadata": {"i": i},
            }
            handle.write(json.dumps(record) + "\n")


# --- phases, each run in a child process -----------------------------------------------------------------


def phase_import(project_slug: str, spec: str) -> dict:
    """``flags:PATH`` imports as every door does by default (quality flags on); ``no-flags:PATH`` without them."""
    from curation.models import Project
    from curation.services.imports import import_file

    mode, path = spec.split(":", 1)
    project = Project.objects.get(slug=project_slug)
    # flags_inline=False: the import ends when its rows are committed, with its follow-up job queued (what a worker
    # or the upload page does); "import-flags" then runs that job, timed on its own.
    job = import_file(project=project, path=path, format="jsonl", flag_quality=mode == "flags", flags_inline=False)
    assert job.status == "succeeded", job.message
    return {"rows": job.read_count, "imported": job.imported_count, "message": job.message, "flags": mode == "flags"}


def phase_import_flags(project_slug: str, _: str) -> dict:
    """The follow-up job of the flagged import: the quality flags of every prompt it wrote."""
    from curation.models import Flag, QualityFlagJob
    from curation.services.quality import quality_flag_job_run

    job = QualityFlagJob.objects.filter(import_job__project__slug=project_slug).latest("pk")
    assert quality_flag_job_run(job_id=job.pk) == "succeeded"
    return {"rows": job.total, "flags": Flag.objects.filter(prompt__project__slug=project_slug).count()}


def phase_flags(project_slug: str, limit: str) -> dict:
    from curation.models import Prompt
    from curation.services.quality import quality_flag_prompts

    ids = list(Prompt.objects.filter(project__slug=project_slug).order_by("id").values_list("id", flat=True)[: int(limit)])
    flags = sum(quality_flag_prompts(ids[start:start + 5000]) for start in range(0, len(ids), 5000))
    return {"rows": len(ids), "flags": flags}


def phase_freeze(project_slug: str, _: str) -> dict:
    from curation.models import Project
    from curation.services.datasets import dataset_version_freeze

    version = dataset_version_freeze(project=Project.objects.get(slug=project_slug), heldout_fraction=0.1)
    return {"rows": version.row_count, "version_id": version.pk, "pairs": version.pair_count}


def phase_export(version_id: str, spec: str) -> dict:
    from curation.models import DatasetVersion
    from curation.services.datasets import dataset_export

    fmt, out = spec.split(":", 1)
    count = dataset_export(version=DatasetVersion.objects.get(pk=int(version_id)), format=fmt, split="all", out=out)
    return {"rows": count, "bytes": Path(out).stat().st_size}


PHASES = {"import": phase_import, "import_flags": phase_import_flags, "flags": phase_flags, "freeze": phase_freeze,
          "export": phase_export}


def run_child(phase: str, target: str, arg: str) -> dict:
    done = subprocess.run(
        [sys.executable, __file__, "--phase", phase, "--target", target, "--arg", arg],
        check=True, capture_output=True, text=True, cwd=ROOT,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def server_cpu_s() -> float | None:
    """CPU seconds of this connection's PostgreSQL backend, when the server runs on this machine."""
    from django.db import connection

    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def child_main(phase: str, target: str, arg: str) -> None:
    setup_django()
    baseline = rss_mb()
    server_before = server_cpu_s()
    started, cpu = time.perf_counter(), time.process_time()
    result = PHASES[phase](target, arg)
    seconds = time.perf_counter() - started
    server = server_cpu_s()
    # CPU seconds of this process (the Python side) and of its database backend: on a busy machine the wall
    # time also holds the wait for a free core, and client + server CPU is what the work itself costs.
    result.update(seconds=round(seconds, 2), cpu_s=round(time.process_time() - cpu, 2),
                  server_cpu_s=round(server - server_before, 2) if server is not None else None,
                  rows_per_s=round(result["rows"] / seconds),
                  peak_rss_mb=round(peak_rss_mb(), 1), baseline_rss_mb=round(baseline, 1))
    print(json.dumps(result))


# --- the parent: set up, run the phases, report ---------------------------------------------------------


def approve_everything(project) -> None:
    """One approving review per prompt (best = first completion), in bulk: the freeze needs curated data."""
    from django.contrib.auth import get_user_model
    from django.db import transaction

    from curation.models import Completion, Prompt, Review

    annotator, _ = get_user_model().objects.get_or_create(username="bench-annotator")
    with transaction.atomic():
        Prompt.objects.filter(project=project).update(status=Prompt.Status.APPROVED, review_count=1)
        rows = Completion.objects.filter(prompt__project=project).order_by("prompt_id", "id").values_list("prompt_id", "id")
        batch, current, ids = [], None, []
        for prompt_id, completion_id in rows.iterator(chunk_size=5000):
            if prompt_id != current and current is not None:
                batch.append(Review(prompt_id=current, annotator=annotator, decision="approve", chosen_id=ids[0], ranking=ids))
                ids = []
            current = prompt_id
            ids.append(completion_id)
            if len(batch) >= 5000:
                Review.objects.bulk_create(batch)
                batch = []
        if current is not None:
            batch.append(Review(prompt_id=current, annotator=annotator, decision="approve", chosen_id=ids[0], ranking=ids))
        Review.objects.bulk_create(batch)


def cleanup(project) -> None:
    """Raw deletes: the ORM's cascade would load hundreds of thousands of objects to delete them."""
    from django.db import connection, transaction

    from curation import models as m

    in_prompts = "prompt_id IN (SELECT id FROM {p} WHERE project_id = %s)"
    statements = [
        (m.DatasetRow, "version_id IN (SELECT id FROM {v} WHERE project_id = %s)"),
        (m.DatasetVersion, "project_id = %s"),
        (m.CompletionRevision, "completion_id IN (SELECT c.id FROM {c} c JOIN {p} p ON p.id = c.prompt_id WHERE p.project_id = %s)"),
        *((model, in_prompts) for model in (m.Flag, m.Tag, m.Assignment, m.SimilarityKey, m.Review, m.Completion)),
        (m.PendingFlag, "import_job_id IN (SELECT id FROM {j} WHERE project_id = %s)"),
        (m.Prompt, "project_id = %s"),
        (m.QualityFlagJob, "import_job_id IN (SELECT id FROM {j} WHERE project_id = %s)"),
        (m.ImportJob, "project_id = %s"),
    ]
    tables = {"v": m.DatasetVersion._meta.db_table, "p": m.Prompt._meta.db_table, "c": m.Completion._meta.db_table,
              "j": m.ImportJob._meta.db_table}
    with transaction.atomic(), connection.cursor() as cursor:
        for model, where in statements:
            cursor.execute(f"DELETE FROM {model._meta.db_table} WHERE {where.format(**tables)}", [project.pk])  # noqa: S608
        project.delete()
    if connection.vendor == "postgresql":  # leave no dead rows behind to slow the next run (autovacuum may be off)
        with connection.cursor() as cursor:
            for model, _ in statements:
                cursor.execute(f"VACUUM ANALYZE {model._meta.db_table}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--flags-n", type=int, default=20_000, help="Prompts to compute quality flags for.")
    parser.add_argument("--wide-mb", type=int, default=200, help="Size of the file of 50 KB lines (0: skip).")
    parser.add_argument("--keep", action="store_true", help="Keep the bench project's rows afterwards.")
    parser.add_argument("--phase", choices=PHASES, help=argparse.SUPPRESS)
    parser.add_argument("--target", help=argparse.SUPPRESS)
    parser.add_argument("--arg", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        child_main(args.phase, args.target, args.arg)
        return
    setup_django()
    from django.db import connection

    from curation.models import Project

    work = Path(tempfile.mkdtemp(prefix="bench-import-export-"))
    source = work / "synthetic.jsonl"
    started = time.perf_counter()
    generate(source, args.n)
    print(f"Generated {args.n:,} records ({source.stat().st_size / 2**20:.0f} MB) in {time.perf_counter() - started:.1f}s")
    project = Project.objects.create(name=f"Bench {time.time():.0f}", slug=f"bench-{time.time_ns()}")
    bare = Project.objects.create(name=f"Bench no flags {time.time():.0f}", slug=f"bench-bare-{time.time_ns()}")
    wide_project = Project.objects.create(name=f"Bench wide {time.time():.0f}", slug=f"bench-wide-{time.time_ns()}")
    results = {"n": args.n, "database": connection.vendor, "file_mb": round(source.stat().st_size / 2**20, 1),
               "load_average_before": os.getloadavg()}
    phases = ["import", "import_flags", "import_no_flags", "reimport", "flags", "freeze", "export_sft", "export_dpo"]
    try:
        # THE import figure: the default path (quality flags on), as the command, the API and the page run it.
        results["import"] = run_child("import", project.slug, f"flags:{source}")
        results["import_flags"] = run_child("import_flags", project.slug, "")
        results["import_no_flags"] = run_child("import", bare.slug, f"no-flags:{source}")
        if not args.keep:
            cleanup(bare)
        results["reimport"] = run_child("import", project.slug, f"flags:{source}")
        results["flags"] = run_child("flags", project.slug, str(args.flags_n))
        approve_everything(project)
        results["freeze"] = run_child("freeze", project.slug, "")
        version_id = str(results["freeze"]["version_id"])
        results["export_sft"] = run_child("export", version_id, f"sft:{work / 'sft.jsonl'}")
        results["export_dpo"] = run_child("export", version_id, f"dpo:{work / 'dpo.jsonl'}")
        if args.wide_mb:
            wide = work / "wide.jsonl"
            generate_wide(wide, args.wide_mb)
            results["wide_file_mb"] = round(wide.stat().st_size / 2**20, 1)
            results["import_wide"] = run_child("import", wide_project.slug, f"flags:{wide}")
            phases.append("import_wide")
    finally:
        if not args.keep:
            cleanup(project)
            cleanup(wide_project)
        for path in work.iterdir():
            path.unlink()
        work.rmdir()
    results["load_average_after"] = os.getloadavg()
    print(f"load average {results['load_average_before'][0]:.1f} before, {results['load_average_after'][0]:.1f} after")
    if args.wide_mb:
        print(f"import_wide: a {results['wide_file_mb']:.0f} MB file of 50 KB lines")
    for name in phases:
        r = results[name]
        server = f" + db {r['server_cpu_s']:.2f}s" if r["server_cpu_s"] is not None else ""
        print(f"{name:15s} {r['rows']:>9,} rows  {r['seconds']:7.2f}s (cpu {r['cpu_s']:.2f}s{server})  "
              f"{r['rows_per_s']:>9,} rows/s  "
              f"peak RSS {r['peak_rss_mb']:6.1f} MB (baseline {r['baseline_rss_mb']:.1f} MB)")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    stored = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    stored[connection.vendor] = results  # one entry per database, so SQLite and PostgreSQL runs sit side by side
    RESULTS.write_text(json.dumps(stored, indent=2) + "\n")
    print(f"Results: {RESULTS}")


if __name__ == "__main__":
    main()
