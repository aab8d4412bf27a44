"""Sans-I/O paging: pages, next links, and the bookkeeping of a walk.

Mettl's listings are offset based (``limit`` 1..100, ``offset``); article 16
also returns ``paging.next``/``previous`` links that repeat every optional
parameter of the first request, and production code reads
``paging.totalRecords``. Article 11 shows no paging block at all: a short page
is the last one.
"""

from __future__ import annotations

import functools
from collections.abc import Hashable, Iterator, Mapping, Sequence
from typing import Any, ClassVar, Final, Generic, TypeVar, Union, cast
from urllib.parse import SplitResult, parse_qsl, urljoin, urlsplit

import attrs
import msgspec
import orjson

from ._errors import DecodeError, PaginationError, ValidationError, ValidationProblem
from ._protocol import EXCERPT_BYTES, decode_response, redact_url
from ._signing import SIGNATURE_PARAMS

__all__ = [
    "MAX_LIMIT",
    "Page",
    "PageText",
    "RawRecord",
    "WireRecord",
    "check_page_size",
    "decode_listing",
    "decode_typed_listing",
    "link_request",
    "page_from_envelope",
]

T = TypeVar("T")
U = TypeVar("U")
MAX_LIMIT: Final = 100


@attrs.frozen
class Page(Generic[T]):
    """One page of a listing, as the walk yields it.

    ``items`` holds the records not yielded before (a record whose key was
    already seen in this walk is dropped, so offsets shifting under live data
    never duplicate anyone). ``offset``/``limit`` are what was asked for;
    ``total_records``, ``next`` and ``previous`` are what the server said
    (``None`` when it said nothing; ``paged`` tells whether it sent a paging
    block at all). ``received`` counts the records the server sent for this
    page, duplicates included. ``is_last`` marks the final page of the walk.
    """

    items: Sequence[T]
    offset: int
    limit: int
    total_records: int | None = None
    next: str | None = None
    previous: str | None = None
    received: int = 0
    is_last: bool = False
    paged: bool = False

    def with_items(self, items: Sequence[U]) -> Page[U]:
        """The same page holding ``items`` (converted records, say)."""
        return Page(
            items,
            self.offset,
            self.limit,
            self.total_records,
            self.next,
            self.previous,
            self.received,
            self.is_last,
            self.paged,
        )

    def is_end(self) -> bool:
        """Whether nothing follows this page, by what the server said, else by its size."""
        if self.received == 0:
            return True
        if self.total_records is not None:
            return self.offset + self.received >= self.total_records
        if self.paged:
            return self.next is None
        return self.received < self.limit  # article 11: no paging block, a short page ends


def check_page_size(page_size: int) -> int:
    """Mettl's ``limit`` is 1..100: refuse anything else before any I/O."""
    valid = isinstance(page_size, int) and not isinstance(page_size, bool)
    if not valid or not 1 <= page_size <= MAX_LIMIT:
        problem = f"must be an integer from 1 to {MAX_LIMIT}, got {page_size!r}"
        raise ValidationError([ValidationProblem("limit", problem)], subject="page size")
    return page_size


def link_request(link: str, current_url: str) -> tuple[str, dict[str, str]]:
    """The URL (without query) and parameters a next/previous link asks for.

    Relative links resolve against the URL of the page they came in. Any
    ``ak``, ``ts`` or ``asgn`` in the link is dropped (the request is re-signed
    fresh); every other parameter is kept as the link gives it. A link to
    another scheme or host is refused: the client signs only for its own host.
    """
    absolute = urljoin(current_url, link)
    target, here = urlsplit(absolute), urlsplit(current_url)
    if _origin(target) != _origin(here):
        raise PaginationError(
            f"the server sent a page link to another host ({target.scheme}://{target.netloc}); "
            "not following it"
        )
    params: dict[str, str] = {}
    for name, value in parse_qsl(target.query, keep_blank_values=True):
        if name not in SIGNATURE_PARAMS:
            params[name] = value
    # The client's own spelling of the host: it is what the request line carries,
    # so it is what must be signed.
    return f"{here.scheme}://{here.netloc}{target.path}", params


_DEFAULT_PORTS: Final = {"http": 80, "https": 443}


def _origin(url: SplitResult) -> tuple[str, str, int | None]:
    """Scheme, host and port as they compare (case and default ports aside)."""
    scheme = url.scheme.lower()
    try:
        port = url.port
    except ValueError:
        port = None
    return scheme, (url.hostname or "").lower(), port or _DEFAULT_PORTS.get(scheme)


