"""Schemathesis against the live schema, over real HTTP, as a logged-in curator.

Every operation of ``/api/schema/`` gets a bounded number of generated requests. Valid requests (fitting the
schema) must get no 5xx, a status the schema documents, the documented content type and a body matching the
documented schema; invalid ones (ids that are words, numbers out of range, wrong types) must get no 5xx.
The figures (operations, requests, failures) are printed.
"""

from __future__ import annotations

import os
import time

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from rest_framework.authtoken.models import Token
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.factories import CompletionFactory, MembershipFactory, ProjectFactory, PromptFactory

CHECKS = {
    GenerationMode.POSITIVE: [not_a_server_error, status_code_conformance, content_type_conformance,
                              response_schema_conformance],
    GenerationMode.NEGATIVE: [not_a_server_error],
}
# Per operation and mode; 36 operations on 2 busy cores: about a minute in all.
EXAMPLES = int(os.environ.get("DISTILLERY_FUZZ_EXAMPLES", "15"))


@pytest.fixture
def curator_token(transactional_db):
    project = ProjectFactory(slug="fuzz")
    user = MembershipFactory(project=project, role="curator").user
    for _ in range(3):
        CompletionFactory(prompt=PromptFactory(project=project))
    return Token.objects.create(user=user).key


def test_api_schema_holds_under_fuzzing(live_server, curator_token, capsys):
    headers = {"Authorization": f"Token {curator_token}"}
    schema = schemathesis.openapi.from_url(f"{live_server.url}/api/schema/?format=json", headers=headers)
    operations = [result.ok() for result in schema.get_all_operations()]
    counts = {"operations": len(operations), "requests": 0, "failures": 0}
    failures: list[str] = []
    started = time.monotonic()

    for operation, mode in ((op, mode) for op in operations for mode in CHECKS):
        seen: list[str] = []

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=EXAMPLES, deadline=None, database=None, phases=[Phase.explicit, Phase.generate],
                  suppress_health_check=list(HealthCheck))
        def run(case) -> None:
            counts["requests"] += 1
            try:
                case.call_and_validate(base_url=live_server.url, headers=headers, checks=CHECKS[mode])
            except (Exception, BaseExceptionGroup) as error:  # noqa: BLE001 - collected, then reported at once
                counts["failures"] += 1
                if len(seen) < 2:  # the first two per operation are enough to act on
                    seen.append(f"{operation.label} ({mode}): {str(error).strip()[:1500]}")

        run()
        failures += seen

    seconds = time.monotonic() - started
    with capsys.disabled():
        print(f"\nschemathesis: {counts['operations']} operations, {counts['requests']} requests "
              f"(at most {EXAMPLES} valid and {EXAMPLES} invalid per operation), {counts['failures']} failures, "
              f"{seconds:.0f}s")
    assert counts["operations"] >= 30
    assert not failures, "\n\n".join(failures)
