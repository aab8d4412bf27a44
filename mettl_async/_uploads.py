"""Articles 2 and 3, the uploads: the logo, the white label and its support numbers.

Their rules (an image's format, size, name and media type; ``wl``'s colours;
``sn``'s phone numbers) and the parts they are sent as: the signed parameters
and the multipart files (never signed), all checked before anything is sent.
:class:`WhiteLabel` answers ``problems()`` and ``validate()`` with
:func:`white_label_problems` (registered below). No I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Final

import orjson

from ._convert import to_json
from ._endpoints import minified
from ._errors import ValidationProblem
from ._models import WhiteLabel, wire_names
from ._models.checks import raise_if, register_checks
from ._protocol import FilePart
from ._validation.base import Problems, root_path

__all__ = [
    "FAVICON_MAX_BYTES",
    "IMAGE_CONTENT_TYPES",
    "LOGO_MAX_BYTES",
    "MAX_SUPPORT_NUMBERS",
    "image_part",
    "image_problems",
    "logo_part",
    "sniff_image",
    "support_number_problems",
    "white_label_parts",
    "white_label_problems",
]


# --------------------------------------------------------------------------
# Articles 2 and 3: uploaded images (logo, favicon, cover)
# --------------------------------------------------------------------------

#: Article 2: a logo is at most 100 KB (read as 100 * 1024 bytes).
LOGO_MAX_BYTES: Final = 100 * 1024
#: Article 3: a favicon is at most 10 KB (read as 10 * 1024 bytes).
FAVICON_MAX_BYTES: Final = 10 * 1024
#: The media type each image format is sent with.
IMAGE_CONTENT_TYPES: Final = {
    "jpeg": "image/jpeg",
    "png": "image/png",
    "gif": "image/gif",
    "ico": "image/x-icon",
}
_CONTENT_TYPE_KINDS: Final = {
    "image/jpeg": "jpeg",
    "image/jpg": "jpeg",
    "image/pjpeg": "jpeg",
    "image/png": "png",
    "image/gif": "gif",
    "image/x-icon": "ico",
    "image/vnd.microsoft.icon": "ico",
}
_EXTENSION_KINDS: Final = {
    "jpeg": "jpeg",
    "jpg": "jpeg",
    "png": "png",
    "gif": "gif",
    "ico": "ico",
}


def sniff_image(content: bytes) -> str | None:
    """The format of an image from its first bytes: jpeg, png, gif, ico, or ``None``."""
    if content.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if content.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if content.startswith((b"GIF87a", b"GIF89a")):
        return "gif"
    if content.startswith(b"\x00\x00\x01\x00"):
        return "ico"
    return None


def image_problems(
    content: object,
    *,
    field: str,
    kinds: Sequence[str],
    max_bytes: int | None,
    filename: str | None = None,
    content_type: str | None = None,
) -> list[ValidationProblem]:
    """Whether an upload is an image Mettl takes: its format, size, name and media type.

    The format is read from the bytes themselves; a ``filename`` extension or
    a ``content_type``, when given, must name the same format.
    """
    problems = Problems()
    allowed = " or ".join(kind.upper() for kind in kinds)
    if not isinstance(content, bytes | bytearray | memoryview):
        problems.add(field, f"must be the image's bytes ({allowed}), got {type(content).__name__}")
        return problems.found
    data = bytes(content)
    if not data:
        problems.add(field, "is empty")
        return problems.found
    if max_bytes is not None and len(data) > max_bytes:
        problems.add(
            field,
            f"is {len(data):,} bytes; Mettl takes at most {max_bytes // 1024} KB "
            f"({max_bytes:,} bytes)",
        )
    kind = sniff_image(data)
    if kind is None or kind not in kinds:
        found = f"a {kind.upper()} image" if kind else "not an image Mettl reads"
        problems.add(field, f"must be a {allowed} image; these bytes are {found}")
        return problems.found
    if filename is not None:
        extension = filename.rpartition(".")[2].lower() if "." in filename else ""
        if not filename.strip() or "/" in filename or "\\" in filename:
            problems.add(f"{field}.filename", f"must be a plain file name, got {filename!r}")
        elif _EXTENSION_KINDS.get(extension) != kind:
            problems.add(
                f"{field}.filename",
                f"must end in .{'jpg' if kind == 'jpeg' else kind} for a {kind.upper()} "
                f"image, got {filename!r}",
            )
    if content_type is not None:
        named = _CONTENT_TYPE_KINDS.get(content_type.split(";")[0].strip().lower())
        if named != kind:
            problems.add(
                f"{field}.content_type",
                f"must be {IMAGE_CONTENT_TYPES[kind]!r} for a {kind.upper()} image, "
                f"got {content_type!r}",
            )
    return problems.found


def image_part(
    field: str,
    content: bytes,
    filename: str | None,
    content_type: str | None,
    *,
    stem: str | None = None,
) -> FilePart:
    kind = sniff_image(content) or "png"
    extension = "jpg" if kind == "jpeg" else kind
    return FilePart(
        field,
        filename or f"{stem or field}.{extension}",
        content,
        content_type or IMAGE_CONTENT_TYPES[kind],
    )


# --------------------------------------------------------------------------
# Article 2: logo
# --------------------------------------------------------------------------


def logo_part(image: bytes, *, filename: str | None, content_type: str | None) -> FilePart:
    """Article 2's ``logo`` file, checked first: a JPEG, PNG or GIF of at most 100 KB."""
    problems = image_problems(
        image,
        field="logo",
        kinds=("jpeg", "png", "gif"),
        max_bytes=LOGO_MAX_BYTES,
        filename=filename,
        content_type=content_type,
    )
    raise_if(problems, subject="logo")
    return image_part("logo", bytes(image), filename, content_type)


