"""The fake Mettl's endpoints: one handler per article of Mettl's API reference (1 to 19).

A handler gets the fake (its configuration, state and statistics: see
:class:`~mettl_async.testing.state.FakeParts`), the request, the request's
parameters (query string and form body, signature already checked) and the
URL's match info. It returns the answer's fields (``"status": "SUCCESS"`` is
added) or the whole JSON body as bytes, and raises
:class:`~mettl_async.testing.errors.Reply` to answer an error. :data:`ROUTES`
maps each method and path (after ``/{version}``) to its handler, in article order.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final

import orjson
from aiohttp import web

from mettl_async._protocol import encode_params
from mettl_async._uploads import FAVICON_MAX_BYTES, LOGO_MAX_BYTES, sniff_image
from mettl_async.testing import churn
from mettl_async.testing.data import FakeSchedule
from mettl_async.testing.errors import Reply
from mettl_async.testing.state import DEFAULT_REGISTRATION_FIELDS, FakeParts

__all__ = ["PBT_CATALOGUE", "ROUTES", "RouteHandler", "page_links"]

#: A route handler: ``(fake, request, params, match_info)`` -> fields or body.
RouteHandler = Callable[[FakeParts, web.Request, dict[str, str], dict[str, str]], Awaitable[Any]]


# -- parameters ------------------------------------------------------------------------


def _int_param(params: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise Reply("E400", f"{name} must be an integer, got {raw!r}") from None
    if not low <= value <= high:
        raise Reply("E400", f"{name} must be between {low} and {high}, got {value}")
    return value


def _listing_params(params: Mapping[str, str], sorts: tuple[str, ...]) -> tuple[int, int, str, str]:
    """``limit``, ``offset``, ``sort`` and ``sort_order`` of a listing, checked as Mettl does.

    ``sort`` defaults to the first of ``sorts``, ``sort_order`` to ``desc``
    (articles 6, 11, 16).
    """
    limit = _int_param(params, "limit", 20, 1, 100)
    offset = _int_param(params, "offset", 0, 0, 2**31)
    sort = params.get("sort", sorts[0])
    if sort not in sorts:
        raise Reply("E400", f"sort must be one of {', '.join(sorts)}")
    sort_order = params.get("sort_order", "desc")
    if sort_order not in ("asc", "desc"):
        raise Reply("E400", "sort_order must be asc or desc")
    return limit, offset, sort, sort_order


def _json_param(params: Mapping[str, str], name: str) -> Any:
    raw = params.get(name)
    if raw is None:
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise Reply("E400", f"{name!r} is not valid JSON") from None


def _bool_param(params: Mapping[str, str], name: str) -> bool:
    value = params.get(name, "false")
    if value not in ("true", "false"):
        raise Reply("E400", f"{name} must be true or false, got {value!r}")
    return value == "true"


# -- shared by several articles -------------------------------------------------------


def page_links(
    fake: FakeParts,
    request: web.Request,
    params: Mapping[str, str],
    *,
    offset: int,
    limit: int,
    total: int,
) -> dict[str, Any]:
    """``paging`` for a listing page: next/previous reuse every optional parameter."""
    paging: dict[str, Any] = {
        "previous": _link(fake, request, params, max(0, offset - limit)) if offset > 0 else None,
        "next": _link(fake, request, params, offset + limit) if offset + limit < total else None,
    }
    if fake.config.total_records:
        paging["totalRecords"] = total
    return paging


def _link(fake: FakeParts, request: web.Request, params: Mapping[str, str], offset: int) -> str:
    stale = fake.config.link_style.endswith("-stale")
    kept = {
        name: value
        for name, value in params.items()
        if name != "offset" and (stale or name not in ("ak", "ts", "asgn"))
    }
    kept["offset"] = str(offset)
    path = request.raw_path.partition("?")[0]
    link = f"{path}?{encode_params(kept)}"
    if fake.config.link_style.startswith("absolute"):
        link = f"{request.scheme}://{request.host}{link}"
    return link


async def _read_uploads(
    request: web.Request, allowed: Mapping[str, tuple[tuple[str, ...], int | None]]
) -> dict[str, tuple[str, bytes]]:
    """The multipart files of an upload, each checked like Mettl (format, size); E400 else.

    ``allowed`` maps a field name to its formats and maximum size. Anything
    but a file of an allowed field is refused: parameters travel in the query
    string, where they are signed (articles 2, 3).
    """
    if not request.content_type.startswith("multipart/"):
        if (
            allowed
            and request.can_read_body
            and request.content_type != ("application/x-www-form-urlencoded")
        ):
            raise Reply("E400", "uploads are sent as multipart/form-data")
        return {}
    files: dict[str, tuple[str, bytes]] = {}
    form = await request.post()
    for name, value in form.items():
        if not isinstance(value, web.FileField):
            raise Reply("E400", f"form-data field {name!r} is not a file (parameters go signed)")
        if name not in allowed:
            raise Reply("E400", f"unexpected file field {name!r}")
        content = value.file.read()
        kinds, max_bytes = allowed[name]
        kind = sniff_image(content)
        if kind not in kinds:
            raise Reply("E400", f"{name}: the file must be {' or '.join(kinds)}")
        if max_bytes is not None and len(content) > max_bytes:
            raise Reply("E400", f"{name}: the file is larger than {max_bytes // 1024} KB")
        files[name] = (value.filename, content)
    return files


def _assessment_or_404(fake: FakeParts, match: Mapping[str, str]) -> int:
    assessment_id = _int_param(match, "assessment_id", 0, 0, 2**63)
    if assessment_id not in fake.state.assessments:
        raise Reply("E404", f"no assessment with id {assessment_id}")
    return assessment_id


#: The ``sort`` values of articles 6 and 11 (the first is the default).
_SCHEDULE_SORTS: Final = ("createdAt", "testTaken", "name")


def _schedule_matches(data: Mapping[str, Any], wanted: Any, path: str = "filter") -> bool:
    """Whether a schedule matches article 11's ``filter`` (every given property equal)."""
    if not isinstance(wanted, dict):
        raise Reply("E400", f"{path} must be a JSON object")
    for name, value in wanted.items():
        actual = data.get("access", {}).get("type") if name == "type" else data.get(name)
        if isinstance(value, dict):
            if not isinstance(actual, dict) or not _schedule_matches(
                actual, value, f"{path}.{name}"
            ):
                return False
        elif actual != value:
            return False
    return True


