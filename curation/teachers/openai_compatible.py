"""A teacher behind any server speaking OpenAI chat completions (vLLM, Ollama, llama.cpp, OpenAI).

Each candidate is one request (servers disagree on ``n``), run on a bounded thread pool. Rate
limits, server errors, timeouts and dropped connections are retried with exponential backoff;
a rejected key is not, because retrying cannot fix it and would only hammer the endpoint.
"""

from __future__ import annotations

import json
import logging
import os
import random
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any

from curation.teachers.outbound import OutboundRefused, guarded_opener, url_parts
from curation.teachers.base import (
    Candidate,
    GenerationParams,
    PromptInput,
    PromptResult,
    TeacherAuthError,
    TeacherError,
    to_messages,
)

logger = logging.getLogger(__name__)

RETRIED_STATUSES = {408, 409, 425, 429}
MAX_RESPONSE_BYTES = 32 * 2**20


class _Stopped(TeacherError):
    """A request given up because the run ended (cancel, or another request's fatal error)."""


class _Retryable(Exception):
    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class OpenAICompatibleTeacher:
    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        api_key_env: str = "",
        source: str = "",
        concurrency: int = 4,
        timeout: float = 120.0,
        max_retries: int = 5,
        backoff: float = 1.0,
        max_backoff: float = 60.0,
        allowed_hosts: Sequence[str] = (),
    ) -> None:
        # base_url includes the version prefix, e.g. http://localhost:8000/v1 or https://api.openai.com/v1.
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.completions_url = base_url.rstrip("/") + "/completions"
        self.model = model
        self.api_key_env = api_key_env
        self.source = source or model
        self.concurrency = max(1, concurrency)
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        # Every request dials only public addresses (or hosts an operator allowed), follows no redirect.
        self.opener = guarded_opener(allowed_hosts)

    def _api_key(self) -> str | None:
        """Read the key from the environment at run time: the database only knows the variable's name."""
        if not self.api_key_env:
            return None
        key = os.environ.get(self.api_key_env, "")
        if not key:
            raise TeacherAuthError(f"environment variable {self.api_key_env} is not set; it must hold the API key")
        return key

    def load(self) -> None:
        """Nothing to load; checking the key and the URL here makes a misconfigured teacher fail before any work."""
        try:
            url_parts(self.url)
        except OutboundRefused as error:
            raise TeacherError(str(error)) from None
        self._api_key()

    def generate(self, prompts: Sequence[PromptInput], params: GenerationParams) -> Iterator[PromptResult]:
        key = self._api_key()
        stopped = threading.Event()
        work = (
            (index, k, to_messages(prompt, params.system_prompt))
            for index, prompt in enumerate(prompts)
            for k in range(params.n)
        )
        pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="teacher-http")
        owner: dict[Future, tuple[int, int]] = {}
        pending: set[Future] = set()

        def submit_next() -> None:
            # A small window of queued requests keeps memory flat and lets a cancel drop little work.
            item = next(work, None)
            if item is not None:
                index, k, messages = item
                seed = None if params.seed is None else params.seed + k  # n requests must not share a seed
                future = pool.submit(self._complete, messages, params, seed, key, stopped)
                owner[future] = (index, k)
                pending.add(future)

        for _ in range(self.concurrency * 2):
            submit_next()
        results: dict[int, list[Candidate | None]] = {}
        try:
            while pending:
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                # The error that ended the run must surface, not a request that stopped because of it.
                for future in sorted(finished, key=lambda f: isinstance(f.exception(), _Stopped)):
                    pending.discard(future)
                    index, k = owner.pop(future)
                    slots = results.setdefault(index, [None] * params.n)
                    slots[k] = future.result()  # re-raises the request's error, ending the run
                    submit_next()
                    if all(slots):
                        yield PromptResult(index=index, candidates=list(results.pop(index)))
        finally:
            # Reached on errors and when the caller stops iterating (cancel): drop queued requests
            # and wake retries from their backoff sleep; in-flight ones end within the timeout.
            stopped.set()
            pool.shutdown(wait=False, cancel_futures=True)

    def _complete(
        self, messages: list[dict], params: GenerationParams, seed: int | None, key: str | None,
        stopped: threading.Event,
    ) -> Candidate:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "max_tokens": params.max_new_tokens,
        }
        if seed is not None:
            body["seed"] = seed
        if params.logprobs:
            body["logprobs"] = True
        return self._send(self.url, body, key, stopped, _parse_choice)

    def _send(self, url: str, body: dict[str, Any], key: str | None, stopped: threading.Event,
              parse: Callable[[dict[str, Any]], Any]) -> Any:
        """POST with retries and backoff; ``parse`` turns the JSON answer into the result (or a TeacherError)."""
        for attempt in range(self.max_retries + 1):
            if stopped.is_set():
                raise _Stopped("generation stopped")
            try:
                return parse(self._post(body, key, url))
            except TeacherAuthError:
                stopped.set()  # every queued request would be refused too: send none of them
                raise
            except _Retryable as error:
                if attempt == self.max_retries:
                    raise TeacherError(f"{url}: giving up after {attempt + 1} attempts: {error}") from None
                delay = min(self.max_backoff, self.backoff * 2**attempt) * random.uniform(1.0, 1.25)
                if error.retry_after is not None:
                    delay = min(self.max_backoff, max(delay, error.retry_after))
                logger.warning("teacher request failed (%s); retry %d in %.1fs", error, attempt + 1, delay)
                if stopped.wait(delay):
                    raise _Stopped("generation stopped") from None
        raise AssertionError("unreachable")

    def prompt_logprobs(
        self, prompts: Sequence[Sequence[int]], top_k: int
    ) -> list[list[dict[int | str, float] | None]]:
        """Teacher-forced top-k log-probabilities at every position of each prompt (given as token ids, so the
        server scores exactly our tokenization), in order, ``concurrency`` requests at a time.

        Asks vLLM's completions endpoint for ``prompt_logprobs=k`` with ``max_tokens=1``. Each prompt gives one
        entry per position (the first is None: nothing predicts it), mapping a token id (int, vLLM's
        ``prompt_logprobs``) or a token string (str, the legacy ``echo`` shape) to its log-probability.
        """
        key = self._api_key()
        stopped = threading.Event()

        def one(ids: Sequence[int]) -> list[dict[int | str, float] | None]:
            body = {"model": self.model, "prompt": list(ids), "max_tokens": 1, "temperature": 0.0,
                    "prompt_logprobs": top_k}
            return self._send(self.completions_url, body, key, stopped, _parse_prompt_logprobs)

        with ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="teacher-http") as pool:
            try:
                return list(pool.map(one, prompts))
            finally:
                stopped.set()  # one request's error ends the others' retries

    def _post(self, body: dict[str, Any], key: str | None, url: str | None = None) -> dict[str, Any]:
        # Messages name the status and a reason of our own, never the server's body: the URL is a curator's
        # choice, and an echoed body would let anyone read what an internal address answers.
        url = url or self.url
        headers = {"Content-Type": "application/json"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        request = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers, method="POST")
        try:
            with self.opener.open(request, timeout=self.timeout) as response:
                payload = response.read(MAX_RESPONSE_BYTES + 1)
        except OutboundRefused as error:
            raise TeacherError(f"{url}: {error}") from None
        except urllib.error.HTTPError as error:
            if error.code in (401, 403):
                where = f"the key in ${self.api_key_env}" if self.api_key_env else "the request (no API key configured)"
                raise TeacherAuthError(f"{url} rejected {where}: HTTP {error.code}") from None
            if 300 <= error.code < 400:
                raise TeacherError(f"{url}: HTTP {error.code}, a redirect; redirects are not followed, "
                                   "give the final URL") from None
            if error.code in RETRIED_STATUSES or error.code >= 500:
                raise _Retryable(f"HTTP {error.code}", _retry_after(error.headers.get("Retry-After"))) from None
            raise TeacherError(f"{url}: HTTP {error.code}, the server refused the request") from None
        except (TimeoutError, socket.timeout, urllib.error.URLError, ConnectionError):
            # One message for refused, reset and timed out: telling them apart would make a port scanner.
            raise _Retryable(f"no answer from the server within {self.timeout:g}s") from None
        if len(payload) > MAX_RESPONSE_BYTES:
            raise TeacherError(f"{url}: the response is larger than {MAX_RESPONSE_BYTES // 2**20} MB")
        try:
            return json.loads(payload)
        except ValueError:
            raise TeacherError(f"{url}: the response is not JSON") from None


