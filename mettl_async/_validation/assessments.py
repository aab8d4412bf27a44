"""The rules of articles 5, 8 and 9: the PBTs added, an assessment, its settings.

Article 8 nests sections in an assessment and skills in a section: a
problem's path counts them (``assessments.sections[0].skills[1]``). The
checks of :class:`Assessment` and :class:`AssessmentSettings` are registered
at the end.
"""

from __future__ import annotations

from collections.abc import Sequence

from mettl_async._enums import QuestionType, SkillLevel
from mettl_async._errors import ValidationProblem
from mettl_async._models import Assessment, AssessmentSettings, Section, Skill, wire_names
from mettl_async._models.checks import register_checks
from mettl_async._numbers import is_finite_number, is_whole_number

from .base import (
    Problems,
    WirePath,
    check_bool,
    check_enum,
    check_name,
    check_positive_int,
    check_type,
    check_url,
    items_of,
    root_path,
)

__all__ = ["assessment_problems", "assessment_settings_problems", "pbt_id_problems"]


# --------------------------------------------------------------------------
# Article 5: pbts
# --------------------------------------------------------------------------


def pbt_id_problems(ids: Sequence[object]) -> list[ValidationProblem]:
    """Article 5's ``pbts``: a non-empty list of PBT ids (positive integers)."""
    problems = Problems()
    if not ids:
        problems.add("pbts", "must not be empty: the ids of the PBTs to add")
    for index, value in enumerate(ids):
        if not is_whole_number(value) or value <= 0:
            problems.add(f"pbts[{index}]", f"must be a PBT id (an integer > 0), got {value!r}")
    return problems.found


# --------------------------------------------------------------------------
# Article 8: assessments
# --------------------------------------------------------------------------


def assessment_problems(assessment: Assessment) -> list[ValidationProblem]:
    """Every rule of article 8's ``assessments`` table that ``assessment`` breaks."""
    problems = Problems()
    root = root_path(Assessment)
    check_name(problems, root.field("name"), assessment.name, "the assessment's name")
    check_positive_int(problems, root.field("duration"), assessment.duration)
    check_bool(problems, root.field("allow_copy_paste"), assessment.allow_copy_paste)
    check_bool(
        problems,
        root.field("show_report_to_candidate_on_exit"),
        assessment.show_report_to_candidate_on_exit,
    )
    check_bool(problems, root.field("on_screen_calculator"), assessment.on_screen_calculator)
    sections_path = root.field("sections", Section)
    sections = items_of(
        problems, sections_path, assessment.sections, "at least one section", required=True
    )
    for index, section in enumerate(sections):
        path = sections_path.item(index)
        if check_type(section, Section, problems, path):
            _section_problems(problems, path, section, assessment.duration is None)
    return problems.found


def _section_problems(
    problems: Problems, path: WirePath, section: Section, needs_duration: bool
) -> None:
    check_name(problems, path.field("name"), section.name, "the section's name")
    if section.duration is None and needs_duration:
        problems.add(
            path.field("duration"),
            "required: the assessment has no duration, so every section needs one",
        )
    check_positive_int(problems, path.field("duration"), section.duration)
    check_bool(problems, path.field("all_questions_mandatory"), section.all_questions_mandatory)
    check_bool(problems, path.field("randomize_questions"), section.randomize_questions)
    skills_path = path.field("skills", Skill)
    skills = items_of(problems, skills_path, section.skills, "at least one skill", required=True)
    for index, skill in enumerate(skills):
        skill_path = skills_path.item(index)
        if check_type(skill, Skill, problems, skill_path):
            _skill_problems(problems, skill_path, skill)


def _skill_problems(problems: Problems, path: WirePath, skill: Skill) -> None:
    check_name(problems, path.field("name"), skill.name, "a skill of the question bank")
    if skill.level is None:
        problems.add(path.field("level"), "required: 'easy', 'medium' or 'difficult'")
    check_enum(problems, path.field("level"), skill.level, SkillLevel)
    if skill.question_count is None:
        problems.add(path.field("question_count"), "required: the number of questions")
    check_positive_int(problems, path.field("question_count"), skill.question_count)
    check_bool(problems, path.field("question_pooling"), skill.question_pooling)
    check_enum(problems, path.field("question_type"), skill.question_type, QuestionType)
    grade_path = path.field("correct_grade")
    if skill.correct_grade is None:
        problems.add(grade_path, "required: the marks for a correct answer")
    elif not is_finite_number(skill.correct_grade) or skill.correct_grade <= 0:
        problems.add(grade_path, f"must be a number greater than 0, got {skill.correct_grade!r}")
    penalty = skill.incorrect_grade
    if penalty is not None and (not is_finite_number(penalty) or penalty > 0):
        problems.add(
            path.field("incorrect_grade"), f"must be a number of 0 or less, got {penalty!r}"
        )


# --------------------------------------------------------------------------
# Article 9: as
# --------------------------------------------------------------------------


def assessment_settings_problems(settings: AssessmentSettings) -> list[ValidationProblem]:
    """Every rule of article 9's ``as`` table that ``settings`` breaks."""
    problems = Problems()
    root = root_path(AssessmentSettings)
    if all(getattr(settings, attribute) is None for attribute in wire_names(AssessmentSettings)):
        problems.add(root, "nothing to change: set at least one property")
    instructions: object = settings.instructions
    if instructions is not None and not isinstance(instructions, str):
        problems.add(root.field("instructions"), f"must be a string (HTML), got {instructions!r}")
    check_bool(problems, root.field("allow_copy_paste"), settings.allow_copy_paste)
    check_url(problems, root.field("exit_redirection_url"), settings.exit_redirection_url)
    check_bool(problems, root.field("show_report_to_candidate"), settings.show_report_to_candidate)
    check_bool(problems, root.field("on_screen_calculator"), settings.on_screen_calculator)
    return problems.found


register_checks(Assessment, assessment_problems, subject="assessment")
register_checks(AssessmentSettings, assessment_settings_problems, subject="assessment settings")
