"""Dataclasses that go in and come out of the harness (no Django, no heavy imports).

Everything here round-trips through JSON, because the parent process hands a
config to a child process (one model per process) and reads the result back.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

ModelKind = Literal["hf", "gguf", "api"]

# Names of the two tasks written from a held-out file; stable across runs so that
# results of different runs and models line up by task name.
HELDOUT_GEN_TASK = "heldout_gen"
HELDOUT_PPL_TASK = "heldout_ppl"
HELDOUT_TASKS = (HELDOUT_GEN_TASK, HELDOUT_PPL_TASK)


@dataclass
class ModelSpec:
    """One model to evaluate.

    kind "hf": ``path`` is a saved transformers folder. kind "gguf": ``path`` is a
    .gguf file, dequantized by transformers. kind "api": ``path`` is the URL of an
    OpenAI-compatible chat-completions endpoint and ``api_model`` the model name.
    """

    label: str
    kind: ModelKind
    path: str
    role: str = "student"
    api_model: str = ""
    # "local" talks to any OpenAI-compatible server; "openai" reads OPENAI_API_KEY.
    api_flavour: Literal["local", "openai"] = "local"

    @property
    def is_api(self) -> bool:
        return self.kind == "api"


@dataclass
class HeldoutSpec:
    """A held-out file in the curation "sft" export format, turned into two tasks."""

    data_file: str
    max_gen_toks: int = 256


@dataclass
class EvalOptions:
    limit: float | None = None
    num_fewshot: int | None = None
    apply_chat_template: bool = True
    batch_size: int = 8


@dataclass
class ModelRunConfig:
    """Everything one child process needs to evaluate one model."""

    model: ModelSpec
    output_dir: str
    tasks: list[str] = field(default_factory=list)  # built-in names or YAML paths
    task_dirs: list[str] = field(default_factory=list)  # user folders of task YAML
    heldout: HeldoutSpec | None = None
    options: EvalOptions = field(default_factory=EvalOptions)
    # Guards against the hub: datasets and models are read from disk and cache only.
    offline: bool = True

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelRunConfig:
        data = dict(data)
        data["model"] = ModelSpec(**data["model"])
        data["options"] = EvalOptions(**data.get("options") or {})
        if data.get("heldout"):
            data["heldout"] = HeldoutSpec(**data["heldout"])
        return cls(**data)


@dataclass
class MetricResult:
    value: float | None
    stderr: float | None
    higher_is_better: bool | None


@dataclass
class Measurements:
    """Size and speed of one model; speed comes from the generate_until requests."""

    parameter_count: int | None = None
    size_on_disk_bytes: int | None = None
    batch_size: int | None = None
    prompts: int = 0
    generated_tokens: int | None = None
    generate_seconds: float = 0.0
    tokens_per_second: float | None = None
    batch_latency_s_mean: float | None = None
    batch_latency_s_p50: float | None = None
    measured_on: str = ""  # the task whose prompts were timed


@dataclass
class ModelResult:
    label: str
    role: str
    metrics: dict[str, dict[str, MetricResult]]  # task -> metric -> result
    n_samples: dict[str, int]
    measurements: Measurements
    notes: list[str] = field(default_factory=list)
    output_dir: str = ""
    samples_files: dict[str, str] = field(default_factory=dict)  # task -> JSON file
    lm_eval_command: list[str] = field(default_factory=list)
    wall_seconds: float = 0.0

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelResult:
        data = dict(data)
        data["metrics"] = {
            task: {name: MetricResult(**m) for name, m in metrics.items()}
            for task, metrics in data["metrics"].items()
        }
        data["measurements"] = Measurements(**data["measurements"])
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    @classmethod
    def load(cls, path: Path) -> ModelResult:
        return cls.from_dict(json.loads(Path(path).read_text()))


class HarnessError(Exception):
    """A failure with a message meant for the person who launched the run."""


class ChildDied(HarnessError):
    """The model's process ended by a signal with no answer (killed, out of memory): a lost attempt, not a bad run."""

    def __init__(self, message: str, returncode: int) -> None:
        super().__init__(message)
        self.returncode = returncode


class TaskUnreachable(HarnessError):
    """A task's data cannot be read here (no network, no local copy)."""


class EvaluationCancelled(HarnessError):
    pass


def plan_runs(
    models: list[ModelSpec],
    *,
    output_dir: str,
    tasks: list[str] | None = None,
    task_dirs: list[str] | None = None,
    heldout: HeldoutSpec | None = None,
    options: EvalOptions | None = None,
    offline: bool = True,
) -> list[ModelRunConfig]:
    """One config per model, each with its own output folder, all else shared."""
    configs = []
    for i, model in enumerate(models):
        slug = "".join(c if c.isalnum() or c in "-_." else "-" for c in model.label)[:60]
        configs.append(
            ModelRunConfig(
                model=model,
                output_dir=str(Path(output_dir) / f"{i:02d}_{slug}"),
                tasks=list(tasks or []),
                task_dirs=list(task_dirs or []),
                heldout=heldout,
                options=options or EvalOptions(),
                offline=offline,
            )
        )
    return configs


def parse_model(text: str) -> ModelSpec:
    """``[LABEL=]KIND:PATH`` (KIND hf, gguf or api; for api, PATH is ``URL#MODEL``).

    The label "teacher" marks the teacher; without a label, the folder, file or model name is used.
    """
    text = text.strip()
    head, sep, tail = text.partition("=")
    label, rest = (head, tail) if sep and ":" not in head else ("", text)
    kind, sep2, path = rest.partition(":")
    if not sep2 or kind not in ("hf", "gguf", "api") or not path or any(c.isspace() for c in text):
        raise HarnessError(f"model {text!r}: expected [LABEL=]hf:FOLDER, [LABEL=]gguf:FILE or [LABEL=]api:URL#MODEL")
    role = "teacher" if label == "teacher" else "student"
    if kind == "api":
        url, _, api_model = path.partition("#")
        if not api_model:
            raise HarnessError(f"model {text!r}: an endpoint needs its model name after '#'")
        return ModelSpec(label=label or api_model, kind="api", path=url, api_model=api_model, role=role)
    local = Path(path).expanduser()
    return ModelSpec(label=label or (local.stem if kind == "gguf" else local.name), kind=kind, path=path, role=role)
