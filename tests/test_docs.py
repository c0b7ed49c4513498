"""The user's README and the research in docs/ stay linked: every relative link in README.md and
docs/*.md points to a file that exists, and every #anchor to a heading of that file (GitHub's
anchors); the sections the code's messages and comments send people to exist; every
`mouseguard COMMAND` README names is a command; CI runs README's test command."""

import re
from pathlib import Path

import pytest

from agent import cli

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6} +(.+?) *#*$")


def prose(text):
    """The text outside fenced code blocks and inline code, where links are links."""
    lines, fence = [], False
    for line in text.split("\n"):
        if line.lstrip().startswith("```"):
            fence = not fence
            lines.append("")
        else:
            lines.append("" if fence else re.sub(r"`[^`\n]*`", "", line))
    return "\n".join(lines)


def code_lines(text):
    """The lines inside fenced code blocks."""
    lines, fence = [], False
    for line in text.split("\n"):
        if line.lstrip().startswith("```"):
            fence = not fence
        elif fence:
            lines.append(line)
    return lines


def slug(heading):
    """GitHub's anchor for a heading: link text kept, lower case, punctuation dropped, spaces to -."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def headings(path):
    names, fence = [], False
    for line in path.read_text().split("\n"):
        if line.lstrip().startswith("```"):
            fence = not fence
        elif not fence and (m := HEADING.match(line)):
            names.append(m.group(1))
    return names


def anchors(path):
    seen, out = {}, set()
    for name in headings(path):
        base = slug(name)
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


def broken_links(page):
    """Each relative link of `page` that leads nowhere, with why."""
    bad = []
    for target in LINK.findall(prose(page.read_text())):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto: ...: not ours to check
            continue
        file_part, _, anchor = target.partition("#")
        dest = (page.parent / file_part).resolve() if file_part else page
        if not dest.exists():
            bad.append(f"{target}: no file {dest}")
        elif anchor and (dest.suffix != ".md" or anchor not in anchors(dest)):
            bad.append(f"{target}: no heading #{anchor} in {dest.name}")
    return bad


def test_the_anchors_are_githubs():
    assert slug("Someone at your desk (`desk`)") == "someone-at-your-desk-desk"
    assert slug("Privacy: where files live") == "privacy-where-files-live"
    assert slug("The seed paper's own protocol") == "the-seed-papers-own-protocol"
    assert slug("What changed in the default, and why") == "what-changed-in-the-default-and-why"


def test_a_broken_link_is_found(tmp_path):
    (tmp_path / "other.md").write_text("# Other\n\n## A part\n\n```\n# not a heading\n```\n")
    page = tmp_path / "page.md"
    page.write_text("# Page\n\n[ok](other.md#a-part) [ok](#page) [web](https://example.com/x)\n"
                    "`[code](nowhere.md)`\n\n```\n[code](nowhere.md)\n```\n"
                    "[gone](missing.md) [no part](other.md#b-part) [no heading](other.md#not-a-heading)\n"
                    "[no anchor\nhere](#nothing)\n")
    assert broken_links(page) == [
        f"missing.md: no file {tmp_path / 'missing.md'}",
        "other.md#b-part: no heading #b-part in other.md",
        "other.md#not-a-heading: no heading #not-a-heading in other.md",
        "#nothing: no heading #nothing in page.md",
    ]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page):
    assert broken_links(page) == []


def test_readme_links_every_doc():
    readme = (ROOT / "README.md").read_text()
    for doc in PAGES[1:]:
        assert f"](docs/{doc.name})" in readme, f"README does not link docs/{doc.name}"


def test_the_sections_the_code_points_to_exist():
    """Messages and comments say "README, 'Install'" or "README, Accuracy, "Someone at your desk""
    (Accuracy now being docs/accuracy.md): each named section is a heading of README or docs/."""
    names = {name for page in PAGES for name in headings(page)}
    quoted = re.compile(r"README[,:]? (?:Accuracy, )?['\"]([^'\"\\]+)")
    pointed = set()
    for source in [*ROOT.glob("agent/**/*.py"), *ROOT.glob("training/**/*.py"), *ROOT.glob("benchmarks/**/*.py")]:
        pointed |= {m.strip() for m in quoted.findall(source.read_text())}
    assert "Someone at your desk" in pointed  # the pattern still finds what it is for
    missing = {p for p in pointed if not any(name.startswith(p) for name in names)}
    assert not missing, f"the code points to sections that no longer exist: {sorted(missing)}"
    assert "Someone at your desk (`desk`)" in headings(ROOT / "docs" / "accuracy.md")


def test_every_command_readme_names_exists():
    parser = cli.build_parser()
    commands = next(a for a in parser._actions if a.choices and "run" in a.choices).choices
    train = next(a for a in commands["train"]._actions if a.choices and "fit" in a.choices).choices
    text = (ROOT / "README.md").read_text()
    spans = re.findall(r"`([^`\n]+)`", text)  # inline code, and each line of the code blocks
    lines = [line.strip().removeprefix("installer/dev-env ") for line in code_lines(text)]
    named = [m.group(1, 2) for code in spans + lines
             if (m := re.match(r"mouseguard ([a-z][a-z-]*)(?: ([a-z][a-z-]*))?", code))]
    assert {"run", "status", "pause", "replay", "score", "demo", "enroll"} <= {c for c, _ in named}
    unknown = {f"{c} {sub}" if c == "train" else c for c, sub in named
               if c not in commands or (c == "train" and sub and sub not in train)}
    assert not unknown, f"README names commands mouseguard does not have: {sorted(unknown)}"


def test_ci_runs_the_test_command_readme_gives():
    readme = (ROOT / "README.md").read_text().split("\n")
    command = readme[4].split("#")[0].strip()
    assert command == "installer/dev-env python -m pytest -q"
    assert (ROOT / ".ci" / "run").read_text().rstrip("\n").split("\n")[-1] == command
