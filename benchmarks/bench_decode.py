"""Decoding cost of a page of candidate results (article 16), typed vs untyped.

Run from the repository root::

    python -m benchmarks.bench_decode            # about half a minute
    python -m benchmarks.bench_decode --quick    # a few seconds, noisier

Two record shapes, each served as a 100-record page the way
``GET /v2/schedules/{access-key}/candidates`` returns it, both grown from
article 16's completed sample (4.1) with its ``ir`` and ``qr`` additions:

- ``1.6 KB``: one section, one skill, one difficulty level (sample 4.1 with
  the ``*_GMT`` timestamps and report links of article 17's fixture);
- ``4.9 KB``: two sections of two skills, two difficulty levels each, two
  essay answers (``qr``), a recommendation and response styles (``ir``).

(KB here is 1024 bytes, the size of one record's minified JSON.)

Columns, each in µs per record (the page time divided by 100):

- ``json.loads`` and ``orjson.loads``: parsing the page bytes only;
- ``msgspec Struct``: a reference, not the library: msgspec decoding the page
  into plain wire-named ``msgspec.Struct`` classes (every part, eagerly), the
  floor for typed decoding in Python;
- ``raw path (scan)``: what ``.raw()`` listings do: the page scanned with
  msgspec, each record kept as the JSON Mettl sent, its key (email) read;
- ``typed partial``: what a typed listing does (``iter_candidate_results``,
  ``iter_all_results``): the page decoded in one pass into wire-named mirrors,
  a :class:`CandidateResult` built from each, then ``email``,
  ``test_status.status`` and ``test_status.result.total_marks`` read;
- ``typed full``: the same, then every lazy part read (all sections, skills,
  difficulty levels, questions, the analysis and every timestamp), so that
  every nested object exists;
- ``dict path full``: the route typed listings took before (and take for a
  page the mirrors refuse, or a single record): ``orjson.loads`` of the page,
  then :func:`candidate_result_from_wire` per record, everything read;
- ``pydantic v2``: ``model_validate_json`` of the page into equivalent pydantic
  models (shown only when pydantic is importable: the ``bench`` extra, not a
  dependency of the library).

Every column is measured in the same run: rounds of all columns interleaved,
after a warm-up, and the median of the rounds is printed with its ratio to
``orjson.loads``. Time is this thread's CPU time (``time.thread_time``), not
the wall clock: on a shared machine a descheduled moment is not decoding cost.
Targets: typed full <= 2x orjson.loads, and below pydantic v2.
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import orjson

from mettl_async import CandidateResult
from mettl_async._convert import candidate_result_from_wire, decode_result_page, result_from_record
from mettl_async._paging import decode_listing
from mettl_async._timefmt import ZONES, format_timestamp, parse_timestamp

from ._harness import against, machine, table

PAGE_SIZE = 100

# ---------------------------------------------------------------------------
# Records, grown from article 16's completed sample
# ---------------------------------------------------------------------------

_QUESTION = {
    "type": "la",
    "questionText": "<div>Question Text</div>",
    "questionType": "Long Answer",
    "marksScored": 0.0,
    "maxMarks": 1.0,
    "hasWordLimit": False,
    "wordLimit": 0,
    "wordCount": 5,
    "candidateResponse": "<p>Essay response for manual grading</p>",
}
_LEVELS = ("EASY", "MEDIUM", "DIFFICULT")


def _difficulty(level: str, questions: list[dict[str, Any]] | None) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "level": level,
        "totalQuestion": 2,
        "totalMarks": 1.0,
        "totalUnAnswered": 0,
        "maxMarks": 2.0,
        "timeTaken": 45,
        "totalCorrectAnswers": 1,
    }
    if questions is not None:
        entry["questions"] = questions
    return entry


def _totals(**extra: Any) -> dict[str, Any]:
    return {
        **extra,
        "totalMarks": 1.0,
        "maxMarks": 2.0,
        "timeTaken": 45.0,
        "totalQuestion": 2.0,
        "totalCorrectAnswers": 1.0,
        "totalUnAnswered": 0.0,
    }


def make_record(*, sections: int, skills: int, levels: int, essays: int) -> dict[str, Any]:
    """One completed candidate, shaped like article 16's 4.1 sample with 4.2/4.3 merged.

    The first ``essays`` skills of the record carry an essay answer (``qr``),
    in the skill and in its first difficulty level, as in sample 4.3; a record
    with essays also carries the ``ir`` analysis of sample 4.2.
    """
    section_list = []
    with_essay = 0
    for s in range(sections):
        skill_list = []
        for k in range(skills):
            questions = [dict(_QUESTION)] if with_essay < essays else None
            with_essay += 1
            skill = _totals(skillName=f"Skill {s + 1}.{k + 1}")
            skill["questions"] = questions
            skill["difficultyMarks"] = [
                _difficulty(_LEVELS[i], questions if i == 0 else None) for i in range(levels)
            ]
            skill_list.append(skill)
        section = _totals(sectionName=f"Section {s + 1}")
        section["skillMarks"] = skill_list
        section["difficultyMarks"] = [_difficulty(_LEVELS[i], None) for i in range(levels)]
        section["questionWiseResponse"] = None
        section_list.append(section)
    analysis: dict[str, Any] | None = None
    if essays:
        analysis = {
            "versionId": 999999,
            "recommendation": [{"type": "Recommendation", "value": "Cautiously Recommended"}],
            "responseStyles": [
                {
                    "title": "Genuine",
                    "description": "If questions are answered in a sufficiently varied manner.",
                }
            ],
        }
    return {
        "email": "name@email.com",
        "registration": {
            "Email Address": "name@email.com",
            "First Name": "Name",
            "Last Name": "Surname",
        },
        "testStatus": {
            "status": "Completed",
            "overallStatus": "Completed",
            "detailedStatus": "Test-taker Completed",
            "startTime": "Fri, 18 Feb 2022 06:39:52 IST",
            "endTime": "Fri, 18 Feb 2022 06:40:37 IST",
            "start_time_GMT": "Fri, 18 Feb 2022 01:09:52 GMT",
            "end_time_GMT": "Fri, 18 Feb 2022 01:10:37 GMT",
            "completionMode": "Completed",
            "result": {
                "totalMarks": 1.0,
                "maxMarks": 2.0,
                "percentile": 100.0,
                "attemptTime": 45.078,
                "candidateCredibilityIndex": "Not Applicable",
                "totalQuestion": 2.0,
                "totalCorrectAnswers": 1.0,
                "totalUnAnswered": 0.0,
                "sectionMarks": section_list,
                "analysis": analysis,
                "difficultyMarks": [_difficulty(_LEVELS[i], None) for i in range(levels)],
                "codePlagiarism": "NA",
            },
            "performanceCategory": None,
            "performanceCategoryVersion": None,
            # article 17's fixture: report links on completed records
            "pdfReport": "https://mettl.com/reports/pdf?key=3f2a9c1e",
            "htmlReport": "https://mettl.com/analytics/share-report?key=3f2a9c1e",
        },
        "proctoringDetails": None,
    }


SHAPES: dict[str, dict[str, Any]] = {
    "1.6 KB": make_record(sections=1, skills=1, levels=1, essays=0),
    "4.9 KB": make_record(sections=2, skills=2, levels=2, essays=2),
}


def make_page(record: dict[str, Any]) -> bytes:
    """A 100-record page; records differ (email, marks, times over five days) as real ones do."""
    candidates = []
    for i in range(PAGE_SIZE):
        candidate = copy.deepcopy(record)
        candidate["email"] = f"candidate{i:03d}@email.com"
        candidate["registration"]["Email Address"] = candidate["email"]
        status = candidate["testStatus"]
        status["result"]["totalMarks"] = float(i % 3)
        start = datetime(2022, 2, 14 + i % 5, 3 + i % 12, i % 60, i * 7 % 60, tzinfo=UTC)
        end = start + timedelta(minutes=45, seconds=i)
        for key, moment, zone in (
            ("startTime", start, "IST"),
            ("endTime", end, "IST"),
            ("start_time_GMT", start, "GMT"),
            ("end_time_GMT", end, "GMT"),
        ):
            status[key] = format_timestamp(moment.astimezone(ZONES[zone]))
        candidates.append(candidate)
    page = {
        "status": "SUCCESS",
        "candidates": candidates,
        "paging": {"previous": None, "next": None, "totalRecords": PAGE_SIZE},
    }
    return orjson.dumps(page)


# ---------------------------------------------------------------------------
# What is measured
# ---------------------------------------------------------------------------


def _read_partly(record: CandidateResult) -> float:
    """What a walk for the totals reads."""
    _ = record.email
    status = record.test_status
    _ = status.status
    return status.result.total_marks if status.result is not None else 0.0


def touch_everything(record: CandidateResult) -> None:
    """Read every lazily structured attribute, so every nested object exists."""
    status = record.test_status
    _ = (status.start_time, status.end_time, status.last_response_time)
    _ = (status.start_time_gmt, status.end_time_gmt, status.analysis)
    result = status.result
    if result is None:
        return
    _ = result.analysis
    for level in result.difficulty_marks or ():
        _ = level.questions
    for section in result.section_marks:
        for level in section.difficulty_marks or ():
            _ = level.questions
        for skill in section.skill_marks or ():
            _ = skill.questions
            for level in skill.difficulty_marks or ():
                _ = level.questions


def _typed_records(page: bytes) -> list[Any]:
    """The page as a typed listing reads it: one pass into wire-named mirrors."""
    envelope = decode_result_page(
        200, page, items_key="candidates", key_field="email", method="GET", url="bench"
    )
    records: list[Any] = envelope["candidates"]
    return records


def typed_partial(page: bytes) -> float:
    """The library's typed path, as a listing iterates it, with the partial access above."""
    return sum(_read_partly(result_from_record(item)) for item in _typed_records(page))


