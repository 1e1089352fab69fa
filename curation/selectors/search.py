"""Full-text search over prompts and their completions, on the indexes of migration 0009_fulltext_search.

Words, not substrings: "capital" finds "Capital" and "capital," but not "capitalization". Every word of the
query must appear somewhere in the prompt or its completions (AND); case and punctuation do not matter.
PostgreSQL matches against a GIN-indexed tsvector per prompt (the ``simple`` configuration: no stemming,
no stop words); SQLite against an FTS5 table. On other databases the words are matched as substrings.
"""

from __future__ import annotations

import re

from django.db import connection
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.db.models.expressions import RawSQL

from curation.models import Completion, Prompt

# Runs of letters and digits: what both the PostgreSQL parser and FTS5's unicode61 tokenizer call words.
WORD = re.compile(r"\w+", re.UNICODE)
RARE_MATCHES = 2000


def search_words(query: str) -> list[str]:
    return [w.lower() for w in WORD.findall(query or "")][:32]


def prompts_matching_text(prompts: QuerySet[Prompt], query: str) -> QuerySet[Prompt]:
    """``prompts`` whose text or completions contain every word of ``query``. No words: no match."""
    words = search_words(query)
    if not words:
        return prompts.none()
    vendor = connection.vendor
    if vendor == "postgresql":
        # Rare words: at most RARE_MATCHES documents, found in the GIN index and handed over as ids, so the
        # page is a primary-key lookup. (Left to the planner, a rare word outside the lexeme statistics is
        # estimated at hundreds of matches and joined by walking every prompt: 40 ms at 50k prompts.)
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT prompt_id FROM curation_prompt_search WHERE document @@ plainto_tsquery('simple', %s) LIMIT %s",
                [query, RARE_MATCHES + 1],
            )
            ids = [row[0] for row in cursor.fetchall()]
        if len(ids) <= RARE_MATCHES:
            return prompts.filter(id__in=ids)
        # Common words: a semi-join that walks prompts newest first and stops after a page of matches.
        matching = RawSQL(
            "SELECT prompt_id FROM curation_prompt_search WHERE document @@ plainto_tsquery('simple', %s)",
            [query],  # parsed by the same parser as the documents
        )
        return prompts.filter(id__in=matching)
    if vendor == "sqlite":
        # Each word as an FTS5 string ("..."), so nothing the user types is read as FTS5 syntax.
        matching = RawSQL(
            "SELECT rowid FROM curation_prompt_fts WHERE curation_prompt_fts MATCH %s",
            [" ".join('"' + w.replace('"', '""') + '"' for w in words)],
        )
        return prompts.filter(id__in=matching)
    for word in words:
        in_completion = Completion.objects.filter(prompt=OuterRef("pk"), text__icontains=word)
        prompts = prompts.filter(Q(text__icontains=word) | Exists(in_completion))
    return prompts