# --------------------------------------------------------------------------
# Article 3: wl, sn, fav and cov
# --------------------------------------------------------------------------

#: Article 3: at most two support phone numbers.
MAX_SUPPORT_NUMBERS: Final = 2
_HEX_COLOUR_RE: Final = re.compile(r"[0-9A-Fa-f]{6}|[0-9A-Fa-f]{3}")
_PHONE_RE: Final = re.compile(r"\+?[0-9][0-9 ()\-.]*[0-9]")


def white_label_problems(white_label: WhiteLabel) -> list[ValidationProblem]:
    """Every rule of article 3's ``wl`` table that ``white_label`` breaks."""
    problems = Problems()
    root = root_path(WhiteLabel)
    for attribute in wire_names(WhiteLabel):
        value = getattr(white_label, attribute)
        if value is None:
            continue
        path = root.field(attribute)
        if isinstance(value, str) and value.startswith("#"):
            problems.add(
                path, f"must be a hex colour without '#' (like {value[1:]!r}), got {value!r}"
            )
        elif not isinstance(value, str) or not _HEX_COLOUR_RE.fullmatch(value):
            problems.add(path, f"must be a hex colour without '#' (like '1A2B3C'), got {value!r}")
    return problems.found


def support_number_problems(numbers: object) -> list[ValidationProblem]:
    """Article 3's ``sn``: a list of at most two phone numbers."""
    problems = Problems()
    if isinstance(numbers, str) or not isinstance(numbers, Sequence):
        problems.add("sn", f"must be a list of phone numbers, got {numbers!r}")
        return problems.found
    if len(numbers) > MAX_SUPPORT_NUMBERS:
        problems.add(
            "sn", f"takes at most {MAX_SUPPORT_NUMBERS} support numbers, got {len(numbers)}"
        )
    for index, number in enumerate(numbers):
        if not isinstance(number, str) or not _PHONE_RE.fullmatch(number.strip()):
            problems.add(
                f"sn[{index}]", f"must be a phone number like '+1-650-924-9221', got {number!r}"
            )
    return problems.found


def white_label_parts(
    white_label: WhiteLabel | Mapping[str, Any],
    *,
    support_numbers: Sequence[str] | None,
    favicon: bytes | None,
    cover: bytes | None,
) -> tuple[dict[str, str], tuple[FilePart, ...]]:
    """Article 3's parameters (``wl``, ``sn``) and files (``fav``, ``cov``), all checked first."""
    problems: list[ValidationProblem] = []
    given: object = white_label
    if isinstance(given, WhiteLabel):
        problems += given.problems()
    elif not isinstance(given, Mapping):
        problems.append(
            ValidationProblem(
                "wl", f"must be a WhiteLabel or a mapping, got {type(given).__name__}"
            )
        )
    if support_numbers is not None:
        problems += support_number_problems(support_numbers)
    if favicon is not None:
        problems += image_problems(
            favicon, field="fav", kinds=("png", "ico"), max_bytes=FAVICON_MAX_BYTES
        )
    if cover is not None:
        problems += image_problems(cover, field="cov", kinds=("jpeg", "png", "gif"), max_bytes=None)
    raise_if(problems, subject="white label")
    wl = to_json(white_label) if isinstance(white_label, WhiteLabel) else minified(white_label)
    params = {"wl": wl}
    if support_numbers is not None:
        params["sn"] = orjson.dumps([number.strip() for number in support_numbers]).decode()
    files: list[FilePart] = []
    if favicon is not None:
        files.append(image_part("fav", bytes(favicon), None, None, stem="favicon"))
    if cover is not None:
        files.append(image_part("cov", bytes(cover), None, None, stem="cover"))
    return params, tuple(files)


register_checks(WhiteLabel, white_label_problems, subject="white label")