def typed_full(page: bytes) -> int:
    """The library's typed path, then every nested part read."""
    count = 0
    for item in _typed_records(page):
        touch_everything(result_from_record(item))
        count += 1
    return count


def dict_path_full(page: bytes) -> int:
    """The dict path: orjson.loads of the page, a result per mapping, every part read."""
    count = 0
    for raw in orjson.loads(page)["candidates"]:
        touch_everything(candidate_result_from_wire(raw))
        count += 1
    return count


# The reference column: plain msgspec Structs with the wire names (not the library).
_MARKS = {"total_unanswered": "totalUnAnswered"}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


class _Question(msgspec.Struct, rename="camel", kw_only=True):
    type: str | None = None
    question_text: str | None = None
    question_type: str | None = None
    marks_scored: float | None = None
    max_marks: float | None = None
    has_word_limit: bool | None = None
    word_limit: int | None = None
    word_count: int | None = None
    candidate_response: str | None = None


class _Totals(msgspec.Struct, rename=lambda name: _MARKS.get(name) or _camel(name), kw_only=True):
    total_marks: float
    max_marks: float
    time_taken: float
    total_question: float
    total_correct_answers: float
    total_unanswered: float


class _Difficulty(_Totals, kw_only=True):
    level: str
    questions: list[_Question] | None = None


