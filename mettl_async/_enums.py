"""Closed value sets of the Mettl API, as ``str`` enums that never break decoding.

Each enum lists the values Mettl's articles document. Decoding goes through
:meth:`MettlEnum.parse`: an exact value is returned as its member, a value
that differs only in case or spacing is matched case-insensitively (the
articles themselves disagree: "Test-taker completed" in article 16's table,
"Test-taker Completed" in its responses; "Yet to Start" vs "Yet to start"),
and anything else is kept as the plain ``str`` the server sent and reported
once per (enum, value) at WARNING on the ``mettl_async.models`` logger (see
``_warnonce``). Model fields are therefore typed ``TheEnum | str``.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import Any, Final, Self, TypeVar

from ._warnonce import WarnOnce

__all__ = [
    "AccessType",
    "CompletionMode",
    "DetailedStatus",
    "FinishMode",
    "FixedAccessOption",
    "IPRestrictionType",
    "MettlEnum",
    "OverallStatus",
    "Protection",
    "QuestionType",
    "ScheduleType",
    "SkillLevel",
    "TestState",
    "VisualProctoringMode",
    "WebhookEventType",
    "enum_decoder",
    "inline_decoder",
]


#: Each unknown value is reported once, keyed by (enum name, value).
_warn_once: Final = WarnOnce()
#: Per decoder, at most this many case/spacing variants are remembered for a fast match:
#: enough spellings for any real data, few enough for untrusted input.
_SPELLINGS_LIMIT: Final = 256


def _fold(value: str) -> str:
    """Case- and spacing-insensitive key: "Proctor Stopped " == "proctor  stopped"."""
    return " ".join(value.split()).casefold()


class MettlEnum(StrEnum):
    """Base of every Mettl value set: ``parse`` decodes leniently, ``str()`` is the wire value."""

    @classmethod
    def parse(cls, value: object) -> Self | str | None:
        """The member for ``value`` (matched case-insensitively), else ``value`` as a ``str``.

        ``None`` stays ``None``. An unknown value is logged once at WARNING.
        """
        return enum_decoder(cls)(value)


_DECODERS: dict[type[MettlEnum], Callable[[object], Any]] = {}

E = TypeVar("E", bound=MettlEnum)


def enum_decoder(cls: type[E]) -> Callable[[object], E | str | None]:
    """The decoding function of ``cls`` (one per enum, shared by every field of that type).

    The converter binds it into its hooks; the exact-match path is one dict lookup.
    """
    decoder = _DECODERS.get(cls)
    if decoder is None:
        decoder = _DECODERS[cls] = _make_decoder(cls)
    return decoder


def _make_decoder(cls: type[E]) -> Callable[[object], E | str | None]:
    """Exact lookup first, then case- and spacing-insensitive, else the text, reported once."""
    exact: dict[object, E] = {member.value: member for member in cls}
    folded: dict[str, E] = {_fold(member.value): member for member in cls}
    name = cls.__name__

    def decode(value: object) -> E | str | None:
        try:
            return exact[value]
        except (KeyError, TypeError):  # TypeError: an unhashable JSON value (list, object)
            pass
        if value is None:
            return None
        text = value if isinstance(value, str) else str(value)
        member = folded.get(_fold(text))
        if member is not None:
            # remember this spelling ("EASY" for "easy"): results repeat it thousands of times
            if len(exact) < _SPELLINGS_LIMIT:
                exact[text] = member
            return member
        _warn_once(
            (name, text),
            "Mettl sent %s value %r, which this version does not know: "
            "kept as a plain string (reported once)",
            name,
            text,
        )
        return text

    return decode


def inline_decoder(cls: type[E]) -> tuple[dict[Any, E | None], Callable[[Any], E | str | None]]:
    """The decoder's common case, for generated code: ``known[v] if v in known else learn(v)``.

    ``known`` maps each wire value (and ``None``) to its member; ``learn``
    decodes anything else as :func:`enum_decoder` does (case-insensitively,
    reporting unknown values once) and remembers each new spelling of a member
    (``"EASY"`` for ``easy``) in ``known``. A fresh pair at each call.
    """
    decode = enum_decoder(cls)
    known: dict[Any, E | None] = {None: None, **{member.value: member for member in cls}}

    def learn(value: Any) -> E | str | None:
        member = decode(value)
        if isinstance(member, cls) and len(known) < _SPELLINGS_LIMIT:
            known[value] = member
        return member

    return known, learn


class AccessType(MettlEnum):
    """``access.type`` (article 13): public link or private, invited candidates only."""

    OPEN_FOR_ALL = "OpenForAll"
    BY_INVITATION = "ByInvitation"


class ScheduleType(MettlEnum):
    """``scheduleType`` (article 13): accessible any time, or in a fixed window."""

    ALWAYS_ON = "AlwaysOn"
    FIXED = "Fixed"


class FixedAccessOption(MettlEnum):
    """``scheduleWindow.fixedAccessOption`` (article 13)."""

    EXACT_TIME = "ExactTime"
    SLOT_WISE = "SlotWise"


class VisualProctoringMode(MettlEnum):
    """``visualProctoring.mode`` (articles 11, 13): ``PHOTO`` enables it."""

    PHOTO = "PHOTO"
    OFF = "OFF"


class Protection(MettlEnum):
    """``protected`` (articles 11, 13): an OTP sent by email before the test, or none."""

    OTP_ON_EMAIL = "OtpOnEmail"
    NOT_ENABLED = "NotEnabled"


class IPRestrictionType(MettlEnum):
    """``ipAccessRestriction.type`` (article 13)."""

    SINGLE = "SINGLE"
    RANGE = "RANGE"


class SkillLevel(MettlEnum):
    """A skill's difficulty level: lower case in article 8's requests, ``EASY`` in results."""

    EASY = "easy"
    MEDIUM = "medium"
    DIFFICULT = "difficult"


class QuestionType(MettlEnum):
    """``questionType`` of a skill in an assessment (article 8)."""

    ALL_TYPE = "AllType"
    MCQ = "MCQ"
    MCA = "MCA"
    SHORT_ANSWER = "SHORT_ANSWER"
    FITB = "FITB"
    LONG_ANSWER = "LONG_ANSWER"
    CODE = "CODE"
    SQL = "SQL"
    CS = "CS"
    CP = "CP"
    FES = "FES"
    TS = "TS"
    FU = "FU"


class TestState(MettlEnum):
    """``testStatus.status`` (article 16): the four shapes of a candidate's record."""

    __test__ = False  # not a pytest test class, whatever the name suggests

    TO_BE_TAKEN = "ToBeTaken"
    IN_PROGRESS = "InProgress"
    IN_PROCESSING = "InProcessing"
    COMPLETED = "Completed"


