"""Bulk export of candidate results to JSONL or CSV: safe, resumable, flat in memory.

From Python::

    from mettl_async.export import ExportOptions, export_results

    options = ExportOptions(output=Path("results.csv"), format="csv")
    summary = await export_results(client, options)

(``mettl-async export`` is this, with a progress line.) Records stream from the
API to ``PATH.partial``, renamed or converted to ``PATH`` only when the export is
complete; ``PATH.checkpoint`` journals what ``PATH.partial`` holds, so that
``mode="resume"`` continues an interrupted export and the final file holds each
candidate once. ``PATH.lock`` keeps a second export to the same path from
starting while one runs; no side file is ever written through a symbolic link.
:func:`stream_results` writes JSONL to a stream instead (standard output).

JSONL lines are the record exactly as Mettl sent it, with ``accessKey``,
``scheduleName`` and ``assessmentId`` of its schedule put first. CSV rows are
flattened records spooled as JSON lines, turned into CSV at the end, when the
union of columns over all schedules is known; cells that a spreadsheet would
run as a formula get a leading ``'`` unless ``csv_raw`` is set.

The package: :mod:`~mettl_async.export.options` holds :class:`ExportOptions`;
:mod:`~mettl_async.export.engine` writes the pages of the schedule walk (the one
the sync walks too, :mod:`mettl_async._walk`) through the :class:`ExportFormat`
of ``ExportOptions.format``; :mod:`~mettl_async.export.journal` keeps the
checkpoint and prepares a resume; :mod:`~mettl_async.export.jsonl` and
:mod:`~mettl_async.export.csv` are the formats; :mod:`~mettl_async.export.base`
holds the interface and the registry.

Adding a format (Parquet, a database load): derive a class from
:class:`ExportFormat` in a module of its own, with ``encode_page`` (a schedule's
page of records as lines, one per record, spooled to ``PATH.partial``) and
``finish`` (make ``PATH`` of the complete ``PATH.partial``, then remove it), then
register it::

    register_format("parquet", ParquetFormat)

``ExportOptions(format="parquet")`` then uses it, and so does
``mettl-async export --format parquet`` if the registration runs before the
command line is parsed. Spooling each record as a JSON object with its
``accessKey`` and ``email`` (as the CSV format does) keeps the default
``identify``, by which a resume recognises records already written; a format
whose finished file is not one line per record also overrides ``count``. A
format whose spooled lines are its finished file sets ``streamable = True``
(it can then go to standard output), and one with options of its own reads
them from :class:`ExportOptions` in ``for_options``.
"""

from mettl_async._walk import WalkProgress
from mettl_async.export.base import (
    FORMATS,
    ExportError,
    ExportFormat,
    FormatFactory,
    get_format,
    register_format,
    unregister_format,
)
from mettl_async.export.csv import CSV_FIXED_COLUMNS, CsvFormat, csv_row, neutralize
from mettl_async.export.csv import csv_columns as csv_columns
from mettl_async.export.engine import CHECKPOINT_EVERY as CHECKPOINT_EVERY
from mettl_async.export.engine import (
    ExportProgress,
    ExportSummary,
    export_results,
    stream_results,
)
from mettl_async.export.journal import CHECKPOINT_VERSION as CHECKPOINT_VERSION
from mettl_async.export.journal import read_journal as read_journal
from mettl_async.export.jsonl import JsonlFormat, jsonl_line
from mettl_async.export.options import ExportOptions, Format
from mettl_async.export.options import Mode as Mode

#: The name ``read_journal`` had before it was public within the package.
_read_journal = read_journal

# Also importable from here, as before, though not in ``*``: csv_columns, Mode,
# CHECKPOINT_EVERY, CHECKPOINT_VERSION, read_journal (and _read_journal, its old name).
__all__ = [
    "CSV_FIXED_COLUMNS",
    "FORMATS",
    "CsvFormat",
    "ExportError",
    "ExportFormat",
    "ExportOptions",
    "ExportProgress",
    "ExportSummary",
    "Format",
    "FormatFactory",
    "JsonlFormat",
    "WalkProgress",
    "csv_row",
    "export_results",
    "get_format",
    "jsonl_line",
    "neutralize",
    "register_format",
    "stream_results",
    "unregister_format",
]

# The built-in formats, in the order --format lists them.
register_format("jsonl", JsonlFormat)
register_format("csv", CsvFormat)
