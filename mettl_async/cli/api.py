"""Command-line commands over single endpoints: read the account, list, show, register.

``mettl-async account show``, ``assessments list``, ``schedules list``,
``result show`` and ``candidates register``. Listings stream: a table row or a
JSON line is printed as each page arrives. ``--format jsonl`` prints each
record exactly as Mettl sent it, one per line, for ``jq`` and friends.
Errors are raised and reported by :func:`mettl_async.cli.entry.main` (one
line, an exit code); ``candidates register`` exits 1 when any candidate failed.
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
from collections.abc import AsyncIterable, Callable, Sequence
from pathlib import Path
from typing import Any, Final

import orjson

from mettl_async._convert import structure
from mettl_async._enums import MettlEnum
from mettl_async._errors import ValidationError
from mettl_async._models import EMAIL_FIELD, AssessmentInfo, CandidateResult, RegistrationOutcome
from mettl_async._paging import RawRecord

from .common import (
    EXIT_API,
    EXIT_OK,
    UsageError,
    add_api_arguments,
    client_from_args,
    positive_int,
    silence_stdout,
)

__all__ = ["read_candidates_csv", "register"]

FORMATS: Final = ("table", "jsonl")


# -- output helpers ------------------------------------------------------------------------


def _text(value: Any) -> str:
    """A value for a table cell or a line: ``-`` for nothing, an enum by its value."""
    if value is None or value == "":
        return "-"
    if isinstance(value, MettlEnum):
        return str(value.value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _json_line(record: RawRecord) -> str:
    """One record as a JSON line: the bytes Mettl sent, unless they span lines."""
    data = record.json
    if b"\n" in data or b"\r" in data:
        data = orjson.dumps(orjson.loads(data))
    return data.decode("utf-8")


class _Table:
    """A table printed row by row as records arrive: fixed widths, the last column free."""

    def __init__(self, columns: Sequence[tuple[str, int]]) -> None:
        self.columns = columns
        self.rows = 0

    def line(self, cells: Sequence[str]) -> str:
        *fixed, last = cells
        parts = [cell.ljust(width) for cell, (_, width) in zip(fixed, self.columns, strict=False)]
        return "  ".join([*parts, last]).rstrip()

    def header(self) -> str:
        return self.line([name for name, _ in self.columns])


async def _print_listing(
    records: AsyncIterable[RawRecord],
    *,
    format: str,
    table: _Table,
    cells: Callable[[RawRecord], Sequence[str]],
    what: str,
) -> int:
    """Stream a listing to stdout as a table or JSON lines; a count on stderr for tables."""
    out = sys.stdout
    count = 0
    try:
        if format == "table":
            out.write(table.header() + "\n")
        async for record in records:
            count += 1
            out.write(
                (_json_line(record) if format == "jsonl" else table.line(cells(record))) + "\n"
            )
        out.flush()
    except BrokenPipeError:
        silence_stdout()  # `mettl-async ... | head`: the reader has what it wanted
        return EXIT_OK
    if format == "table":
        print(f"{count:,} {what if count != 1 else what.removesuffix('s')}", file=sys.stderr)
    return EXIT_OK


def _date(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if hasattr(value, "strftime") else _text(value)


def _format_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--format",
        choices=FORMATS,
        default="table",
        help="table: a few columns to read; jsonl: every record as Mettl sent it (default: table)",
    )


# -- account show --------------------------------------------------------------------------


def _register_account(commands: Any) -> None:
    parser = commands.add_parser("account", help="the account behind the API keys")
    actions = parser.add_subparsers(dest="account_action", metavar="ACTION", required=True)
    show = actions.add_parser(
        "show",
        help="show the account's details (article 1)",
        description="Show the account the API keys belong to: a quick check that they work.",
    )
    show.add_argument("--json", action="store_true", help="print Mettl's JSON as sent")
    add_api_arguments(show)
    show.set_defaults(handler=_account_show)


async def _account_show(args: argparse.Namespace) -> int:
    async with client_from_args(args) as client:
        info = await client.get_account()
    if args.json:
        print(orjson.dumps(info.raw, option=orjson.OPT_INDENT_2).decode())
        return EXIT_OK
    fields = info.candidate_registration_fields
    rows = [
        ("Name", info.name),
        ("Email", info.email),
        ("Account type", info.account_type),
        (
            "Registration fields",
            ", ".join(map(str, fields)) if isinstance(fields, list) else fields,
        ),
    ]
    for label, value in rows:
        print(f"{label + ':':<21}{_text(value)}")
    return EXIT_OK


# -- assessments list ----------------------------------------------------------------------


def _register_assessments(commands: Any) -> None:
    parser = commands.add_parser("assessments", help="the account's assessments")
    actions = parser.add_subparsers(dest="assessments_action", metavar="ACTION", required=True)
    listing = actions.add_parser(
        "list",
        help="list every assessment (article 6)",
        description="List every assessment of the account, newest first unless sorted.",
    )
    listing.add_argument(
        "--sort",
        choices=["createdAt", "testTaken", "name"],
        default=None,
        help="order by this field (default: Mettl's, createdAt)",
    )
    listing.add_argument(
        "--sort-order",
        choices=["asc", "desc"],
        default=None,
        help="ascending or descending (default: Mettl's, desc)",
    )
    _format_argument(listing)
    add_api_arguments(listing)
    listing.set_defaults(handler=_assessments_list)


_ASSESSMENT_TABLE: Final = _Table(
    [("ID", 10), ("CREATED", 16), ("DURATION", 8), ("TAKEN", 7), ("NAME", 0)]
)


def _assessment_cells(record: RawRecord) -> Sequence[str]:
    assessment = structure(record.to_dict(), AssessmentInfo)
    return [
        _text(assessment.id),
        _date(assessment.created_at),
        _text(assessment.duration),
        _text(assessment.test_taken),
        _text(assessment.name),
    ]


async def _assessments_list(args: argparse.Namespace) -> int:
    async with client_from_args(args) as client:
        listing = client.iter_assessments(sort=args.sort, sort_order=args.sort_order)
        return await _print_listing(
            listing.raw(),
            format=args.format,
            table=_ASSESSMENT_TABLE,
            cells=_assessment_cells,
            what="assessments",
        )


# -- schedules list ------------------------------------------------------------------------


def _register_schedules(commands: Any) -> None:
    parser = commands.add_parser("schedules", help="the account's schedules (test links)")
    actions = parser.add_subparsers(dest="schedules_action", metavar="ACTION", required=True)
    listing = actions.add_parser(
        "list",
        help="list the schedules of the account or of one assessment (articles 11, 10)",
        description="List every schedule (test link) of the account, or of one assessment "
        "with --assessment-id.",
    )
    listing.add_argument(
        "--assessment-id", type=_assessment_id, metavar="ID", help="only this assessment's"
    )
    _format_argument(listing)
    add_api_arguments(listing)
    listing.set_defaults(handler=_schedules_list)


_assessment_id = positive_int("an assessment id")


_SCHEDULE_TABLE: Final = _Table(
    [
        ("ACCESS KEY", 12),
        ("STATUS", 8),
        ("TYPE", 8),
        ("ACCESS", 12),
        ("ASSESSMENT", 10),
        ("NAME", 0),
    ]
)


def _schedule_cells(record: RawRecord) -> Sequence[str]:
    data = record.to_dict()
    access = data.get("access")
    details = data.get("assessmentDetails")
    return [
        _text(data.get("accessKey")),
        _text(data.get("status")),
        _text(data.get("scheduleType")),
        _text(access.get("type") if isinstance(access, dict) else None),
        _text(details.get("id") if isinstance(details, dict) else None),
        _text(data.get("name")),
    ]


async def _schedules_list(args: argparse.Namespace) -> int:
    async with client_from_args(args) as client:
        records: AsyncIterable[RawRecord]
        if args.assessment_id is None:
            records = client.iter_schedules().raw()
        else:
            records = client.iter_assessment_schedules(args.assessment_id).raw()
        return await _print_listing(
            records,
            format=args.format,
            table=_SCHEDULE_TABLE,
            cells=_schedule_cells,
            what="schedules",
        )


# -- result show ---------------------------------------------------------------------------


def _register_result(commands: Any) -> None:
    parser = commands.add_parser("result", help="one candidate's result")
    actions = parser.add_subparsers(dest="result_action", metavar="ACTION", required=True)
    show = actions.add_parser(
        "show",
        help="show one candidate's status and result in a schedule (article 17)",
        description="Show one candidate's status, score and report links in a schedule.",
    )
    show.add_argument("--access-key", required=True, metavar="KEY", help="the schedule's key")
    show.add_argument("--email", required=True, help="the candidate's email address")
    show.add_argument("--json", action="store_true", help="print Mettl's JSON as sent")
    show.add_argument(
        "--include-recommendation",
        action="store_true",
        help='ask for the recommendation too (ir={"recommendation":true})',
    )
    show.add_argument(
        "--include-response-styles",
        action="store_true",
        help="ask for the response-style analysis too (rs=true)",
    )
    show.add_argument(
        "--include-essay-responses",
        action="store_true",
        help="ask for the answers to essay questions too (qr=true)",
    )
    add_api_arguments(show)
    show.set_defaults(handler=_result_show)


async def _result_show(args: argparse.Namespace) -> int:
    async with client_from_args(args) as client:
        result = await client.get_candidate_result(
            args.access_key,
            args.email,
            include_recommendation=args.include_recommendation,
            include_response_styles=args.include_response_styles,
            include_essay_responses=args.include_essay_responses,
        )
    if args.json:
        print(orjson.dumps(result.raw, option=orjson.OPT_INDENT_2).decode())
    else:
        print("\n".join(_result_lines(result)))
    return EXIT_OK


def _result_lines(result: CandidateResult) -> list[str]:
    registration = result.registration or {}
    name = " ".join(
        str(registration[label]) for label in ("First Name", "Last Name") if registration.get(label)
    )
    status = result.test_status
    raw_status: dict[str, Any] = status.raw if status is not None else {}
    rows: list[tuple[str, Any]] = [("Email", result.email), ("Name", name or None)]
    if status is not None:
        detail = " / ".join(
            _text(v) for v in (status.overall_status, status.detailed_status) if v is not None
        )
        rows.append(("Status", f"{_text(status.status)}" + (f" ({detail})" if detail else "")))
        rows.append(("Started", raw_status.get("startTime")))
        rows.append(("Ended", raw_status.get("endTime")))
        marks = status.result
        if marks is not None:
            rows.append(("Score", f"{_text(marks.total_marks)} / {_text(marks.max_marks)}"))
            rows.append(("Percentile", marks.percentile))
            category = marks.performance_category or status.performance_category
            if category:
                rows.append(("Performance", category))
            analysis = marks.analysis or status.analysis
            for item in (analysis.recommendation or []) if analysis is not None else []:
                rows.append((item.type or "Recommendation", item.value))
        rows.append(("PDF report", status.pdf_report))
        rows.append(("HTML report", status.html_report))
    width = max(len(label) for label, _ in rows) + 2
    lines = [f"{label + ':':<{width}}{_text(value)}" for label, value in rows]
    extra = {
        k: v for k, v in registration.items() if k not in (EMAIL_FIELD, "First Name", "Last Name")
    }
    if extra:
        lines.append("Registration:")
        lines += [f"  {label}: {_text(value)}" for label, value in extra.items()]
    return lines


# -- candidates register -------------------------------------------------------------------


def _register_candidates_command(commands: Any) -> None:
    parser = commands.add_parser("candidates", help="register candidates in a schedule")
    actions = parser.add_subparsers(dest="candidates_action", metavar="ACTION", required=True)
    register_parser = actions.add_parser(
        "register",
        help="register candidates from a CSV file and print their test links (article 15)",
        description="Register the candidates of a CSV file in a schedule and print each "
        "one's test link or error, in the file's order, tab-separated. The header row names "
        "the schedule's registration fields exactly (e.g. 'Email Address,First Name,Last "
        "Name'); empty cells are left out. Exits 1 if any candidate was not registered.",
    )
    register_parser.add_argument(
        "--access-key", required=True, metavar="KEY", help="the schedule to register them in"
    )
    register_parser.add_argument(
        "--csv",
        required=True,
        type=Path,
        metavar="FILE",
        dest="csv_file",
        help="one candidate per row; the header row holds the registration field labels",
    )
    register_parser.add_argument(
        "--allow-missing-fields",
        action="store_true",
        help="register even if mandatory fields are missing (not Email Address or First Name)",
    )
    register_parser.add_argument(
        "--time-limit",
        type=_seconds,
        metavar="SECONDS",
        help="the links expire after this many seconds",
    )
    register_parser.add_argument(
        "--show-custom-instructions",
        action="store_true",
        help="show the assessment's custom instructions before the test",
    )
    add_api_arguments(register_parser)
    register_parser.set_defaults(handler=_candidates_register)


_seconds = positive_int("a number of seconds")


def read_candidates_csv(path: Path) -> tuple[list[dict[str, str]], list[int]]:
    """The candidates of a CSV file (header row = field labels) and each one's line number."""
    try:
        handle = path.open(encoding="utf-8-sig", newline="")
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    candidates: list[dict[str, str]] = []
    lines: list[int] = []
    with handle:
        try:
            reader = csv.DictReader(handle)
            header = [label.strip() for label in reader.fieldnames or []]
            if not header:
                raise UsageError(f"{path} is empty: its first row must name the fields")
            duplicated = sorted({label for label in header if label and header.count(label) > 1})
            if duplicated:
                raise UsageError(
                    f"{path}: the header row names {', '.join(repr(d) for d in duplicated)} "
                    "more than once"
                )
            if EMAIL_FIELD not in header:
                raise UsageError(
                    f"{path}: the header row has no {EMAIL_FIELD!r} column (found: "
                    f"{', '.join(repr(h) for h in header)}); name the columns exactly as the "
                    "schedule's registration fields"
                )
            reader.fieldnames = header
            for row in reader:
                extra = row.get(None)
                if extra is not None and not any(cell.strip() for cell in extra):
                    del row[None]  # trailing empty cells, as spreadsheets save them
                if None in row:
                    raise UsageError(f"{path}, line {reader.line_num}: more cells than the header")
                fields = {
                    label: value.strip()
                    for label, value in row.items()
                    if label and value is not None and value.strip()
                }
                if fields:
                    candidates.append(fields)
                    lines.append(reader.line_num)
        except (csv.Error, UnicodeDecodeError) as exc:
            raise UsageError(f"{path} is not a readable UTF-8 CSV file: {exc}") from None
    return candidates, lines