def _candidate_or_404(fake: FakeParts, schedule: FakeSchedule, email: str) -> int:
    j = fake.state.account.index_of(schedule, email)
    if j is None:
        raise Reply("E404", f"no candidate {email!r} in schedule {schedule.access_key}")
    return j


# -- articles 1 to 5: the account, logo, white label, PBTs -----------------------------


async def _get_account(
    fake: FakeParts, request: web.Request, params: dict[str, str], match: dict[str, str]
) -> dict[str, Any]:
    """Article 1, ``GET /account``: the account's details."""
    logo = fake.state.logo
    white_label = None
    if fake.state.white_label is not None:
        white_label = {**fake.state.white_label, "supportNumbers": fake.state.support_numbers}
    return {
        "accountInfo": {
            "email": "admin@example.com",
            "name": "Demo Account",
            "accountType": "Enterprise",
            "logo": f"https://cdn.mettl.com/logos/{logo[0]}" if logo else None,
            "whiteLabel": white_label,
            "candidateRegistrationFields": list(DEFAULT_REGISTRATION_FIELDS),
        },
        "echo": {name: value for name, value in params.items() if name not in ("ak", "ts", "asgn")},
    }


async def _upload_logo(
    fake: FakeParts, request: web.Request, params: dict[str, str], match: dict[str, str]
) -> dict[str, Any]:
    """Article 2, ``POST /account/upload-logo``: replace the account's logo."""
    if not request.content_type.startswith("multipart/"):
        raise Reply("E400", "the logo is sent as multipart/form-data, field 'logo'")
    files = await _read_uploads(request, {"logo": (("jpeg", "png", "gif"), LOGO_MAX_BYTES)})
    if "logo" not in files:
        raise Reply("E400", "missing the multipart file 'logo'")
    fake.state.logo = files["logo"]
    return {}


