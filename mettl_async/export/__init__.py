"""Bulk export of candidate results to JSONL or CSV: safe, resumable, flat in memory.

The engine lives in :mod:`mettl_async.export.engine`; this package re-exports it.
"""

from mettl_async.export.base import ExportError as ExportError
from mettl_async.export.csv import CSV_FIXED_COLUMNS as CSV_FIXED_COLUMNS
from mettl_async.export.csv import csv_columns as csv_columns
from mettl_async.export.csv import csv_row as csv_row
from mettl_async.export.engine import CHECKPOINT_EVERY as CHECKPOINT_EVERY
from mettl_async.export.engine import ExportOptions as ExportOptions
from mettl_async.export.engine import ExportProgress as ExportProgress
from mettl_async.export.engine import ExportSummary as ExportSummary
from mettl_async.export.engine import Format as Format
from mettl_async.export.engine import Mode as Mode
from mettl_async.export.engine import export_results as export_results
from mettl_async.export.journal import CHECKPOINT_VERSION as CHECKPOINT_VERSION
from mettl_async.export.journal import _read_journal as _read_journal
from mettl_async.export.jsonl import jsonl_line as jsonl_line

__all__ = [
    "CSV_FIXED_COLUMNS",
    "ExportError",
    "ExportOptions",
    "ExportProgress",
    "ExportSummary",
    "csv_row",
    "export_results",
    "jsonl_line",
]