_INDEX: Final = re.compile(r"\[(\d+)\]")


def _by_line(error: ValidationError, path: Path, lines: Sequence[int]) -> Exception:
    """The problems of a registration, by line of the CSV file rather than by index."""
    described = []
    for problem in error.problems:
        found = _INDEX.search(problem.path)
        where = problem.path
        if found and problem.path.startswith("rd.") and int(found.group(1)) < len(lines):
            field = problem.path[found.end() :].strip(".[]\"'") or "row"
            where = f"line {lines[int(found.group(1))]} ({field})"
        described.append(f"  - {where}: {problem.message}")
    count = len(described)
    return UsageError(
        f"{path}: {count} problem{'s' if count != 1 else ''}, nothing was sent\n"
        + "\n".join(described)
    )


def _outcome_line(outcome: RegistrationOutcome) -> str:
    if outcome.registered:
        return f"{outcome.email}\t{outcome.url or '-'}"
    message = outcome.message or "not registered"
    if outcome.code and not message.startswith(outcome.code):
        message = f"{outcome.code} {message}"
    return f"{outcome.email}\terror: {message}"


async def _candidates_register(args: argparse.Namespace) -> int:
    candidates, lines = read_candidates_csv(args.csv_file)
    if not candidates:
        raise UsageError(f"{args.csv_file} has a header row but no candidates")
    async with client_from_args(args) as client:
        try:
            outcomes = await client.register_candidates(
                args.access_key,
                candidates,
                allow_missing_mandatory_fields=args.allow_missing_fields,
                time_limit_seconds=args.time_limit,
                show_custom_instructions=args.show_custom_instructions,
            )
        except ValidationError as error:
            raise _by_line(error, args.csv_file, lines) from None
    for outcome in outcomes:
        print(_outcome_line(outcome))
    failed = sum(not outcome.registered for outcome in outcomes)
    print(
        f"registered {len(outcomes) - failed:,} of {len(outcomes):,} candidates"
        + (f"; {failed:,} failed" if failed else ""),
        file=sys.stderr,
    )
    return EXIT_API if failed else EXIT_OK


# -- registration with the command line ----------------------------------------------------


def register(commands: Any) -> None:
    """Add this module's commands to the ``mettl-async`` parser."""
    _register_account(commands)
    _register_assessments(commands)
    _register_schedules(commands)
    _register_result(commands)
    _register_candidates_command(commands)