async def _update_white_label(
    fake: FakeParts, request: web.Request, params: dict[str, str], match: dict[str, str]
) -> dict[str, Any]:
    """Article 3, ``POST /account/update-white-labeling``: colours, numbers, images."""
    if not fake.config.white_label_allowed:
        raise Reply("E403")
    wl = _json_param(params, "wl")
    if not isinstance(wl, dict):
        raise Reply("E400", "missing or invalid parameter 'wl'")
    for name in ("headerBackgroundColor", "headerFontColor", "buttonColor", "buttonFontColor"):
        value = wl.get(name)
        if value is not None and not (
            isinstance(value, str) and re.fullmatch(r"[0-9A-Fa-f]{3}|[0-9A-Fa-f]{6}", value)
        ):
            raise Reply("E400", f"wl.{name} must be a hex colour without '#'")
    sn = _json_param(params, "sn")
    if sn is not None and (
        not isinstance(sn, list) or len(sn) > 2 or not all(isinstance(n, str) for n in sn)
    ):
        raise Reply("E400", "sn is a list of at most 2 support numbers")
    files = await _read_uploads(
        request,
        {"fav": (("png", "ico"), FAVICON_MAX_BYTES), "cov": (("jpeg", "png", "gif"), None)},
    )
    fake.state.white_label = dict(wl)
    if sn is not None:
        fake.state.support_numbers = list(sn)
    fake.state.white_label_files.update(files)
    return {}


#: The PBT library the fake serves (article 4 names the contents, not the field names).
PBT_CATALOGUE: Final = (
    (1176, "Numerical Reasoning Test", "Aptitude", "USD 12"),
    (1255, "Java Developer Test", "IT", "USD 18"),
    (1336, "Customer Service Aptitude Test", "BPO", "USD 10"),
    (1401, "Business Communication Test", "Corporate", "USD 9"),
    (1542, "Sales Profiling Test", "Retail", "USD 15"),
)


def _pbt_json(pbt_id: int, name: str, industry: str, price: str) -> dict[str, Any]:
    return {
        "id": pbt_id,
        "name": name,
        "shortDescription": f"{name}: a ready-made test by Mettl.",
        "longDescription": f"<p>{name} measures what the role needs.</p>",
        "url": f"https://mettl.com/en/test/{pbt_id}/",
        "price": price,
        "sampleReportUrl": f"https://mettl.com/en/sample-report/{pbt_id}.pdf",
        "industries": [industry],
        "keywords": [word.lower() for word in name.split()[:2]],
    }


async def _list_pbts(
    fake: FakeParts, request: web.Request, params: dict[str, str], match: dict[str, str]
) -> dict[str, Any]:
    """Article 4, ``GET /pbts``: the Pre-Built Tests of Mettl's library."""
    return {"pbts": [_pbt_json(*pbt) for pbt in PBT_CATALOGUE]}


async def _add_pbts(
    fake: FakeParts, request: web.Request, params: dict[str, str], match: dict[str, str]
) -> dict[str, Any]:
    """Article 5, ``POST /pbts`` (v1: ``/pbts/add``): add PBTs as assessments."""
    ids = _json_param(params, "pbts")
    if not isinstance(ids, list) or not ids or not all(type(i) is int for i in ids):
        raise Reply("E400", "pbts must be a JSON list of PBT ids")
    known = {pbt[0]: pbt for pbt in PBT_CATALOGUE}
    unknown = [i for i in ids if i not in known]
    if unknown:
        raise Reply("E404", f"no PBT with id {unknown[0]}")
    added = []
    for pbt_id in ids:
        assessment_id = fake.state.new_assessment_id()
        fake.state.assessments[assessment_id] = {"name": known[pbt_id][1], "duration": 40}
        added.append({"id": pbt_id, "name": known[pbt_id][1], "assessmentId": assessment_id})
    return {"pbts": added}


# -- articles 6 to 10: assessments -----------------------------------------------------