class OverallStatus(MettlEnum):
    """``testStatus.overallStatus`` (article 16's table, plus the dashboard's Blocked/Disconnected).

    Values are spelled as article 16's responses send them ("Yet to start");
    the table's "Yet to Start" matches too.
    """

    YET_TO_START = "Yet to start"
    NOT_STARTED = "Not Started"
    IN_PROGRESS = "In-progress"
    COMPLETED = "Completed"
    TEST_STOPPED = "Test Stopped"
    BLOCKED = "Blocked"
    DISCONNECTED = "Disconnected"


class DetailedStatus(MettlEnum):
    """``testStatus.detailedStatus`` (article 16's table).

    "Test-taker Completed" is spelled as the responses send it; the table's
    "Test-taker completed" matches too.
    """

    MAPPED = "Mapped"
    INVITED = "Invited"
    REGISTERED = "Registered"
    ACCESS_EXPIRED = "Access Expired"
    IN_PROGRESS = "In-progress"
    AWAITING_RESUME_PERMISSION = "Awaiting Resume Permission"
    TEST_TAKER_COMPLETED = "Test-taker Completed"
    TIME_OVER = "Time Over"
    MIC_MUTE_LIMIT_EXCEEDED = "Mic Mute Limit exceeded"
    BROWSING_TOLERANCE_LIMIT_EXCEEDED = "Browsing Tolerance Limit Exceeded"
    PROCTOR_STOPPED = "Proctor Stopped"
    SUSPICIOUS_SOFTWARE_DETECTED = "Suspicious Software Detected"
    MULTIPLE_SCREEN_DETECTED = "Multiple Screen Detected"
    PROHIBITED_APPS_RUNNING = "Prohibited Apps Running"
    SCREEN_CAPTURE_RECORDING_DETECTED = "Screen Capture/Recording Detected"
    SCREEN_SHARING_REMOTE_ACCESS_DETECTED = "Screen Sharing/Remote Access Detected"
    AUTHORIZER_BLOCKED = "Authorizer Blocked"
    DISCONNECTED_FROM_SERVER = "Disconnected from Server"
    TEST_WINDOW_CLOSED = "Test Window Closed"
    AWAITING_TEST_TAKER_RESUME = "Awaiting Test-taker Resume"


class CompletionMode(MettlEnum):
    """``testStatus.completionMode``: how a finished test ended (article 16's table)."""

    AUTO_COMPLETED = "AutoCompleted"
    NA = "NA"
    BROWSING_TOLERANCE_EXCEEDED = "BrowsingToleranceExceeded"
    EXPIRED = "Expired"
    COMPLETED = "Completed"
    PARENT_FINISHED = "ParentFinished"
    PROCTORED_FINISH = "ProctoredFinish"
    RESUME_ENABLED = "ResumeEnabled"
    SUSPICIOUS_SOFTWARE_FINISH = "SuspiciousSoftwareFinish"
    CANDIDATE_CLOSED = "CandidateClosed"


class FinishMode(MettlEnum):
    """``finish_mode`` of the finish and graded webhooks (article 13's table)."""

    TIME_EXPIRED = "TimeExpired"
    BLOCKED = "Blocked"
    BROWSING_TOLERANCE_EXCEEDED = "BrowsingToleranceExceeded"
    TEST_EXPIRED = "TestExpired"
    NORMAL_SUBMISSION = "NormalSubmission"
    PARENT_FINISH = "ParentFinish"
    PROCTORED_FINISH = "ProctoredFinish"
    NA = "NA"
    SUSPICIOUS_SOFTWARE_FINISH = "SuspiciousSoftwareFinish"
    CANDIDATE_CLOSED = "CandidateClosed"


class WebhookEventType(MettlEnum):
    """``EVENT_TYPE`` of the four schedule webhooks (article 13)."""

    START_ASSESSMENT = "startAssessment"
    FINISH_TEST = "finishTest"
    GRADED_ASSESSMENT = "gradedAssessment"
    CANDIDATE_TEST_RESUMED = "candidateTestResumed"


#: Every value set, for tests and documentation.
ALL_ENUMS: Final[tuple[type[MettlEnum], ...]] = (
    AccessType,
    ScheduleType,
    FixedAccessOption,
    VisualProctoringMode,
    Protection,
    IPRestrictionType,
    SkillLevel,
    QuestionType,
    TestState,
    OverallStatus,
    DetailedStatus,
    CompletionMode,
    FinishMode,
    WebhookEventType,
)
