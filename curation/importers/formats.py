"""One parser per JSON-lines format: a decoded object in, (messages, candidates, external id, metadata) out.

Parsers raise ``BadRecord`` with the reason; the reader adds the line number.
"""

from __future__ import annotations

from typing import Any

from curation.importers.records import (
    BadRecord,
    Candidate,
    check_messages,
    check_prompt_messages,
    check_type,
    content_text,
    external_id,
    finish_reason,
    metadata,
    non_empty,
    require,
)

Parsed = tuple[list[dict[str, str]], list[Candidate], str, dict]


def parse_generic(obj: dict) -> Parsed:
    """``prompt`` or ``messages``; ``completion`` or ``completions`` (strings or objects); optional metadata.

    A record without completions is a prompt for the teacher to answer later. ``messages`` ending with an
    assistant turn and no completions is the SFT layout: that last turn is the completion.
    """
    if "prompt" in obj and "messages" in obj:
        raise BadRecord("wrong type: give either prompt or messages, not both")
    default_source = check_type(obj.get("source") or obj.get("model") or "import", str, "source")
    has_completions = "completion" in obj or "completions" in obj
    if "messages" in obj:
        messages = check_messages(obj["messages"])
        if messages[-1]["role"] == "assistant" and not has_completions:
            candidates = [Candidate(text=messages.pop()["content"], source=default_source)]
            if not messages:
                raise BadRecord("missing field: messages hold no user turn before the assistant reply")
        else:
            candidates = _generic_candidates(obj, default_source)
        check_prompt_messages(messages)
    elif "prompt" in obj:
        prompt = non_empty(require(obj, "prompt", str), "prompt")
        messages = [{"role": "user", "content": prompt}]
        if obj.get("system") is not None:
            messages.insert(0, {"role": "system", "content": non_empty(check_type(obj["system"], str, "system"), "system")})
        candidates = _generic_candidates(obj, default_source)
    else:
        raise BadRecord("missing field: prompt (a string) or messages (a list of turns)")
    ident = obj.get("external_id", obj.get("id"))
    return messages, candidates, external_id(ident), metadata(obj.get("metadata"))


def _generic_candidates(obj: dict, default_source: str) -> list[Candidate]:
    if "completion" in obj and "completions" in obj:
        raise BadRecord("wrong type: give either completion or completions, not both")
    if "completion" in obj:
        items, label = [require(obj, "completion", (str, dict))], "completion"
    elif "completions" in obj:
        items, label = require(obj, "completions", list), "completions"
    else:
        return []
    candidates = []
    for index, item in enumerate(items):
        where = label if label == "completion" else f"completions[{index}]"
        if isinstance(item, str):
            candidates.append(Candidate(text=non_empty(item, where), source=default_source))
            continue
        check_type(item, dict, where)
        params = item.get("params") or {}
        candidates.append(
            Candidate(
                text=non_empty(require(item, "text", str, f"{where}.text"), f"{where}.text"),
                source=check_type(item.get("source") or default_source, str, f"{where}.source")[:200],
                finish_reason=finish_reason(item.get("finish_reason"), f"{where}.finish_reason"),
                params=check_type(params, dict, f"{where}.params"),
                logprobs=check_type(item.get("logprobs"), (list, dict, type(None)), f"{where}.logprobs"),
            )
        )
    return candidates


SHAREGPT_ROLES = {"system": "system", "human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant"}


def parse_sharegpt(obj: dict) -> Parsed:
    """``conversations`` of {from, value}; a final gpt turn is the completion, the turns before it the prompt.

    A conversation ending with a human turn has no answer yet: it is imported as a prompt alone.
    """
    turns = require(obj, "conversations", list)
    messages = []
    for index, turn in enumerate(turns):
        where = f"conversations[{index}]"
        check_type(turn, dict, where)
        speaker = require(turn, "from", str, f"{where}.from")
        if speaker not in SHAREGPT_ROLES:
            raise BadRecord(f"wrong type: {where}.from must be human, gpt or system, not {speaker!r}")
        messages.append({"role": SHAREGPT_ROLES[speaker], "content": content_text(turn.get("value"), f"{where}.value")})
    if not messages:
        raise BadRecord("empty text: conversations is an empty list")
    candidates = []
    if messages[-1]["role"] == "assistant":
        candidates.append(Candidate(text=messages.pop()["content"], source=_source(obj)))
    if not messages:
        raise BadRecord("missing field: conversations hold no human turn")
    check_prompt_messages(messages, "conversations")
    return messages, candidates, external_id(obj.get("id")), metadata(obj.get("metadata"))


def parse_alpaca(obj: dict) -> Parsed:
    """``instruction`` + optional ``input`` (joined by a blank line) is the prompt; ``output`` the completion."""
    instruction = non_empty(require(obj, "instruction", str), "instruction")
    extra = check_type(obj.get("input") or "", str, "input")
    prompt = f"{instruction}\n\n{extra}" if extra.strip() else instruction
    messages = [{"role": "user", "content": prompt}]
    if obj.get("system"):
        messages.insert(0, {"role": "system", "content": check_type(obj["system"], str, "system")})
    candidates = []
    if "output" in obj:
        candidates.append(Candidate(text=non_empty(require(obj, "output", str), "output"), source=_source(obj)))
    return messages, candidates, external_id(obj.get("id")), metadata(obj.get("metadata"))


def parse_openai_batch(obj: dict, request_for) -> Parsed:
    """One line of an OpenAI Batch output; ``request_for(custom_id)`` gives the request body of the input file."""
    custom_id = require(obj, "custom_id", str)
    if obj.get("error"):
        raise BadRecord(f"the request failed: {_error_text(obj['error'])}")
    response = require(obj, "response", dict)
    status = response.get("status_code", 200)
    body = require(response, "body", dict, "response.body")
    if status != 200:
        raise BadRecord(f"the request failed with HTTP {status}: {_error_text(body.get('error'))}")
    choices = require(body, "choices", list, "response.body.choices")
    if not choices:
        raise BadRecord("empty text: response.body.choices is an empty list")
    source = check_type(body.get("model") or "openai-batch", str, "response.body.model")[:200]
    request = request_for(custom_id)
    messages = check_prompt_messages(check_messages(request.get("messages"), "batch input body.messages"))
    params = {k: v for k, v in sorted(request.items()) if k not in ("messages", "metadata")}
    candidates = []
    for index, choice in enumerate(choices):
        where = f"response.body.choices[{index}]"
        check_type(choice, dict, where)
        message = require(choice, "message", dict, f"{where}.message")
        text = content_text(message.get("content"), f"{where}.message.content")
        reason = finish_reason(choice.get("finish_reason"), f"{where}.finish_reason")
        candidates.append(Candidate(text=text, source=source, finish_reason=reason, params=params))
    meta = {"batch_request_id": obj.get("id") or ""}
    return messages, candidates, external_id(custom_id, "custom_id"), meta


def _source(obj: dict) -> str:
    return check_type(obj.get("source") or obj.get("model") or "import", str, "source")[:200]


def _error_text(error: Any) -> str:
    if isinstance(error, dict):
        return str(error.get("message") or error.get("code") or error)
    return str(error or "no details")