async def _list_assessments(
    fake: FakeParts, request: web.Request, params: dict[str, str], match: dict[str, str]
) -> dict[str, Any]:
    """Article 6, ``GET /assessments``: the account's assessments, paged."""
    limit, offset, sort, sort_order = _listing_params(params, _SCHEDULE_SORTS)
    request[churn.LATE_DELAY] = await churn.before_listing_read(
        fake,
        churn.ASSESSMENTS,
        arrive=lambda: fake.state.add_assessment(f"Assessment {fake.state.last_assessment_id + 1}"),
        delete=lambda: churn.delete_assessment(fake),
    )
    listed = [fake.state.assessment_json(assessment_id) for assessment_id in fake.state.assessments]
    key = {"createdAt": "id", "testTaken": "testTaken", "name": "name"}[sort]
    listed.sort(key=lambda a: (a[key], a["id"]), reverse=sort_order == "desc")
    if fake.config.clamp_limit is not None:
        limit = min(limit, fake.config.clamp_limit)
    page: dict[str, Any] = {"assessments": listed[offset : offset + limit]}
    if fake.config.link_style != "none":
        page["paging"] = page_links(
            fake, request, params, offset=offset, limit=limit, total=len(listed)
        )
    return page


async def _get_assessment(
    fake: FakeParts, request: web.Request, params: dict[str, str], match: dict[str, str]
) -> dict[str, Any]:
    """Article 7, ``GET /assessments/{assessment-id}``: one assessment."""
    return {"assessment": fake.state.assessment_json(_assessment_or_404(fake, match))}


async def _create_assessment(
    fake: FakeParts, request: web.Request, params: dict[str, str], match: dict[str, str]
) -> dict[str, Any]:
    """Article 8, ``POST /assessments``: create an assessment."""
    assessment = _json_param(params, "assessments")
    if assessment is None:
        raise Reply("E400", "missing parameter 'assessments'")
    if not isinstance(assessment, dict) or not assessment.get("name"):
        raise Reply("E400", "the assessment needs a name")
    assessment_id = fake.state.new_assessment_id()
    fake.state.assessments[assessment_id] = assessment
    return {"assessmentId": assessment_id}


_ASSESSMENT_SETTINGS: Final = frozenset(
    {
        "instructions",
        "allowCopyPaste",
        "exitRedirectionURL",
        "showReportToCandidate",
        "onScreenCalculator",
    }
)


async def _edit_assessment_settings(
    fake: FakeParts, request: web.Request, params: dict[str, str], match: dict[str, str]
) -> dict[str, Any]:
    """Article 9, ``POST /assessments/{assessment-id}/settings/edit``: change settings."""
    assessment_id = _assessment_or_404(fake, match)
    settings = _json_param(params, "as")
    if not isinstance(settings, dict) or not settings:
        raise Reply("E400", "missing or invalid parameter 'as'")
    unknown = sorted(set(settings) - _ASSESSMENT_SETTINGS)
    if unknown:
        raise Reply("E400", f"unknown assessment setting {unknown[0]!r}")
    fake.state.assessment_settings.setdefault(assessment_id, {}).update(settings)
    return {}


async def _list_assessment_schedules(
    fake: FakeParts, request: web.Request, params: dict[str, str], match: dict[str, str]
) -> dict[str, Any]:
    """Article 10, ``GET /assessments/{assessment-id}/schedules``: its schedules."""
    assessment_id = _assessment_or_404(fake, match)
    wanted = _json_param(params, "filter")
    listed = [
        fake.state.schedule_json(schedule)
        for schedule in fake.state.account.schedules
        if schedule.assessment_id == assessment_id
    ]
    if wanted is not None:
        listed = [data for data in listed if _schedule_matches(data, wanted)]
    return {"schedules": listed}


# -- articles 11 to 14: schedules ------------------------------------------------------


async def _list_schedules(
    fake: FakeParts, request: web.Request, params: dict[str, str], match: dict[str, str]
) -> dict[str, Any]:
    """Article 11, ``GET /schedules``: every schedule of the account."""
    limit, offset, sort, sort_order = _listing_params(params, _SCHEDULE_SORTS)
    wanted = _json_param(params, "filter")
    request[churn.LATE_DELAY] = await churn.before_listing_read(
        fake,
        churn.SCHEDULES,
        arrive=lambda: fake.state.account.add_schedule(0),
        delete=lambda: churn.archive_schedule(fake),
    )
    schedules = list(fake.state.account.schedules)  # newest first: createdAt desc
    if sort == "name":
        schedules.sort(key=lambda s: (s.name, s.index), reverse=sort_order == "desc")
    elif sort == "testTaken":
        schedules.sort(key=lambda s: (s.candidate_count, s.index), reverse=sort_order == "desc")
    elif sort_order == "asc":
        schedules.reverse()
    listed = [fake.state.schedule_json(s) for s in schedules]
    if wanted is not None:
        listed = [data for data in listed if _schedule_matches(data, wanted)]
    # Article 11 shows no paging block: a short page is the last one.
    return {"schedules": listed[offset : offset + limit]}


