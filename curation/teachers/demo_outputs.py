"""Generate the demo project's candidates with the real demo teacher (run once, output committed).

Reads ``demo/prompts.jsonl`` and writes ``demo/demo_outputs.jsonl`` in the generic import format,
two sampled candidates per prompt. Progress is appended to a file in the data dir (not the repo),
so a killed run resumes where it stopped.

    python -m curation.teachers.demo_outputs [--limit 300] [--max-new-tokens 128]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from curation.teachers.base import GenerationParams
from curation.teachers.demo_model import DEMO_MODEL_NAME, DEMO_SYSTEM_PROMPT, build_demo_model
from curation.teachers.local import LocalTeacher
from curation.teachers.paths import REPO_ROOT, data_dir

PROMPTS = REPO_ROOT / "demo" / "prompts.jsonl"
OUTPUTS = REPO_ROOT / "demo" / "demo_outputs.jsonl"


def read_jsonl(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def generate_demo_outputs(
    *, limit: int | None, params: GenerationParams, batch_size: int, threads: int | None = None, out: Path = OUTPUTS
) -> Path:
    rows = read_jsonl(PROMPTS)[:limit]
    partial = data_dir() / "demo_outputs.partial.jsonl"
    done = {row["prompt"]: row for row in read_jsonl(partial)} if partial.exists() else {}
    todo = [row for row in rows if row["prompt"] not in done]
    teacher = LocalTeacher(build_demo_model(log=print), source=DEMO_MODEL_NAME, batch_size=batch_size, threads=threads)
    started, tokens = time.monotonic(), 0
    with partial.open("a", encoding="utf-8") as handle:
        for result in teacher.generate([row["prompt"] for row in todo], params):
            row = todo[result.index]
            record = {
                "prompt": row["prompt"],
                "completions": [
                    {"text": c.text, "source": teacher.source, "finish_reason": c.finish_reason,
                     "params": params.as_dict()}
                    for c in result.candidates
                    if c.text  # the importer refuses empty answers, and they teach nothing
                ],
                "metadata": row.get("metadata", {}),
            }
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
            handle.flush()
            done[row["prompt"]] = record
            tokens += result.completion_tokens
            elapsed = time.monotonic() - started
            print(f"{len(done)}/{len(rows)} prompts, {tokens / elapsed:.1f} tokens/s, {elapsed:.0f}s", flush=True)
    with out.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(done[row["prompt"]], ensure_ascii=False) + "\n")
    partial.unlink()
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--n", type=int, default=2)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--temperature", type=float, default=0.7)
    parser.add_argument("--top-p", type=float, default=0.9)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--system-prompt", default=DEMO_SYSTEM_PROMPT)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = parser.parse_args(argv)
    params = GenerationParams(
        n=args.n, temperature=args.temperature, top_p=args.top_p,
        max_new_tokens=args.max_new_tokens, seed=args.seed, system_prompt=args.system_prompt,
    )
    print(generate_demo_outputs(limit=args.limit, params=params, batch_size=args.batch_size, threads=args.threads))


if __name__ == "__main__":
    main()
