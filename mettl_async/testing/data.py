"""Deterministic, generated Mettl account data for the fake server.

Records are produced on demand from ``(seed, schedule, candidate)`` and cached
as serialized bytes in a bounded LRU, so an account of a million candidates
costs the fake server almost no memory and the same record is byte-identical
every time it is served. Shapes follow articles 11 and 16: the four
``testStatus`` shapes, nested section/skill/difficulty marks, ``ir``
recommendations and ``qr`` essay responses, registration fields whose labels
contain spaces, and names with non-ASCII characters.
"""

from __future__ import annotations

import collections
import datetime as dt
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Final

import attrs
import orjson

from mettl_async._timefmt import ZONES
from mettl_async._timefmt import format_timestamp as _format_timestamp

__all__ = ["FakeAccount", "FakeSchedule", "format_timestamp"]

_FIRST: Final = (
    "Aarav", "José", "Zoë", "Łukasz", "Ngozi", "Søren", "Mei", "Ana María", "Ömer", "Chloé",
    "Dmitri", "Priya", "陈伟", "Fatima", "Björn", "Thandiwe", "Kenji", "Élodie", "Mateus", "Ayşe",
)  # fmt: skip
_LAST: Final = (
    "Sharma", "García", "Müller", "Nowak", "Okafor", "Østergaard", "Lin", "de la Cruz", "Yılmaz",
    "Lefèvre", "Ivanov", "Iyer", "王", "Haddad", "Sjöberg", "Dlamini", "Tanaka", "Dubois",
    "Silva", "O'Brien",
)  # fmt: skip
_EXTRA_FIELDS: Final = ("Phone Number", "Date of birth", "SAP ID", "Université", "Candidate City")
_SKILLS: Final = ("Java", "SQL", "Aptitude", "Verbal Reasoning", "Data Structures", "Python")
_LEVELS: Final = ("EASY", "MEDIUM", "DIFFICULT")
_RECOMMENDATIONS: Final = ("Recommended", "Cautiously Recommended", "Not Recommended")
_EPOCH: Final = dt.datetime(2022, 2, 18, 12, 0, 0, tzinfo=dt.UTC)
_MASK64: Final = (1 << 64) - 1


def _mix(*values: int) -> int:
    """A fast, well-spread 64-bit hash of integers (splitmix64 steps)."""
    h = 0x9E3779B97F4A7C15
    for value in values:
        h = (h ^ (value & _MASK64)) * 0xBF58476D1CE4E5B9 & _MASK64
        h = (h ^ (h >> 27)) * 0x94D049BB133111EB & _MASK64
        h ^= h >> 31
    return h


def format_timestamp(when: dt.datetime) -> str:
    """``Fri, 18 Feb 2022 01:09:52 GMT``: Mettl's timestamp format (articles 11, 16), in GMT."""
    return _format_timestamp(when.astimezone(ZONES["GMT"]))


def _ascii_slug(text: str) -> str:
    table = str.maketrans("éèëêöøóüłçñşåäıãá", "eeeeooouicnsaaiaa")
    slug = "".join(c for c in text.lower().translate(table) if c.isascii() and c.isalnum())
    return slug or "candidate"


@attrs.define
class FakeSchedule:
    """One schedule of the fake account, with its candidates' listing state."""

    index: int
    access_key: str
    name: str
    base_candidates: int
    assessment_id: int
    assessment_name: str
    sections: tuple[tuple[str, tuple[str, ...]], ...]
    registration_fields: tuple[str, ...]
    created_at: dt.datetime
    #: Candidates that arrived after the start, newest last (listed first by default).
    arrivals: list[int] = attrs.field(factory=list)
    deleted: set[int] = attrs.field(factory=set)
    registered: dict[int, dict[str, Any]] = attrs.field(factory=dict)
    #: Candidate -> how many times their marks were changed (a regrade, see ``change_marks``).
    revisions: dict[int, int] = attrs.field(factory=dict)
    #: Candidates whose test was graded after the start (completed whatever they were).
    graded: set[int] = attrs.field(factory=set)
    #: Candidates a start, finish or resume (``fake.mutate``) put "InProgress" or
    #: "InProcessing"; a grading wins over it.
    phases: dict[int, str] = attrs.field(factory=dict)

    @property
    def candidate_count(self) -> int:
        return self.base_candidates + len(self.arrivals) - len(self.deleted)

    def order(self) -> list[int]:
        """Candidate indexes in the default order: test start time, newest first."""
        newest_first = [*reversed(self.arrivals), *range(self.base_candidates)]
        if not self.deleted:
            return newest_first
        return [j for j in newest_first if j not in self.deleted]