async def _get_schedule(
    fake: FakeParts, request: web.Request, params: dict[str, str], match: dict[str, str]
) -> dict[str, Any]:
    """Article 12, ``GET /schedules/{access-key}``: one schedule."""
    return {"schedule": fake.state.schedule_json(fake.state.schedule_or_404(match["access_key"]))}


async def _create_schedule(
    fake: FakeParts, request: web.Request, params: dict[str, str], match: dict[str, str]
) -> dict[str, Any]:
    """Article 13, ``POST /assessments/{assessment-id}/schedules``: a new schedule."""
    assessment_id = _assessment_or_404(fake, match)
    sc = _json_param(params, "sc")
    if not isinstance(sc, dict):
        raise Reply("E400", "missing or invalid parameter 'sc'")
    access = sc.get("access")
    if not sc.get("name") or not sc.get("sourceApp") or not sc.get("scheduleType"):
        raise Reply("E400", "sc needs name, sourceApp and scheduleType")
    if not isinstance(access, dict) or access.get("type") not in ("OpenForAll", "ByInvitation"):
        raise Reply("E400", "sc.access.type must be OpenForAll or ByInvitation")
    schedule = fake.state.account.add_schedule(
        0,
        name=sc["name"],
        assessment_id=assessment_id,
        assessment_name=str(fake.state.assessments[assessment_id].get("name", "")),
    )
    fake.state.created_schedules[schedule.access_key] = {
        key: value for key, value in sc.items() if key not in ("name",)
    }
    return {
        "createdSchedule": {
            "assessmentId": assessment_id,
            "id": 7_300_000 + schedule.index,
            "name": schedule.name,
            "accessKey": schedule.access_key,
            "accessUrl": f"https://tests.mettl.com/authenticateKey/{schedule.access_key}",
            "status": "ACTIVE",
        }
    }


async def _edit_schedule(
    fake: FakeParts, request: web.Request, params: dict[str, str], match: dict[str, str]
) -> dict[str, Any]:
    """Article 14, ``POST /schedules/{access-key}/edit``: change a schedule."""
    schedule = fake.state.schedule_or_404(match["access_key"])
    sc = _json_param(params, "sc")
    if not isinstance(sc, dict) or not sc:
        raise Reply("E400", "missing or invalid parameter 'sc'")
    access = sc.get("access")
    if access is not None and (
        not isinstance(access, dict) or access.get("type") not in ("OpenForAll", "ByInvitation")
    ):
        raise Reply("E400", "sc.access.type must be OpenForAll or ByInvitation")
    if "name" in sc:
        name = sc["name"]
        if not isinstance(name, str) or not name.strip():
            raise Reply("E400", "sc.name must not be empty")
        if any(
            other is not schedule
            and other.assessment_id == schedule.assessment_id
            and other.name == name
            for other in fake.state.account.schedules
        ):
            raise Reply("E400", f"a schedule of this assessment is already named {name!r}")
        schedule.name = name
    fake.state.created_schedules.setdefault(schedule.access_key, {}).update(
        {key: value for key, value in sc.items() if key != "name"}
    )
    return {"schedule": fake.state.schedule_json(schedule)}


# -- articles 15 to 19: candidates -----------------------------------------------------


#: Registration fields every registration needs (article 15: never skippable).
_ALWAYS_REQUIRED: Final = ("Email Address", "First Name")


