"""docs/DESIGN.md is in the repository and every reference to it in the code names one of its
sections (code cited "DESIGN.md §5" of a document that was not there)."""
from __future__ import annotations

import re

from conftest import PACKAGE_DIR

REPO = PACKAGE_DIR.parents[2]
DESIGN = REPO / "docs" / "DESIGN.md"


def test_every_design_reference_names_a_section():
    headings = {line[3:].strip() for line in DESIGN.read_text().splitlines() if line.startswith("## ")}
    cited = []
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        text = path.read_text()
        assert not re.search(r"DESIGN\.md\s*§", text), f"{path}: a numbered section of a document not here"
        for section in re.findall(r'docs/DESIGN\.md, "([^"]+)"', text):
            cited.append(section)
            assert any(h.startswith(section) for h in headings), f"{path.name} cites missing section {section!r}"
    assert {"The engine", "The models"} <= set(cited)


def test_design_doc_length_and_topics():
    text = DESIGN.read_text()
    assert 150 <= len(text.splitlines()) <= 250
    for topic in ("one rule", "A frame's path", "Where to add", "Which tests cover what"):
        assert topic in text, topic