class FakeAccount:
    """The data of one fake Mettl account.

    ``schedules`` is a count (each with ``candidates`` candidates) or a list of
    candidate counts, one per schedule. Schedule 0 is the newest.
    """

    def __init__(
        self,
        schedules: int | Sequence[int] = 3,
        candidates: int = 10,
        *,
        seed: int = 0,
        cache_records: int = 200_000,
    ) -> None:
        sizes = [candidates] * schedules if isinstance(schedules, int) else list(schedules)
        self.seed = seed
        self.schedules: list[FakeSchedule] = [
            self._make_schedule(i, n) for i, n in enumerate(sizes)
        ]
        self._by_key = {s.access_key: s for s in self.schedules}
        self._cache: collections.OrderedDict[tuple[int, int, bool, bool], bytes] = (
            collections.OrderedDict()
        )
        self._cache_size = cache_records

    # -- schedules ---------------------------------------------------------------

    def _make_schedule(self, index: int, size: int) -> FakeSchedule:
        h = _mix(self.seed, index, 1)
        alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
        key = "".join(alphabet[(h >> (6 * k)) % 36] for k in range(8)) + f"{index % 100:02d}"
        section_count = 1 + h % 2
        sections = tuple(
            (
                f"Section #{s + 1}",
                tuple(
                    _SKILLS[(h >> (8 + 3 * s + k)) % len(_SKILLS)] + f" {k + 1}"
                    for k in range(1 + (h >> (16 + s)) % 2 * (s == 0))
                ),
            )
            for s in range(section_count)
        )
        extras = tuple(f for k, f in enumerate(_EXTRA_FIELDS) if (h >> (20 + k)) & 1)
        name = f"Test Link {index + 1}" + (" — Évaluation" if index % 5 == 3 else "")
        return FakeSchedule(
            index=index,
            access_key=key,
            name=name,
            base_candidates=size,
            assessment_id=999_000 + index % 7,
            assessment_name=f"Assessment {index % 7 + 1}",
            sections=sections,
            registration_fields=("Email Address", "First Name", "Last Name", *extras),
            created_at=_EPOCH - dt.timedelta(hours=3 * index, seconds=h % 3600),
        )

    def schedule(self, access_key: str) -> FakeSchedule | None:
        return self._by_key.get(access_key)

    def add_schedule(self, size: int = 0, **overrides: Any) -> FakeSchedule:
        schedule = self._make_schedule(len(self._by_key), size)
        for name, value in overrides.items():
            setattr(schedule, name, value)
        self.schedules.insert(0, schedule)  # newest first
        self._by_key[schedule.access_key] = schedule
        return schedule

    def archive_schedule(self, access_key: str) -> None:
        """Take a schedule out of the account's listing (article 11). Its own endpoints still
        answer, as an archived test link's would."""
        schedule = self._by_key[access_key]
        self.schedules.remove(schedule)

    def schedule_json(self, schedule: FakeSchedule) -> dict[str, Any]:
        """A schedule as article 11 lists it."""
        fixed = schedule.index % 4 == 1
        invitation = schedule.index % 3 == 2
        photo = schedule.index % 2 == 1
        created = format_timestamp(schedule.created_at)
        return {
            "id": 7_300_000 + schedule.index,
            "name": schedule.name,
            "accessKey": schedule.access_key,
            "status": "ACTIVE",
            "createdAt": created,
            "imageProctoring": photo,
            "webProctoring": (
                {"enabled": True, "count": 10, "showRemainingCounts": True}
                if fixed
                else {"enabled": False}
            ),
            "scheduleType": "Fixed" if fixed else "AlwaysOn",
            "scheduleWindow": (
                {
                    "fixedAccessOption": "ExactTime",
                    "startsOnDate": "Tue, 08 Feb 2022",
                    "endsOnDate": "Wed, 09 Feb 2022",
                    "startsOnTime": "12:49:00",
                    "endsOnTime": "12:49:00",
                    "timeZone": "UTC+05:30",
                    "locationTimeZone": "Asia/Kolkata",
                }
                if fixed
                else None
            ),
            "access": {
                "type": "ByInvitation" if invitation else "OpenForAll",
                "candidates": (
                    [{"name": "sample", "submissionDate": None, "email": "sample@email.com"}]
                    if invitation
                    else None
                ),
                "sendEmail": False if invitation else None,
                "sendReminders": False if invitation else None,
                "isCandidateCrfPrefilled": False,
            },
            "ipAccessRestriction": {"enabled": False},
            "sourceApp": "Mettl",
            "testStartNotificationUrl": None,
            "testFinishNotificationUrl": None,
            "testGradedNotificationUrl": None,
            "testResumeEnabledForExpiredTestURL": None,
            "isCandidateAuthProctored": photo,
            "testGradeNotification": {"enabled": False, "recipients": None},
            "visualProctoring": {
                "options": {
                    "candidateScreenCapture": photo,
                    "candidateAuthorization": photo,
                    "audioOptional": True,
                    "isAudioProctoring": False,
                },
                "mode": "PHOTO" if photo else "OFF",
            },
            "allowTestResume": "UnSuperVised",
            "secureBrowser": {"enabled": fixed},
            "assessmentDetails": {
                "id": schedule.assessment_id,
                "duration": 30 + 15 * (schedule.index % 3),
                "name": schedule.assessment_name,
                "instructions": "",
                "createdAt": created,
            },
            "protected": "NotEnabled",
        }

    # -- candidates --------------------------------------------------------------

    def arrive(self, access_key: str, count: int = 1) -> list[str]:
        """``count`` new candidates start the test now; returns their emails."""
        schedule = self._by_key[access_key]
        emails = []
        for _ in range(count):
            j = schedule.base_candidates + len(schedule.arrivals)
            schedule.arrivals.append(j)
            emails.append(self.email(schedule, j))
        return emails

    def name_of(self, schedule: FakeSchedule, j: int) -> tuple[str, str]:
        h = _mix(self.seed, schedule.index, j, 2)
        return _FIRST[h % len(_FIRST)], _LAST[(h >> 8) % len(_LAST)]

    def email(self, schedule: FakeSchedule, j: int) -> str:
        registered = schedule.registered.get(j)
        if registered is not None:
            return str(registered["email"])
        first, last = self.name_of(schedule, j)
        local = f"{_ascii_slug(first)}.{_ascii_slug(last)}.{j}"
        if j % 7 == 3:
            local += f"+s{schedule.index}"  # plus-addressing, as real candidates use
        return f"{local}@example.com"

    def register(self, schedule: FakeSchedule, registration: Mapping[str, str]) -> int:
        """Register a candidate (article 15) by their fields; returns their index.

        A candidate already in the schedule (same email) keeps their index and
        data; a new one joins the listing as "Yet to Start / Registered".
        """
        email = registration["Email Address"]
        existing = self.index_of(schedule, email)
        if existing is not None:
            return existing
        j = schedule.base_candidates + len(schedule.arrivals)
        schedule.arrivals.append(j)
        schedule.registered[j] = {"email": email, "registration": dict(registration)}
        return j

    def complete(self, schedule: FakeSchedule, j: int) -> None:
        """A registered candidate takes and finishes the test (their result is generated)."""
        registered = schedule.registered.get(j)
        if registered is None:
            raise KeyError(f"candidate {j} of {schedule.access_key} was not registered")
        registered["completed"] = True
        self.forget(schedule, j)

    def forget(self, schedule: FakeSchedule, j: int) -> None:
        """Drop a candidate's cached records (after their result changed)."""
        for ir in (False, True):
            for qr in (False, True):
                self._cache.pop((schedule.index, j, ir, qr), None)

    def change_marks(self, schedule: FakeSchedule, j: int) -> None:
        """A completed candidate is regraded: new marks (a different total), same test."""
        if self.candidate(schedule, j)["testStatus"]["status"] != "Completed":
            raise ValueError(f"candidate {j} of {schedule.access_key} has no result to regrade")
        before = self._total_marks(schedule, j)
        for _ in range(50):  # a new draw of the marks until the total differs
            schedule.revisions[j] = schedule.revisions.get(j, 0) + 1
            self.forget(schedule, j)
            if self._total_marks(schedule, j) != before:
                return
        raise ValueError(f"candidate {j} of {schedule.access_key}: no other total found")

    def _total_marks(self, schedule: FakeSchedule, j: int) -> Any:
        return self.candidate(schedule, j)["testStatus"]["result"]["totalMarks"]

    def grade(self, schedule: FakeSchedule, j: int) -> None:
        """A candidate not yet completed (in progress, in processing, to be taken) is graded."""
        if self.candidate(schedule, j)["testStatus"]["status"] == "Completed":
            raise ValueError(f"candidate {j} of {schedule.access_key} is graded already")
        schedule.graded.add(j)
        self.forget(schedule, j)

    def delete(self, schedule: FakeSchedule, j: int) -> None:
        """The candidate's result is deleted (whatever its state, as from Mettl's dashboard)."""
        if j in schedule.deleted:
            raise ValueError(f"candidate {j} of {schedule.access_key} is deleted already")
        schedule.deleted.add(j)
        self.forget(schedule, j)

    def test_link(self, schedule: FakeSchedule, j: int) -> str:
        """The candidate-specific test link article 15 returns (stable per candidate)."""
        token = _mix(self.seed, schedule.index, j, 5)
        return f"https://tests.mettl.com/authenticateKey/{schedule.access_key}?key={token:016x}"

    def index_of(self, schedule: FakeSchedule, email: str) -> int | None:
        """The candidate index of ``email`` in ``schedule`` (``None`` if not there)."""
        for j in schedule.order():
            if self.email(schedule, j) == email:
                return j
        return None

    def candidate_order(
        self, schedule: FakeSchedule, sort: str | None = None, sort_order: str | None = None
    ) -> list[int]:
        """Indexes in listing order for article 16's ``sort``/``sort_order``."""
        order = schedule.order()  # testStartTime, desc
        if sort == "name":
            order = sorted(order, key=lambda j: (" ".join(self.name_of(schedule, j)), j))
            if sort_order != "asc":
                order.reverse()
        elif sort_order == "asc":
            order.reverse()
        return order

    def candidate_bytes(self, schedule: FakeSchedule, j: int, *, ir: bool, qr: bool) -> bytes:
        key = (schedule.index, j, ir, qr)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        data = orjson.dumps(self.candidate(schedule, j, ir=ir, qr=qr))
        if self._cache_size:
            self._cache[key] = data
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return data

    def candidate(
        self, schedule: FakeSchedule, j: int, *, ir: bool = False, qr: bool = False
    ) -> dict[str, Any]:
        """One candidate result as article 16 returns it."""
        h = _mix(self.seed, schedule.index, j, 3)
        first, last = self.name_of(schedule, j)
        email = self.email(schedule, j)
        registration: dict[str, str] = {
            "Email Address": email,
            "First Name": first,
            "Last Name": last,
        }
        for field in schedule.registration_fields[3:]:
            registration[field] = _field_value(field, h)
        registered = schedule.registered.get(j)
        if registered is not None:
            # a registered candidate is exactly what article 15 was given
            registration = {"Email Address": email, **registered.get("registration", {})}
        started = _EPOCH - dt.timedelta(seconds=97 * j + h % 60)
        shape = h % 20
        phase = schedule.phases.get(j)
        status: dict[str, Any]
        if (registered is not None and registered.get("completed")) or j in schedule.graded:
            status = self._completed(
                schedule, j, self._marks_seed(schedule, j, h), started, ir=ir, qr=qr
            )
        elif phase is None and registered is not None:
            status = {
                "status": "ToBeTaken",
                "overallStatus": "Yet to Start",
                "detailedStatus": "Registered",
            }
        elif phase is None and shape < 2 and j < schedule.base_candidates:
            status = {
                "status": "ToBeTaken",
                "overallStatus": "Yet to start",
                "detailedStatus": "Mapped",
            }
        elif phase == "InProgress" or (
            phase is None and (shape < 4 or j >= schedule.base_candidates)
        ):
            # in progress; every arrival is a candidate who just started
            status = {
                "status": "InProgress",
                "overallStatus": "In-progress",
                "detailedStatus": "In-progress",
                "startTime": format_timestamp(started),
                "lastResponseTime": "",
            }
        elif phase == "InProcessing" or (phase is None and shape < 5):
            status = {
                "status": "InProcessing",
                "overallStatus": "Completed",
                "detailedStatus": "Test-taker Completed",
                "startTime": format_timestamp(started),
                "endTime": format_timestamp(started + dt.timedelta(minutes=25)),
            }
        else:
            status = self._completed(
                schedule, j, self._marks_seed(schedule, j, h), started, ir=ir, qr=qr
            )
        record: dict[str, Any] = {
            "email": email,
            "registration": registration,
            "testStatus": status,
            "proctoringDetails": None,
        }
        if h % 11 == 0:
            record["proctoringDetails"] = {
                "candidateCredibilityIndex": "High",
                "browsingToleranceCount": h % 3,
            }
        return record

    @staticmethod
    def _marks_seed(schedule: FakeSchedule, j: int, h: int) -> int:
        """What a completed result's marks are drawn from: new ones after each regrade."""
        revision = schedule.revisions.get(j, 0)
        return h if not revision else _mix(h, revision, 4)

    def _completed(
        self, schedule: FakeSchedule, j: int, h: int, started: dt.datetime, *, ir: bool, qr: bool
    ) -> dict[str, Any]:
        sections = []
        total = maximum = 0.0
        questions_total = correct_total = 0
        difficulty_all: list[dict[str, Any]] = []
        for s, (section_name, skills) in enumerate(schedule.sections):
            skill_marks = []
            section_total = section_max = 0.0
            for k, skill in enumerate(skills):
                seed = _mix(h, s, k)
                questions = 4 + seed % 4
                correct = seed % (questions + 1)
                level = _LEVELS[(seed >> 4) % 3]
                marks = float(correct)
                difficulty = {
                    "level": level,
                    "totalQuestion": questions,
                    "totalMarks": marks,
                    "totalUnAnswered": (seed >> 7) % 2,
                    "maxMarks": float(questions),
                    "timeTaken": 30 + seed % 300,
                    "totalCorrectAnswers": correct,
                }
                skill_entry: dict[str, Any] = {
                    "skillName": skill,
                    "totalMarks": marks,
                    "maxMarks": float(questions),
                    "timeTaken": float(30 + seed % 300),
                    "totalQuestion": float(questions),
                    "totalCorrectAnswers": float(correct),
                    "totalUnAnswered": float((seed >> 7) % 2),
                    "questions": None,
                    "difficultyMarks": [difficulty],
                }
                if qr:
                    essay = _essay(schedule, j, s, k, seed)
                    skill_entry["questions"] = [essay]
                    skill_entry["difficultyMarks"] = [dict(difficulty, questions=[essay])]
                skill_marks.append(skill_entry)
                difficulty_all.append(difficulty)
                section_total += marks
                section_max += questions
                questions_total += questions
                correct_total += correct
            sections.append(
                {
                    "sectionName": section_name,
                    "totalMarks": section_total,
                    "maxMarks": section_max,
                    "timeTaken": 0.0,
                    "totalQuestion": float(sum(int(sk["totalQuestion"]) for sk in skill_marks)),
                    "totalCorrectAnswers": float(
                        sum(int(sk["totalCorrectAnswers"]) for sk in skill_marks)
                    ),
                    "totalUnAnswered": 0.0,
                    "skillMarks": skill_marks,
                    "difficultyMarks": [dict(d) for d in skill_marks[0]["difficultyMarks"]][:1],
                    "questionWiseResponse": None,
                }
            )
            total += section_total
            maximum += section_max
        attempt = 600.0 + (h % 3000) / 7
        result: dict[str, Any] = {
            "totalMarks": total,
            "maxMarks": maximum,
            "percentile": round((h % 10000) / 100, 3),
            "attemptTime": round(attempt, 3),
            "candidateCredibilityIndex": ("Not Applicable", "High", "Medium", "Low")[h % 4],
            "totalQuestion": float(questions_total),
            "totalCorrectAnswers": float(correct_total),
            "totalUnAnswered": 0.0,
            "sectionMarks": sections,
            "analysis": None,
            "difficultyMarks": difficulty_all[:2],
            "codePlagiarism": "NA",
        }
        if ir:
            result["analysis"] = {
                "versionId": 999_999,
                "recommendation": [
                    {"type": "Recommendation", "value": _RECOMMENDATIONS[h % 3]},
                ],
                "responseStyles": [
                    {
                        "title": "Genuine",
                        "description": "If questions are answered in a sufficiently varied manner.",
                    }
                ],
            }
        ended = started + dt.timedelta(seconds=attempt)
        return {
            "status": "Completed",
            "overallStatus": "Completed",
            "detailedStatus": "Time Over" if h % 9 == 0 else "Test-taker Completed",
            "startTime": format_timestamp(started),
            "endTime": format_timestamp(ended),
            "completionMode": "AutoCompleted" if h % 9 == 0 else "Completed",
            "result": result,
            "performanceCategory": None,
            "performanceCategoryVersion": None,
            "htmlReport": f"https://mettl.com/analytics/share-report?key={h & 0xFFFFFFFF:08x}",
        }

    # -- ground truth ------------------------------------------------------------

    def candidates(
        self, schedule: FakeSchedule, *, ir: bool = False, qr: bool = False
    ) -> Iterator[dict[str, Any]]:
        """Every current candidate of ``schedule``, in the default order."""
        for j in schedule.order():
            yield orjson.loads(self.candidate_bytes(schedule, j, ir=ir, qr=qr))

    @property
    def total_candidates(self) -> int:
        return sum(s.candidate_count for s in self.schedules)


