"""Every relative link in README.md and docs/ resolves: the file exists and so does the heading."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from deploy_support import configuration_rows, readme_rows

from config import Settings, setting_names
from utils.env_values import declared

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _without_code(text: str) -> str:
    return re.sub(r"```.*?```", "", text, flags=re.S)


def anchors(path: Path) -> set[str]:
    """GitHub's heading ids: lower case, punctuation dropped, spaces to hyphens, repeats numbered."""
    seen: dict[str, int] = {}
    out = set()
    for heading in re.findall(r"^#{1,6} (.+)$", _without_code(path.read_text(encoding="utf-8")), re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    return out


def links(path: Path) -> list[str]:
    return [t for t in LINK.findall(_without_code(path.read_text(encoding="utf-8")))
            if not t.startswith(("http://", "https://", "mailto:"))]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_relative_links_resolve(page):
    broken = []
    for target in links(page):
        file_part, _, anchor = target.partition("#")
        dest = (page.parent / file_part).resolve() if file_part else page
        if not dest.exists():
            broken.append(target)
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(target)
    assert broken == []


def test_readme_starts_with_the_two_commands_and_stays_short():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    first_block = text.split("```", 2)[1]
    assert "make demo" in first_block and "make test" in first_block
    assert len(text.splitlines()) < 400
    assert "## Contents" in text and "## Quickstart with Docker Compose" in text


def test_readme_and_docs_name_only_variables_that_exist():
    read = set(setting_names())
    named = set(readme_rows())
    assert named and named - read == set()
    assert read - set(configuration_rows()) == set()  # every setting has its row


def test_readme_defaults_are_the_declared_ones():
    declarations = {var.env: var for _, var in declared(Settings)}
    wrong = {name: (default, declarations[name].default_text)
             for name, (default, *_rest) in readme_rows().items() if default != declarations[name].default_text}
    assert wrong == {}
