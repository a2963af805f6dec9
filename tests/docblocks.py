"""The code blocks of README.md and docs/, as the tests that run them see them.

Every block says its language (a fenced block in Markdown, ``.. code-block::
<language>`` in reStructuredText; a bare ``::`` literal block is refused by
:mod:`tests.test_doc_examples`). A Python block is a *program* unless the
sentence just before it marks it as a fragment ("A fragment:", "An excerpt,
not a complete program:"); programs are executed by the tests as written,
only host and port substituted (:func:`substitute`), and fragments get an
import check.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"

#: Words in the lead sentence that mark a block as not a complete program.
FRAGMENT_MARKERS = ("fragment", "excerpt")


@dataclasses.dataclass(frozen=True)
class Block:
    """One code block: where it is, its language, its text, and the
    sentence (or paragraph end) just before it."""

    path: Path
    line: int
    language: str
    text: str
    lead: str

    @property
    def where(self) -> str:
        """``docs/quickstart.rst:12``, for messages."""
        return f"{self.path.relative_to(ROOT)}:{self.line}"

    @property
    def is_fragment(self) -> bool:
        """Whether the lead sentence marks it as a fragment or an excerpt."""
        lead = self.lead.lower()
        return any(marker in lead for marker in FRAGMENT_MARKERS)

    @property
    def is_program(self) -> bool:
        """A Python block not marked as a fragment."""
        return self.language == "python" and not self.is_fragment

    @property
    def saved_as(self) -> str | None:
        """The file name the lead tells the reader to save it as, if any
        ("Save this as ``app.py``")."""
        found = re.search(
            r"[Ss]ave (?:this|it) as [`]{1,2}([\w./-]+)[`]{1,2}", self.lead
        )
        return found.group(1) if found else None


def _last_sentence(paragraph: str) -> str:
    text = " ".join(paragraph.split())
    parts = re.split(r"(?<=[.!?])\s+(?=[A-Z`*])", text)
    return parts[-1] if parts else ""


def markdown_blocks(path: Path) -> list[Block]:
    """The fenced blocks of a Markdown file."""
    lines = path.read_text().splitlines()
    blocks: list[Block] = []
    current: list[str] = []
    last = ""
    i = 0
    while i < len(lines):
        fence = re.match(r"^(```+)\s*([\w+-]*)\s*$", lines[i])
        if fence:
            end = i + 1
            while not lines[end].startswith(fence.group(1)):
                end += 1
            text = "\n".join(lines[i + 1 : end]) + "\n"
            lead = _last_sentence(" ".join(current) if current else last)
            blocks.append(Block(path, i + 1, fence.group(2) or "", text, lead))
            current, last = [], ""
            i = end + 1
            continue
        line = lines[i].strip()
        if line.startswith("#"):
            current, last = [], ""
        elif line:
            current.append(line)
        elif current:
            current, last = [], " ".join(current)
        i += 1
    return blocks


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _dedent_body(lines: list[str], start: int) -> tuple[str, int]:
    """The body indented deeper than the directive on the line before
    ``start`` (options skipped), and the index after it."""
    outer = _indent(lines[start - 1])
    i = start
    while i < len(lines) and re.match(r"^\s+:\w[\w-]*:", lines[i]):
        i += 1
    body: list[str] = []
    while i < len(lines) and (not lines[i].strip() or _indent(lines[i]) > outer):
        body.append(lines[i])
        i += 1
    while body and not body[-1].strip():
        body.pop()
    while body and not body[0].strip():
        body.pop(0)
    indent = min((len(x) - len(x.lstrip()) for x in body if x.strip()), default=0)
    return "\n".join(x[indent:] for x in body) + "\n", i


def rst_blocks(path: Path) -> list[Block]:
    """The code blocks of a reStructuredText file: ``code-block`` and
    ``code`` directives, and bare ``::`` literal blocks (language ``""``)."""
    lines = path.read_text().splitlines()
    blocks: list[Block] = []
    paragraph: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        directive = re.match(r"^\s*\.\. (?:code-block|code|sourcecode)::\s*(\S*)", line)
        literal = (
            not directive
            and line.rstrip().endswith("::")
            and not line.lstrip().startswith("..")
        )
        if directive or literal:
            lead_text = " ".join(paragraph + ([line] if literal else []))
            lead = _last_sentence(lead_text)
            language = directive.group(1) if directive else ""
            start = i + 1
            text, i = _dedent_body(lines, i + 1)
            blocks.append(Block(path, start, language, text, lead))
            paragraph = []
            continue
        if re.fullmatch(r"([=~^\-*#])\1{2,}", line.strip()):
            paragraph = []  # a heading's underline: the heading is no lead
        elif line.strip():
            paragraph.append(line.strip())
        elif paragraph:
            paragraph = [" ".join(paragraph)]
        i += 1
    return blocks


def all_blocks() -> list[Block]:
    """Every code block of README.md and of docs/*.rst."""
    blocks = markdown_blocks(README)
    for path in sorted(DOCS.glob("*.rst")):
        blocks.extend(rst_blocks(path))
    return blocks


def readme_block(language: str, containing: str) -> Block:
    """The README's one block of ``language`` that contains ``containing``."""
    found = [
        b
        for b in markdown_blocks(README)
        if b.language == language and containing in b.text
    ]
    if len(found) != 1:
        raise LookupError(
            f"README.md has {len(found)} {language} blocks containing {containing!r}"
        )
    return found[0]


def substitute(text: str, **ports: int) -> str:
    """``text`` with the documented ports replaced: ``redis=`` for 6379,
    ``http=`` for 8000. Nothing else of a documented example changes."""
    if "redis" in ports:
        text = text.replace("6379", str(ports["redis"]))
    if "http" in ports:
        text = text.replace("8000", str(ports["http"]))
    return text