class _Skill(_Totals, kw_only=True):
    skill_name: str
    questions: list[_Question] | None = None
    difficulty_marks: list[_Difficulty] | None = None


class _Section(_Totals, kw_only=True):
    section_name: str
    skill_marks: list[_Skill] | None = None
    difficulty_marks: list[_Difficulty] | None = None
    question_wise_response: Any = None


class _Pair(msgspec.Struct):
    type: str | None = None
    value: str | None = None


class _Style(msgspec.Struct):
    title: str | None = None
    description: str | None = None


class _Analysis(msgspec.Struct, rename="camel"):
    version_id: int | None = None
    recommendation: list[_Pair] | None = None
    response_styles: list[_Style] | None = None


class _Result(msgspec.Struct, rename=lambda name: _MARKS.get(name) or _camel(name), kw_only=True):
    total_marks: float
    max_marks: float
    percentile: float
    attempt_time: float
    candidate_credibility_index: str
    total_question: float
    total_correct_answers: float
    total_unanswered: float
    section_marks: list[_Section]
    difficulty_marks: list[_Difficulty] | None = None
    code_plagiarism: str | None = None
    performance_category: str | None = None
    performance_category_version: int | None = None
    analysis: _Analysis | None = None


_GMT = {"start_time_gmt": "start_time_GMT", "end_time_gmt": "end_time_GMT"}


