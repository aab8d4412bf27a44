"""Checks a request model against the rules of Mettl's articles, before any I/O.

Each ``*_problems`` function returns every problem it finds (never stopping at
the first), each a :class:`~mettl_async.ValidationProblem` whose path uses wire
names from the request parameter down, as Mettl would name it:
``sc.scheduleWindow.timeZone``, ``assessments.sections[0].skills[1].correctGrade``.
The models' ``validate()`` methods raise them together as one
:class:`~mettl_async.ValidationError`. Pure: no I/O, no clock.

One module per group of articles: ``assessments`` (5, 8, 9) and ``schedules``
(11, 13, 14), on what ``base`` shares (wire paths, value checks). Each registers
its models' checks when imported, as importing this package does. The rules of
the uploads (articles 2, 3) stand with their multipart builders in
``mettl_async._uploads``, those of a registration (article 15) in
``mettl_async._registration``.
"""

from __future__ import annotations

from mettl_async._models.checks import raise_if
from mettl_async._numbers import is_finite_number, is_whole_number

from .assessments import assessment_problems, assessment_settings_problems, pbt_id_problems
from .schedules import schedule_filter_problems, schedule_settings_problems

__all__ = [
    "assessment_problems",
    "assessment_settings_problems",
    "is_finite_number",
    "is_whole_number",
    "pbt_id_problems",
    "raise_if",
    "schedule_filter_problems",
    "schedule_settings_problems",
]