async def _register_candidates(
    fake: FakeParts, request: web.Request, params: dict[str, str], match: dict[str, str]
) -> dict[str, Any]:
    """Article 15, ``POST /schedules/{access-key}/candidates``: register candidates."""
    schedule = fake.state.schedule_or_404(match["access_key"])
    rd = _json_param(params, "rd")
    details = rd.get("registrationDetails") if isinstance(rd, dict) else None
    if not isinstance(details, list) or not details:
        raise Reply("E400", "rd.registrationDetails must be a non-empty list")
    if len(details) > 20:
        raise Reply("E400", "at most 20 candidates per call")
    allow_missing = _bool_param(params, "allowMissingMandatoryRegistrationFields")
    _bool_param(params, "showCustomInstructions")
    if "timeLimitInSec" in params:
        _int_param(params, "timeLimitInSec", 0, 1, 2**31)
    fake.stats.registration_calls += 1
    # The first three fields are mandatory; with allowMissing... only the two never skipped.
    required = _ALWAYS_REQUIRED if allow_missing else schedule.registration_fields[:3]
    statuses = []
    for item in details:
        if not isinstance(item, dict) or not all(isinstance(v, str) for v in item.values()):
            raise Reply("E400", "each registrationDetails item maps labels to strings")
        email = item.get("Email Address")
        failure = fake.state.registration_failures.get(email.casefold()) if email else None
        missing = [label for label in required if not item.get(label)]
        if failure is None and missing:
            failure = ("E028", f"mandatory registration field {missing[0]!r} is missing")
        if failure is not None:
            code, message = failure
            statuses.append(
                {"email": email, "status": "ERROR", "message": f"{code}: {message}", "url": None}
            )
            continue
        j = fake.state.account.register(schedule, item)
        statuses.append(
            {
                "email": email,
                "status": "SUCCESS",
                "message": "Candidate registered successfully",
                "url": fake.state.account.test_link(schedule, j),
            }
        )
    return {"registrationStatus": statuses}


async def _list_candidates(
    fake: FakeParts, request: web.Request, params: dict[str, str], match: dict[str, str]
) -> bytes:
    """Article 16, ``GET /schedules/{access-key}/candidates``: results, paged."""
    schedule = fake.state.schedule_or_404(match["access_key"])
    limit, offset, sort, sort_order = _listing_params(params, ("testStartTime", "name"))
    ir = _json_param(params, "ir")
    recommendation = isinstance(ir, dict) and ir.get("recommendation") is True
    essays = params.get("qr", "false") == "true"
    fake.stats.page_requests[schedule.access_key] += 1
    request[churn.LATE_DELAY] = await churn.before_listing_read(
        fake,
        churn.candidates_of(schedule.access_key),
        arrive=lambda: fake.state.account.arrive(schedule.access_key),
        delete=lambda: churn.delete_candidate(fake, schedule),
    )
    order = fake.state.account.candidate_order(schedule, sort, sort_order)
    account = fake.state.account
    if fake.config.clamp_limit is not None:
        limit = min(limit, fake.config.clamp_limit)
    records = b",".join(
        account.candidate_bytes(schedule, j, ir=recommendation, qr=essays)
        for j in order[offset : offset + limit]
    )
    paging: dict[str, Any] | None = None
    if fake.config.link_style != "none":
        paging = page_links(fake, request, params, offset=offset, limit=limit, total=len(order))
    tail = b"}" if paging is None else b',"paging":' + orjson.dumps(paging) + b"}"
    return b'{"status":"SUCCESS","candidates":[' + records + b"]" + tail


async def _get_candidate(
    fake: FakeParts, request: web.Request, params: dict[str, str], match: dict[str, str]
) -> dict[str, Any]:
    """Article 17, ``GET /schedules/{access-key}/candidates/{email}``: one result."""
    schedule = fake.state.schedule_or_404(match["access_key"])
    j = _candidate_or_404(fake, schedule, match["email"])
    ir = _json_param(params, "ir")
    recommendation = isinstance(ir, dict) and ir.get("recommendation") is True
    styles = _bool_param(params, "rs")
    essays = _bool_param(params, "qr")
    record = fake.state.account.candidate(schedule, j, ir=recommendation, qr=essays)
    status = record["testStatus"]
    if status["status"] == "Completed":
        status["pdfReport"] = f"https://reports.mettl.com/pdf/{schedule.access_key}/{j}.pdf"
        analysis = status["result"].get("analysis") or {}
        if styles:
            analysis["responseStyles"] = [
                {"title": "Genuine", "description": "Answers varied enough to be genuine."}
            ]
        else:
            analysis.pop("responseStyles", None)
        status["result"]["analysis"] = analysis or None
    return {"candidate": record}