class _Status(msgspec.Struct, rename=lambda name: _GMT.get(name) or _camel(name), kw_only=True):
    status: str
    overall_status: str | None = None
    detailed_status: str | None = None
    start_time: str | None = None
    end_time: str | None = None
    last_response_time: str | None = None
    start_time_gmt: str | None = None
    end_time_gmt: str | None = None
    completion_mode: str | None = None
    result: _Result | None = None
    pdf_report: str | None = None
    html_report: str | None = None
    performance_category: str | None = None
    performance_category_version: int | None = None
    analysis: _Analysis | None = None


class _Candidate(msgspec.Struct, rename="camel", kw_only=True):
    email: str
    registration: dict[str, str]
    test_status: _Status
    proctoring_details: Any = None


class _Page(msgspec.Struct, kw_only=True):
    status: str
    candidates: list[_Candidate]
    paging: dict[str, Any] | None = None


struct_decode: Callable[[bytes], Any] = msgspec.json.Decoder(_Page).decode


def _pydantic_decoder() -> Callable[[bytes], Any] | None:
    """Equivalent pydantic v2 models (same fields, aliases, enums, aware timestamps)."""
    try:
        import pydantic
    except ImportError:
        return None
    from typing import Annotated

    from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

    from mettl_async import CompletionMode, DetailedStatus, OverallStatus, SkillLevel, TestState

    if not pydantic.VERSION.startswith("2."):
        return None
    # Mettl's RFC 1123 timestamps with zone abbreviations are not ISO 8601:
    # pydantic needs the same hand parser to produce aware datetimes.
    Timestamp = Annotated[datetime | None, BeforeValidator(parse_timestamp)]

    class Model(BaseModel):
        model_config = ConfigDict(extra="ignore")

    class Question(Model):
        type: str | None = None
        question_text: str | None = Field(None, alias="questionText")
        question_type: str | None = Field(None, alias="questionType")
        marks_scored: float | None = Field(None, alias="marksScored")
        max_marks: float | None = Field(None, alias="maxMarks")
        has_word_limit: bool | None = Field(None, alias="hasWordLimit")
        word_limit: int | None = Field(None, alias="wordLimit")
        word_count: int | None = Field(None, alias="wordCount")
        candidate_response: str | None = Field(None, alias="candidateResponse")

    class Difficulty(Model):
        level: SkillLevel | str | None = None
        total_question: float | None = Field(None, alias="totalQuestion")
        total_marks: float | None = Field(None, alias="totalMarks")
        total_unanswered: float | None = Field(None, alias="totalUnAnswered")
        max_marks: float | None = Field(None, alias="maxMarks")
        time_taken: float | None = Field(None, alias="timeTaken")
        total_correct_answers: float | None = Field(None, alias="totalCorrectAnswers")
        questions: list[Question] | None = None

    class Skill(Model):
        skill_name: str | None = Field(None, alias="skillName")
        total_marks: float | None = Field(None, alias="totalMarks")
        max_marks: float | None = Field(None, alias="maxMarks")
        time_taken: float | None = Field(None, alias="timeTaken")
        total_question: float | None = Field(None, alias="totalQuestion")
        total_correct_answers: float | None = Field(None, alias="totalCorrectAnswers")
        total_unanswered: float | None = Field(None, alias="totalUnAnswered")
        questions: list[Question] | None = None
        difficulty_marks: list[Difficulty] | None = Field(None, alias="difficultyMarks")

    class Section(Model):
        section_name: str | None = Field(None, alias="sectionName")
        total_marks: float | None = Field(None, alias="totalMarks")
        max_marks: float | None = Field(None, alias="maxMarks")
        time_taken: float | None = Field(None, alias="timeTaken")
        total_question: float | None = Field(None, alias="totalQuestion")
        total_correct_answers: float | None = Field(None, alias="totalCorrectAnswers")
        total_unanswered: float | None = Field(None, alias="totalUnAnswered")
        skill_marks: list[Skill] | None = Field(None, alias="skillMarks")
        difficulty_marks: list[Difficulty] | None = Field(None, alias="difficultyMarks")
        question_wise_response: Any = Field(None, alias="questionWiseResponse")

    class Recommendation(Model):
        type: str | None = None
        value: str | None = None

    class ResponseStyle(Model):
        title: str | None = None
        description: str | None = None

    class Analysis(Model):
        version_id: int | None = Field(None, alias="versionId")
        recommendation: list[Recommendation] | None = None
        response_styles: list[ResponseStyle] | None = Field(None, alias="responseStyles")

    class Result(Model):
        total_marks: float | None = Field(None, alias="totalMarks")
        max_marks: float | None = Field(None, alias="maxMarks")
        percentile: float | None = None
        attempt_time: float | None = Field(None, alias="attemptTime")
        candidate_credibility_index: str | None = Field(None, alias="candidateCredibilityIndex")
        total_question: float | None = Field(None, alias="totalQuestion")
        total_correct_answers: float | None = Field(None, alias="totalCorrectAnswers")
        total_unanswered: float | None = Field(None, alias="totalUnAnswered")
        section_marks: list[Section] | None = Field(None, alias="sectionMarks")
        difficulty_marks: list[Difficulty] | None = Field(None, alias="difficultyMarks")
        code_plagiarism: str | None = Field(None, alias="codePlagiarism")
        performance_category: str | None = Field(None, alias="performanceCategory")
        performance_category_version: int | None = Field(None, alias="performanceCategoryVersion")
        analysis: Analysis | None = None

    class Status(Model):
        status: TestState | str | None = None
        overall_status: OverallStatus | str | None = Field(None, alias="overallStatus")
        detailed_status: DetailedStatus | str | None = Field(None, alias="detailedStatus")
        start_time: Timestamp = Field(None, alias="startTime")
        end_time: Timestamp = Field(None, alias="endTime")
        last_response_time: Timestamp = Field(None, alias="lastResponseTime")
        start_time_gmt: Timestamp = Field(None, alias="start_time_GMT")
        end_time_gmt: Timestamp = Field(None, alias="end_time_GMT")
        completion_mode: CompletionMode | str | None = Field(None, alias="completionMode")
        result: Result | None = None
        pdf_report: str | None = Field(None, alias="pdfReport")
        html_report: str | None = Field(None, alias="htmlReport")
        performance_category: str | None = Field(None, alias="performanceCategory")
        performance_category_version: int | None = Field(None, alias="performanceCategoryVersion")
        analysis: Analysis | None = None

    class Candidate(Model):
        email: str | None = None
        registration: dict[str, str] | None = None
        test_status: Status | None = Field(None, alias="testStatus")
        proctoring_details: Any = Field(None, alias="proctoringDetails")

    class Paging(Model):
        previous: str | None = None
        next: str | None = None
        total_records: int | None = Field(None, alias="totalRecords")

    class Page(Model):
        status: str
        candidates: list[Candidate]
        paging: Paging | None = None

    return Page.model_validate_json