def _field_value(field: str, h: int) -> str:
    if field == "Phone Number":
        return f"+91-98{h % 100_000_000:08d}"
    if field == "Date of birth":
        return dt.date(1985 + h % 20, 1 + h % 12, 1 + h % 28).strftime("%b %d %Y")
    if field == "SAP ID":
        return f"SAP{h % 1_000_000:06d}"
    if field == "Université":
        return ("Université Paris-Saclay", "IIT Bombay", "TU München", "Universidad de Chile")[
            h % 4
        ]
    return ("Bengaluru", "São Paulo", "Kraków", "Zürich", "Lagos")[h % 5]


def _essay(schedule: FakeSchedule, j: int, s: int, k: int, seed: int) -> dict[str, Any]:
    words = 40 + seed % 30
    text = " ".join(
        ("lorem", "ipsum", "dolor", "sit", "amet", "consectetur")[(seed + w) % 6]
        for w in range(words)
    )
    return {
        "type": "la",
        "questionText": f"<div>Describe your approach to problem {s + 1}.{k + 1} in detail.</div>",
        "questionType": "Long Answer",
        "marksScored": 0.0,
        "maxMarks": 5.0,
        "hasWordLimit": False,
        "wordLimit": 0,
        "wordCount": words,
        "candidateResponse": f"<p>{text}</p>",
    }
