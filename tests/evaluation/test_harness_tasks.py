"""Task resolution and the fail-fast reachability check (no database).

Anything that could ask the hub runs in a child process with the offline guards
set before ``datasets`` is imported, exactly as evaluation children run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from evaluation.harness import TaskUnreachable
from evaluation.harness.process import OFFLINE_ENV, PROJECT_ROOT
from evaluation.harness.tasks import check_reachable, folder_task_names, leaf_configs

CHECK_SCRIPT = textwrap.dedent("""
    import json, sys
    from lm_eval.tasks import TaskManager
    from evaluation.harness.tasks import check_reachable
    manager = TaskManager()
    out = {}
    for name in sys.argv[1:]:
        try:
            check_reachable(manager, [name], offline=True)
            out[name] = "ok"
        except Exception as exc:
            out[name] = f"{type(exc).__name__}: {exc}"
    print(json.dumps(out))
""")


@pytest.fixture(scope="module")
def builtin_messages(tmp_path_factory):
    env = {**os.environ, **OFFLINE_ENV, "PYTHONPATH": str(PROJECT_ROOT),
           "HF_HOME": str(tmp_path_factory.mktemp("hf_home"))}
    proc = subprocess.run([sys.executable, "-c", CHECK_SCRIPT, "hellaswag", "ai2_arc", "gsm8k"],
                          env=env, capture_output=True, text=True, timeout=300, cwd=PROJECT_ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_builtin_task_without_local_data_fails_with_a_clear_message(builtin_messages):
    message = builtin_messages["hellaswag"]
    assert message.startswith("TaskUnreachable: Task 'hellaswag' cannot run here")
    assert "Rowan/hellaswag" in message and "needs network access" in message and "local copy" in message


@pytest.mark.slow
def test_tags_and_groups_name_the_leaf_task(builtin_messages):
    assert builtin_messages["ai2_arc"].startswith("TaskUnreachable: Task 'arc_challenge' (part of 'ai2_arc')")
    assert builtin_messages["gsm8k"].startswith("TaskUnreachable: Task 'gsm8k' cannot run here: its dataset "
                                                "'openai/gsm8k' (main) is not on this machine")


@pytest.mark.slow
def test_check_command_exits_non_zero(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "HF_HOME": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-m", "evaluation.harness", "check", "arc_easy"],
                          env=env, capture_output=True, text=True, timeout=300, cwd=PROJECT_ROOT)
    assert proc.returncode == 2
    assert "Task 'arc_easy' cannot run here" in proc.stderr


def _task_folder(tmp_path, data_file: str):
    folder = tmp_path / "mytasks"
    folder.mkdir()
    (folder / "qa.yaml").write_text(textwrap.dedent(f"""
        task: my_qa
        dataset_path: json
        dataset_kwargs:
          data_files:
            test: {data_file}
        test_split: test
        output_type: generate_until
        doc_to_text: q
        doc_to_target: a
        metric_list:
          - metric: exact_match
    """))
    (folder / "qa2.yaml").write_text("include: qa.yaml\ntask: my_qa2\n")
    (folder / "group.yaml").write_text("group: my_group\ntask:\n  - my_qa\n  - my_qa2\n")
    return folder


def _manager(folder):
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=str(folder), include_defaults=False)


def test_local_json_task_is_reachable_and_group_expands(tmp_path):
    data = tmp_path / "qa.jsonl"
    data.write_text('{"q": "2+2?", "a": "4"}\n')
    folder = _task_folder(tmp_path, str(data))
    manager = _manager(folder)
    check_reachable(manager, ["my_group"], offline=True)
    assert [c["task"] for c in leaf_configs(manager, "my_group")] == ["my_qa", "my_qa2"]
    assert folder_task_names(folder) == ["my_group"]


@pytest.mark.parametrize("data_file, problem", [
    ("/nonexistent/qa.jsonl", "its data file /nonexistent/qa.jsonl does not exist"),
    ("https://example.org/qa.jsonl", "is remote and the network is off"),
])
def test_missing_or_remote_data_files_are_unreachable(tmp_path, data_file, problem):
    manager = _manager(_task_folder(tmp_path, data_file))
    with pytest.raises(TaskUnreachable, match="Task 'my_qa' .part of 'my_group'. cannot run here") as exc:
        check_reachable(manager, ["my_group"], offline=True)
    assert problem in str(exc.value)


def test_unknown_task_name(tmp_path):
    from evaluation.harness import HarnessError

    with pytest.raises(HarnessError, match="Unknown task 'nope'"):
        leaf_configs(_manager(_task_folder(tmp_path, "x.jsonl")), "nope")