async def _candidate_in_account(
    fake: FakeParts, request: web.Request, params: dict[str, str], match: dict[str, str]
) -> dict[str, Any]:
    """Article 18, ``GET /candidates/{email}``: one candidate, every schedule."""
    email = match["email"]
    essays = _bool_param(params, "qr")
    paged = match["version"] == "v3"
    if not paged and ("limit" in params or "offset" in params):
        raise Reply("E400", "limit and offset are only available in v3")
    instances = []
    for schedule in fake.state.account.schedules:
        j = fake.state.account.index_of(schedule, email)
        if j is None:
            continue
        record = fake.state.account.candidate(schedule, j, qr=essays)
        record.update(
            {
                "accessKey": schedule.access_key,
                "scheduleName": schedule.name,
                "assessmentId": schedule.assessment_id,
                "assessmentName": schedule.assessment_name,
            }
        )
        instances.append(record)
    if not instances:
        raise Reply("E404", f"no candidate {email!r} in this account")
    if not paged:
        return {"testInstances": instances}
    limit = _int_param(params, "limit", 20, 1, 100)
    offset = _int_param(params, "offset", 0, 0, 2**31)
    return {
        "testInstances": instances[offset : offset + limit],
        "paging": page_links(
            fake, request, params, offset=offset, limit=limit, total=len(instances)
        ),
    }


async def _delete_candidate(
    fake: FakeParts, request: web.Request, params: dict[str, str], match: dict[str, str]
) -> dict[str, Any]:
    """Article 19, ``DELETE /schedules/{access-key}/candidates/{email}``: delete a result."""
    schedule = fake.state.schedule_or_404(match["access_key"])
    j = _candidate_or_404(fake, schedule, match["email"])
    status = fake.state.account.candidate(schedule, j)["testStatus"]
    # Article 19: only a completed or expired test is deleted.
    if status["status"] != "Completed" and status["overallStatus"] not in (
        "Completed",
        "Not Started",
    ):
        raise Reply(
            "E400",
            f"only a completed or expired test can be deleted; this one is {status['status']}",
        )
    schedule.deleted.add(j)
    return {}


# -- the route table -------------------------------------------------------------------

#: Method, path after ``/{version}`` (aiohttp route syntax) and handler, in article order.
ROUTES: Final[tuple[tuple[str, str, RouteHandler], ...]] = (
    ("GET", "/account", _get_account),  # 1
    ("POST", "/account/upload-logo", _upload_logo),  # 2
    ("POST", "/account/update-white-labeling", _update_white_label),  # 3
    ("GET", "/pbts", _list_pbts),  # 4
    ("POST", "/pbts", _add_pbts),  # 5
    ("POST", "/pbts/add", _add_pbts),  # 5, as v1 spells it
    ("GET", "/assessments", _list_assessments),  # 6
    ("GET", "/assessments/{assessment_id}", _get_assessment),  # 7
    ("POST", "/assessments", _create_assessment),  # 8
    ("POST", "/assessments/{assessment_id}/settings/edit", _edit_assessment_settings),  # 9
    ("GET", "/assessments/{assessment_id}/schedules", _list_assessment_schedules),  # 10
    ("GET", "/schedules", _list_schedules),  # 11
    ("GET", "/schedules/{access_key}", _get_schedule),  # 12
    ("POST", "/assessments/{assessment_id}/schedules", _create_schedule),  # 13
    ("POST", "/schedules/{access_key}/edit", _edit_schedule),  # 14
    ("POST", "/schedules/{access_key}/candidates", _register_candidates),  # 15
    ("GET", "/schedules/{access_key}/candidates", _list_candidates),  # 16
    ("GET", "/schedules/{access_key}/candidates/{email}", _get_candidate),  # 17
    ("GET", "/candidates/{email}", _candidate_in_account),  # 18
    ("DELETE", "/schedules/{access_key}/candidates/{email}", _delete_candidate),  # 19
)
