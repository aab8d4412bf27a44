"""The one cattrs converter of mettl-async, and the fast paths of results and schedules.

One idea per module:

- ``converter``: the cattrs converter and its hooks; :func:`structure`,
  :func:`unstructure`, :func:`to_json`.
- ``fields``: what the fast path knows of a class (hot classes, lazy
  attributes, each attribute classified once from the rename table).
- ``mirrors``: the msgspec structs a typed page decodes into, the checks of
  the dict path, and msgspec's errors as problems at wire paths.
- ``builders``: the generated code (builders, lazy readers), compiled by
  ``mettl_async._codegen``.
- ``lazy``: the lazy properties and ``raw`` over the public classes' slots,
  installed by one call, :func:`~mettl_async._convert.lazy.install_lazy_attributes`.
- ``records``: record readers and page decoders (``*_from_wire``,
  ``*_from_record``, ``decode_*_page``), the routes a record takes.

Imports go one way, in that order (``records`` calls the installation).
"""

from __future__ import annotations

from .converter import converter, structure, to_json, unstructure
from .records import (
    candidate_result_from_wire,
    decode_instance_page,
    decode_result_page,
    decode_schedule_page,
    instance_from_record,
    instance_from_wire,
    result_from_record,
    schedule_from_record,
    schedule_from_wire,
)

__all__ = [
    "candidate_result_from_wire",
    "converter",
    "decode_instance_page",
    "decode_result_page",
    "decode_schedule_page",
    "instance_from_record",
    "instance_from_wire",
    "result_from_record",
    "schedule_from_record",
    "schedule_from_wire",
    "structure",
    "to_json",
    "unstructure",
]
