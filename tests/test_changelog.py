"""CHANGELOG.md is for users: `[Unreleased]` on top, released versions below it, short bullets."""

from __future__ import annotations

import datetime as dt
import re

import pytest

import mettl_async

from .conftest import HERE

CHANGELOG = HERE.parent / "CHANGELOG.md"
RELEASE = re.compile(r"## \[(\d+)\.(\d+)\.(\d+)\] - (\d{4}-\d{2}-\d{2})")
LONGEST_BULLET = 220


def _headings() -> list[str]:
    text = CHANGELOG.read_text(encoding="utf-8")
    return [line.rstrip() for line in text.splitlines() if line.startswith("## ")]


def _releases() -> list[tuple[tuple[int, int, int], dt.date]]:
    releases = []
    for heading in _headings()[1:]:
        match = RELEASE.fullmatch(heading)
        assert match, f"not a release heading `## [X.Y.Z] - YYYY-MM-DD`: {heading!r}"
        major, minor, patch, day = match.groups()
        releases.append(((int(major), int(minor), int(patch)), dt.date.fromisoformat(day)))
    return releases


def test_unreleased_comes_first_then_releases_newest_first() -> None:
    headings = _headings()
    assert headings, "CHANGELOG.md has no `## ` section"
    assert headings[0] == "## [Unreleased]"
    releases = _releases()
    assert releases, "no released version under [Unreleased]"
    versions = [version for version, _ in releases]
    assert versions == sorted(versions, reverse=True), versions
    assert len(set(versions)) == len(versions), versions
    days = [day for _, day in releases]
    assert days == sorted(days, reverse=True), days


def test_the_newest_release_is_the_package_version() -> None:
    version = mettl_async.__version__
    if "dev" in version:
        pytest.skip(f"{version} is not a release yet")
    newest, _ = _releases()[0]
    assert ".".join(map(str, newest)) == version


def test_every_bullet_is_one_short_line() -> None:
    too_long = []
    continued = []
    in_bullet = False
    for number, line in enumerate(CHANGELOG.read_text(encoding="utf-8").splitlines(), 1):
        if line.startswith("- "):
            in_bullet = True
            if len(line) > LONGEST_BULLET:
                too_long.append(f"line {number}: {len(line)} characters")
        elif in_bullet and line[:1].isspace() and line.strip():
            continued.append(f"line {number}")
        else:
            in_bullet = False
    assert too_long == [], f"bullets over {LONGEST_BULLET} characters: {too_long}"
    assert continued == [], f"bullets continued on another line: {continued}"