def link_identity(url: str, params: Mapping[str, str]) -> Hashable:
    """What makes two links the same request (auth parameters aside)."""
    return (url, tuple(sorted(params.items())))


def _optional_int(value: Any) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def page_from_envelope(
    envelope: Mapping[str, Any], items_key: str, *, offset: int, limit: int
) -> Page[dict[str, Any]]:
    """Read a listing page out of a SUCCESS envelope.

    A missing list is an error (a walk must never end quietly because of a
    shape it did not expect); ``null`` is read as an empty page.
    """
    if items_key not in envelope:
        raise KeyError(items_key)
    items = envelope[items_key]
    if items is None:
        items = []
    elif not isinstance(items, list):
        raise TypeError(f"{items_key!r} is a {type(items).__name__}, not a list")
    paging = envelope.get("paging")
    if not isinstance(paging, Mapping):
        return Page(items, offset, limit, received=len(items))
    next_link = paging.get("next")
    previous = paging.get("previous")
    return Page(
        items,
        offset,
        limit,
        total_records=_optional_int(paging.get("totalRecords")),
        next=next_link if isinstance(next_link, str) and next_link else None,
        previous=previous if isinstance(previous, str) and previous else None,
        received=len(items),
        paged=True,
    )


class RawRecord(Mapping[str, Any]):
    """One record of a listing, exactly as Mettl sent it, read on demand.

    A read-only mapping of the record's JSON, parsed on first access (once).
    :attr:`json` holds the bytes Mettl sent, untouched, when the page was
    scanned (the raw path), so a bulk export writes every field with its wire
    name without parsing or re-serializing anything. :attr:`key` is the record's
    identity in its listing (a candidate's email, a schedule's access key).
    """

    __slots__ = ("_data", "_json", "key")

    def __init__(
        self, json: bytes | None = None, key: Hashable = None, *, data: dict[str, Any] | None = None
    ) -> None:
        if json is None and data is None:
            raise ValueError("a RawRecord needs its JSON or its data")
        self._json = json
        self._data = data
        self.key = key

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], key: Hashable = None) -> RawRecord:
        return cls(data=dict(data), key=key)

    @property
    def json(self) -> bytes:
        """The record's JSON: as Mettl sent it when scanned, else serialized once."""
        if self._json is None:
            self._json = orjson.dumps(self._data)
        return self._json

    def to_dict(self) -> dict[str, Any]:
        """The parsed record (parsed on first use, then kept).

        Raises :class:`~mettl_async.DecodeError` when the record cannot be read
        (a number out of range, say: the scan of a page does not parse numbers).
        """
        data = self._data
        if data is None:
            try:
                loaded = orjson.loads(self.json)
            except orjson.JSONDecodeError as exc:
                raise DecodeError(
                    f"a record Mettl sent cannot be read ({exc.msg})",
                    excerpt=self.json[:EXCERPT_BYTES].decode("utf-8", "replace"),
                ) from None
            data = loaded if isinstance(loaded, dict) else {}
            self._data = data
        return data

    def __getitem__(self, name: str) -> Any:
        return self.to_dict()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.to_dict())

    def __len__(self) -> int:
        return len(self.to_dict())

    def __repr__(self) -> str:
        more = "..." if len(self.json) > 60 else ""
        return f"RawRecord({self.json[:60]!r}{more})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, RawRecord):
            return self.to_dict() == other.to_dict()
        if isinstance(other, Mapping):
            return self.to_dict() == dict(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # compares like a dict: not hashable


_KEY_TYPES: Final = (str, int)


def record_of(item: Any, key_field: str | None) -> RawRecord:
    """A parsed item of a listing as a :class:`RawRecord`, keyed by ``key_field``."""
    if isinstance(item, RawRecord):
        return item
    if isinstance(item, dict):
        key = item.get(key_field) if key_field is not None else None
        return RawRecord(data=item, key=key if type(key) in _KEY_TYPES else None)
    return RawRecord(orjson.dumps(item))


@functools.cache
def _page_decoder(items_key: str) -> msgspec.json.Decoder[Any]:
    """Reads a listing page, keeping each record as its raw JSON text."""
    page = msgspec.defstruct(
        f"_Page_{items_key}",
        [
            ("status", Any, None),
            (items_key, list[msgspec.Raw] | None, msgspec.UNSET),
            ("paging", dict[str, Any] | None, None),
        ],
    )
    return msgspec.json.Decoder(page)


@functools.cache
def _keys_decoder(items_key: str, key_field: str) -> msgspec.json.Decoder[Any]:
    """Reads only each record's key field, skipping the rest of the page."""
    key_type: Any = msgspec.defstruct(f"_Key_{key_field}", [(key_field, Any, None)])
    # Records that are not objects decode as themselves (and have no key).
    item: Any = Union[key_type, str, int, float, bool, list[Any], None]  # noqa: UP007
    page = msgspec.defstruct(f"_Keys_{items_key}", [(items_key, list[item] | None, None)])
    return msgspec.json.Decoder(page)


def decode_listing(
    status: int,
    body: bytes,
    *,
    items_key: str,
    key_field: str | None,
    method: str,
    url: str,
    attempts: int = 1,
    retry_after: float | None = None,
) -> dict[str, Any]:
    """A listing page's envelope, its records as :class:`RawRecord` under ``items_key``.

    The page is scanned, not parsed: each record is kept as the JSON text Mettl
    sent, and only its key field is read (a second scan, cheaper than parsing).
    Anything but a well-formed SUCCESS page goes through :func:`decode_response`,
    which raises the typed error (or returns the envelope for
    :func:`page_from_envelope` to judge). A record that is not UTF-8, or nested
    deeper than the scan goes, is a :class:`~mettl_async.DecodeError`, so the
    records handed on are always UTF-8 JSON.
    """
    try:
        page = _page_decoder(items_key).decode(body)
    except (msgspec.DecodeError, RecursionError):
        page = None  # not JSON, or nested too deep: decode_response says which
    envelope_status = getattr(page, "status", None)
    items = getattr(page, items_key, msgspec.UNSET)
    if (
        page is None
        or status >= 400
        or not isinstance(envelope_status, str)
        or envelope_status.upper() != "SUCCESS"
        or items is msgspec.UNSET
    ):
        return decode_response(
            status, body, method=method, url=url, attempts=attempts, retry_after=retry_after
        )
    records: list[RawRecord] = []
    if items:

        def unreadable(what: str) -> DecodeError:
            return DecodeError(
                f"Mettl sent a page {what}",
                excerpt=redact_url(body[:EXCERPT_BYTES].decode("utf-8", "replace")),
                method=method,
                url=redact_url(url),
                path=urlsplit(url).path,
                status=status,
                attempts=attempts,
            )

        # The scan skips over strings without reading them: check that each record
        # is UTF-8 (record by record: a page-wide decode costs 4x as much, as one
        # wide character anywhere makes the whole page a wide string).
        texts = [bytes(raw) for raw in items]
        for number, text in enumerate(texts):
            if not text.isascii():
                try:
                    text.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise unreadable(
                        f"whose record {number} is not UTF-8 (byte {exc.start}: {exc.reason})"
                    ) from None
        if key_field is None:
            records = [RawRecord(text) for text in texts]
        else:
            try:
                holders = getattr(_keys_decoder(items_key, key_field).decode(body), items_key)
            except (msgspec.DecodeError, msgspec.ValidationError, RecursionError) as exc:
                raise unreadable(f"whose {key_field!r} fields cannot be read ({exc})") from None
            for text, holder in zip(texts, holders, strict=True):
                key = getattr(holder, key_field, None)
                records.append(RawRecord(text, key if type(key) in _KEY_TYPES else None))
    envelope: dict[str, Any] = {"status": envelope_status, items_key: records}
    if page.paging is not None:
        envelope["paging"] = page.paging
    return envelope


# --------------------------------------------------------------------------
# Typed pages: a page decoded in one pass into wire-named records
# --------------------------------------------------------------------------


class PageText:
    """The JSON text of one typed page, for the records that need theirs again.

    A typed page is decoded straight into :class:`WireRecord` structs; what
    Mettl sent is kept as text here. The first record to ask for its JSON
    scans the page into each record's slice (once, without parsing), and each
    record then parses its own slice only.
    """

    __slots__ = ("_body", "_items", "_items_key")

    def __init__(self, body: bytes, items_key: str) -> None:
        self._body = body
        self._items_key = items_key
        self._items: list[msgspec.Raw] | None = None

    def text(self, index: int) -> bytes:
        """Record ``index`` of the page: the JSON Mettl sent for it."""
        items = self._items
        if items is None:
            items = getattr(_page_decoder(self._items_key).decode(self._body), self._items_key)
            assert items is not None  # this page decoded with its list once already
            self._items = items
        return bytes(items[index])

    def record(self, index: int) -> dict[str, Any]:
        """Record ``index`` of the page, parsed (a new ``dict`` on each call)."""
        data = orjson.loads(self.text(index))
        assert isinstance(data, dict)  # it decoded as an object once already
        return data


class WireRecord(msgspec.Struct, kw_only=True, gc=False):
    """Base of the wire-named structs a typed page decodes into (see ``_convert``).

    Private to the library: listings turn them into the public models before
    anyone sees them. Besides the fields the subclass declares, each carries
    where it came from (its page and its index there, set by
    :func:`decode_typed_listing`) and, once read, the parsed mapping of its
    JSON (``data()``). ``gc=False``: decoded from JSON, they hold no cycles,
    and pages waiting in a walk's window then cost the garbage collector nothing.
    """

    #: the attribute holding the record's identity in its listing
    key_attribute: ClassVar[str | None] = None

    #: set after decoding, not read from the wire (a record sending these names is
    #: overwritten): its identity (see :class:`RawRecord`), page and index there
    key: Any = None
    page_: Any = None
    index_: Any = None
    data_: Any = None

    @property
    def json(self) -> bytes:
        """The record's JSON as Mettl sent it (as :attr:`RawRecord.json`: a record
        without a key is known by a digest of it)."""
        page: PageText = self.page_
        return page.text(self.index_)

    def data(self) -> dict[str, Any]:
        """The record's JSON as a mapping: parsed on first call, then kept."""
        data = self.data_
        if data is None:
            page: PageText = self.page_
            data = self.data_ = page.record(self.index_)
        return cast("dict[str, Any]", data)


@functools.cache
def _typed_page_decoder(items_key: str, record_type: type[WireRecord]) -> msgspec.json.Decoder[Any]:
    page = msgspec.defstruct(
        f"_TypedPage_{items_key}_{record_type.__name__}",
        [
            ("status", Any, None),
            (items_key, list[record_type] | None, msgspec.UNSET),  # type: ignore[valid-type]
            ("paging", dict[str, Any] | None, None),
        ],
    )
    return msgspec.json.Decoder(page)


def decode_typed_listing(
    status: int,
    body: bytes,
    *,
    record_type: type[WireRecord],
    items_key: str,
    key_field: str | None,
    method: str,
    url: str,
    attempts: int = 1,
    retry_after: float | None = None,
) -> dict[str, Any]:
    """A listing page's envelope, its records decoded into ``record_type`` in one pass.

    The fast way to typed records: no per-record parse, no dicts. Each record
    learns its page (:class:`PageText`) and index, so that its JSON can be
    read again when asked for. Any page that does not decode into
    ``record_type`` exactly (a missing or mistyped field anywhere, an error
    envelope, a page that is not JSON) goes through :func:`decode_listing`
    instead, so its records arrive as :class:`RawRecord` objects, to be decoded one
    by one, each failing (or not) on its own, as they always did.
    """
    page: Any = None
    if status < 400:
        try:
            page = _typed_page_decoder(items_key, record_type).decode(body)
        except (msgspec.DecodeError, RecursionError):  # ValidationError included
            page = None  # decode_listing reports what is wrong with it
    envelope_status = getattr(page, "status", None)
    items = getattr(page, items_key, msgspec.UNSET)
    if (
        page is None
        or not isinstance(envelope_status, str)
        or envelope_status.upper() != "SUCCESS"
        or items is msgspec.UNSET
    ):
        return decode_listing(
            status,
            body,
            items_key=items_key,
            key_field=key_field,
            method=method,
            url=url,
            attempts=attempts,
            retry_after=retry_after,
        )
    records: list[WireRecord] = items or []
    if records:
        text = PageText(body, items_key)
        name = record_type.key_attribute
        for index, record in enumerate(records):
            key = getattr(record, name) if name is not None else None
            record.key = key if type(key) in _KEY_TYPES else None
            record.page_ = text
            record.index_ = index
            record.data_ = None
    envelope: dict[str, Any] = {"status": envelope_status, items_key: records}
    if page.paging is not None:
        envelope["paging"] = page.paging
    return envelope