# ---------------------------------------------------------------------------
# Timing
# ---------------------------------------------------------------------------


def _time_once(fn: Callable[[bytes], object], page: bytes, loops: int) -> float:
    start = time.thread_time()
    for _ in range(loops):
        fn(page)
    return (time.thread_time() - start) / loops


def measure(
    columns: dict[str, Callable[[bytes], object]], page: bytes, *, rounds: int, loops: int
) -> dict[str, float]:
    """Median seconds per page of each column, rounds interleaved after a warm-up."""
    for fn in columns.values():  # warm-up: caches, generated code, branch predictors
        _time_once(fn, page, max(1, loops // 2))
    samples: dict[str, list[float]] = {name: [] for name in columns}
    # The garbage collector stays on (it is part of what decoding costs), but every
    # column starts from a clean heap, so no column pays for another's garbage.
    for _ in range(rounds):
        for name, fn in columns.items():
            gc.collect()
            samples[name].append(_time_once(fn, page, loops))
    return {name: statistics.median(values) for name, values in samples.items()}


def library_raw(page: bytes) -> int:
    """The library's raw path: the page scanned, each record kept as sent, keys read."""
    return len(_scan(page)["candidates"])


def _scan(page: bytes) -> dict[str, Any]:
    return decode_listing(
        200, page, items_key="candidates", key_field="email", method="GET", url="bench"
    )


def decode_section(*, quick: bool) -> str:
    """The decode table: µs per record and ratio to ``orjson.loads``, both record shapes."""
    rounds, loops = (5, 3) if quick else (31, 5)
    columns: dict[str, Callable[[bytes], object]] = {
        "json.loads": json.loads,
        "orjson.loads": orjson.loads,
        "msgspec Struct": struct_decode,
        "raw path (scan)": library_raw,
        "typed partial": typed_partial,
        "typed full": typed_full,
        "dict path full": dict_path_full,
    }
    pydantic_decode = _pydantic_decoder()
    if pydantic_decode is not None:
        columns["pydantic v2"] = pydantic_decode
    rows = []
    verdicts = []
    for shape, record in SHAPES.items():
        page = make_page(record)
        medians = measure(columns, page, rounds=rounds, loops=loops)
        base = medians["orjson.loads"]
        rows.append(
            [shape]
            + [f"{value / PAGE_SIZE * 1e6:.1f} ({value / base:.2f}x)" for value in medians.values()]
        )
        full = medians["typed full"] / base
        judged = against(full, 2, at_most=True, unit="x")
        verdict = (
            f"{shape}: typed full = {full:.2f}x orjson.loads ({judged}; "
            f"{medians['dict path full'] / base:.2f}x by the dict path, "
            f"{medians['msgspec Struct'] / base:.2f}x for plain msgspec Structs); typed partial = "
            f"{medians['typed partial'] / base:.2f}x"
        )
        if "pydantic v2" in medians:
            versus = medians["typed full"] / medians["pydantic v2"]
            verdict += (
                f"; typed full = {versus:.2f}x pydantic v2 "
                f"({against(versus, 1, at_most=True, unit='x')})"
            )
        else:
            verdict += (
                "; pydantic v2 not installed: no reference column "
                "(`pip install -e '.[bench]'` brings it)"
            )
        verdicts.append(verdict)
    title = (
        f"### Decode: µs per record ({PAGE_SIZE}-record pages; median of {rounds} interleaved "
        f"rounds of {loops} pages, CPU time; ratio to orjson.loads)"
    )
    return f"{title}\n\n{table(['record', *columns], rows)}\n\n" + "\n".join(verdicts) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds: seconds, noisier")
    args = parser.parse_args(argv)
    print(f"Machine: {machine()}\n")
    print(decode_section(quick=args.quick))
    return 0


if __name__ == "__main__":
    sys.exit(main())
