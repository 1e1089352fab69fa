"""Parsers of teacher-output files: plain Python, no Django, so they stream and test on their own.

``read_records(path, fmt)`` yields one ``Record`` (a prompt with its candidates) or ``Invalid`` (a line number
and a reason) per data line, whatever the format; ``curation.services.imports`` writes them to the database.
"""

from curation.importers.read import FORMATS, read_records
from curation.importers.records import Candidate, FileError, Invalid, Record

__all__ = ["FORMATS", "Candidate", "FileError", "Invalid", "Record", "read_records"]
