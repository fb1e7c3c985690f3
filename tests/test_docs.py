"""The README and docs/ cite only files that exist, link only to pages that exist, and speak of
what is, not of how the project got there."""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md"] + sorted((ROOT / "docs").glob("*.md"))
TOPICS = ["usage", "network", "quality", "experiments", "performance", "gpu", "architecture", "method"]
# words that mean something only to the people who wrote the project
WORKPLACE = re.compile(r"\b(issues?|sessions?|helpers?|previous(ly)? defaults?|new defaults?|loaded machine)\b", re.I)


def _name(p):
    return str(p.relative_to(ROOT))


def test_every_topic_page_exists_and_the_readme_links_it():
    readme = (ROOT / "README.md").read_text()
    for topic in TOPICS:
        assert (ROOT / "docs" / f"{topic}.md").is_file(), topic
        assert f"(docs/{topic}.md)" in readme, f"README does not link docs/{topic}.md"


def test_the_readme_is_a_guide_not_a_notebook():
    assert len((ROOT / "README.md").read_text().splitlines()) <= 220


@pytest.mark.parametrize("page", PAGES, ids=_name)
def test_links_and_cited_files_exist(page):
    text = page.read_text()
    missing = []
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):   # markdown links and images
        if "://" in target:
            continue
        if not (page.parent / target).exists():
            missing.append(target)
    for cited in re.findall(r"`((?:docs|tasks|engine|kernels|bench|tests)/[\w./-]+?\.\w+)", text):
        if "*" not in cited and not (ROOT / cited).exists():
            missing.append(cited)
    assert missing == []


@pytest.mark.parametrize("page", PAGES, ids=_name)
def test_no_workplace_words(page):
    found = [m.group(0) for m in WORKPLACE.finditer(page.read_text())]
    assert found == []


LISTING_PACKAGES = ["engine", "engine/io", "engine/optim", "engine/ops", "engine/io/weights", "tasks/cli",
                    "tasks/pipeline", "tasks/figures", "kernels"]


@pytest.mark.parametrize("package", LISTING_PACKAGES)
def test_each_package_init_names_every_module(package):
    """docs/architecture.md: these packages' __init__.py list their modules, one line each."""
    init = (ROOT / package / "__init__.py").read_text()
    unnamed = [p.name for p in sorted((ROOT / package).iterdir())
               if p.suffix == ".py" and p.name != "__init__.py" and not re.search(rf"\b{p.stem}\b", init)]
    assert not unnamed, f"{package}/__init__.py does not name {unnamed}"
    assert f"`{package}/__init__.py`" in (ROOT / "docs" / "architecture.md").read_text()