def _retry_after(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:  # an HTTP date: fall back to our own backoff
        return None


def _parse_choice(data: dict[str, Any]) -> Candidate:
    try:
        choice = data["choices"][0]
        text = choice["message"].get("content") or ""
    except (KeyError, IndexError, TypeError, AttributeError):
        raise TeacherError("the response is not a chat completion (no choices[0].message)") from None
    content_logprobs = (choice.get("logprobs") or {}).get("content") or []
    logprobs = [round(float(item["logprob"]), 4) for item in content_logprobs] or None
    usage = data.get("usage") or {}
    # Servers that omit usage still let tokens/s be estimated from the text.
    tokens = usage.get("completion_tokens") or len(logprobs or []) or len(text.split())
    return Candidate(
        text=text.strip(),
        finish_reason="length" if choice.get("finish_reason") == "length" else "stop",
        completion_tokens=int(tokens),
        logprobs=logprobs,
    )


def _parse_prompt_logprobs(data: dict[str, Any]) -> list[dict[int | str, float] | None]:
    """vLLM: choices[0].prompt_logprobs = [None, {"<id>": {"logprob": x, ...}}, ...]; the legacy echo shape:
    choices[0].logprobs.top_logprobs = [None, {"<token>": x}, ...]."""
    try:
        choice = data["choices"][0]
        if choice.get("prompt_logprobs"):
            return [None if entry is None else {
                int(token_id): float(value["logprob"] if isinstance(value, dict) else value)
                for token_id, value in entry.items()
            } for entry in choice["prompt_logprobs"]]
        top = (choice.get("logprobs") or {}).get("top_logprobs")
        if top:
            return [None if entry is None else {str(t): float(v) for t, v in entry.items()} for entry in top]
    except (KeyError, IndexError, TypeError, AttributeError, ValueError):
        raise TeacherError("the response's prompt log-probabilities are not in vLLM's shape") from None
    raise TeacherError("the server returned no prompt log-probabilities: it must support teacher-forced "
                       "scoring (vLLM's completions endpoint with prompt_logprobs)")
