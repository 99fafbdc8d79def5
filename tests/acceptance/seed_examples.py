"""Extract the Python usage examples from the seed README documents.

The product spec is a handful of README documents (``<repo>/../shared/seeds/*.txt``).
Every Python usage example in them is a contract: it must run, as written,
against our ``x_transformers`` package.  This module finds those examples and
turns them into runnable torch code.  It is pure Python (it never imports
torch or the library) so that it can be unit-tested quickly.

Three source formats exist:

* markdown with fenced code blocks: only ```python / ```py fences are taken,
  every other language (bash, bibtex, ...) is ignored;
* scraped web pages where code is indented normally but has no fences and is
  mixed with prose, navigation text and blank lines;
* scraped text where code has neither fences nor indentation at all (Python
  does not need indentation inside brackets, so the flat code is still valid
  once it is cut out correctly).

For the two unfenced formats a block *starts* at an ``import`` / ``from ...
import`` line or at an assignment from a call (``gpt3 = TransformerWrapper(``)
and *extends* while every line looks like code: a line inside an open bracket
is a continuation; a line at bracket depth 0 must be blank, a comment, an
import, an assignment, a call / subscript / attribute expression, or a
keyword statement, and must not contain two plain words separated by a space
outside brackets (prose).  Each time the block is back at depth 0 it is parsed
with :mod:`ast`; the block is cut at the last point where it parsed, so a
prose line that happens to look like code can never end up in an example
(``Decoder-only (GPT-like)`` and ``Features`` both parse as Python
expressions, but neither matches the statement shapes above).

Translation: the PaddlePaddle port's examples are translated to torch
(``import paddle`` -> ``import torch``, ``pd_x_transformers`` ->
``x_transformers``, ``paddle.to_tensor`` -> ``torch.tensor``, ``.astype("bool")``
-> ``.bool()``, ``paddle.X`` -> ``torch.X`` ...), see :data:`PADDLE_REWRITES`.

Fragments: examples are executed in a namespace that already holds ``torch``
and every public name of ``x_transformers``.  A block that *loads* a name that
it does not bind itself, and that an earlier block of the same seed binds by
assignment (not by import: imported names come from the namespace anyway), is
a fragment; the nearest earlier block binding each such name is prepended
(transitively, in document order).  Names that no earlier block assigns are
assumed to come from the namespace.

De-duplication: examples whose translated code is identical once all
whitespace is removed are kept once (the first, in seed-file order); the id of
the kept example records the other places, e.g.
``000-02-decoder-only-gpt-like+001-02+004-02``.

Exclusions: blocks that are not usage examples of the library are listed in
:data:`EXCLUDED`, keyed by :func:`fingerprint`, with the reason.
"""

from __future__ import annotations

import ast
import builtins
import hashlib
import keyword
import os
import re
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "EXCLUDED",
    "PADDLE_REWRITES",
    "Block",
    "Example",
    "assigned_names",
    "extract_fenced",
    "extract_unfenced",
    "extract_seed",
    "fingerprint",
    "free_names",
    "is_block_start",
    "is_code_statement",
    "is_fenced",
    "is_gpt3",
    "load_examples",
    "normalize",
    "repo_root",
    "seeds_dir",
    "slugify",
    "translate_paddle",
]


# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class Block:
    """A raw code block found in one seed file (before fragment resolution)."""

    seed: str  # seed file name
    number: int  # 1-based position among the Python blocks of that seed
    lineno: int  # 1-based line of the first code line in the seed file
    heading: str  # nearest preceding heading / short prose line
    code: str  # translated code (paddle -> torch), dedented, stripped


@dataclass(frozen=True)
class Example:
    """One runnable usage example."""

    id: str  # e.g. "004-07-dropouts" or "000-02-decoder-only-gpt-like+004-02"
    seed: str  # seed file name of the kept (first) occurrence
    heading: str
    code: str  # runnable torch code (earlier blocks prepended for fragments)
    lineno: int = 0
    also_in: tuple[str, ...] = field(default=())  # "SSS-NN" of duplicates


# ------------------------------------------------------------------ exclusions

# fingerprint(code) -> reason.  Only blocks that are genuinely not usage
# examples of the library belong here (training scripts needing data files,
# shell snippets inside a python fence, ...).  The current seeds have none:
# pip install and bibtex are outside ```python fences (fenced seeds) or never
# start a code block (unfenced seeds), and no seed contains a training script.
# test_extractor checks that every entry still matches a block.
EXCLUDED: dict[str, str] = {}


# ----------------------------------------------------------------- utilities


def repo_root() -> Path:
    """The directory containing ``pyproject.toml`` above this file."""
    here = Path(__file__).resolve().parent
    for cand in (here, *here.parents):
        if (cand / "pyproject.toml").is_file():
            return cand
    return here.parents[1]  # tests/acceptance -> repo root


def seeds_dir() -> Path:
    """``$XT_SEEDS_DIR`` if set, else ``<repo root>/../shared/seeds``."""
    env = os.environ.get("XT_SEEDS_DIR")
    if env:
        return Path(env)
    return repo_root().parent / "shared" / "seeds"


def normalize(code: str) -> str:
    """Code with all whitespace removed (the de-duplication key)."""
    return re.sub(r"\s+", "", code)


def fingerprint(code: str) -> str:
    """Stable content fingerprint: sha256 of the normalized code, 12 hex chars."""
    return hashlib.sha256(normalize(code).encode()).hexdigest()[:12]


_TAG_RE = re.compile(r"<[^>]*>")


def _clean_text(line: str) -> str:
    """A prose / heading line without markdown and html decoration."""
    text = _TAG_RE.sub(" ", line)
    text = text.strip().lstrip("#").strip()
    text = text.replace("`", "").replace("*", "").replace("~~", "")
    return re.sub(r"\s+", " ", text).strip()


def slugify(text: str, max_words: int = 5, max_len: int = 40) -> str:
    words = re.findall(r"[a-z0-9]+", _clean_text(text).lower())
    slug = ""
    for w in words[:max_words]:
        cand = f"{slug}-{w}" if slug else w
        if len(cand) > max_len:
            break
        slug = cand
    return slug or "code"


def _is_heading_like(line: str) -> bool:
    """Markdown heading, or a short prose line that reads like a title."""
    stripped = line.strip()
    if not stripped:
        return False
    if re.match(r"^#{1,6}\s", stripped):
        return bool(_clean_text(stripped))
    text = _clean_text(stripped)
    if not text or re.match(r"^(https?://|\$|@|\[!\[|-\s|\d+\.\s)", text):
        return False
    if text.endswith((".", ":", ",", ";")) or re.search(r"[.!?;]\s", text):
        return False  # a sentence, not a title
    if re.match(r"^(Update|Note|ex)\b", text):
        return False
    return len(text) <= 100 and bool(re.search(r"[A-Za-z]", text))


def _pick_heading(context: list[str], previous: str) -> str:
    """Nearest heading-like line of ``context`` (the lines before a block)."""
    for line in reversed(context):
        if _is_heading_like(line):
            return _clean_text(line)
    for line in reversed(context):  # fall back to the nearest prose line
        text = _clean_text(line)
        if text and not re.match(r"^(https?://|\$|@)", text):
            return text
    return previous


# ------------------------------------------------------------ paddle -> torch

_DTYPE_METHODS = {
    "bool": ".bool()",
    "float32": ".float()",
    "float": ".float()",
    "float64": ".double()",
    "float16": ".half()",
    "bfloat16": ".bfloat16()",
    "int64": ".long()",
    "int32": ".int()",
}

# (pattern, replacement) applied in order to every line of a block that
# mentions paddle.  The torch call must mean the same thing as the paddle one.
PADDLE_REWRITES: list[tuple[str, str]] = [
    (r"^(\s*)import\s+paddle\s*$", r"\1import torch"),
    (r"^(\s*)import\s+paddle\s+as\s+(\w+)\s*$", r"\1import torch as \2"),
    (r"\bpd_x_transformers\b", "x_transformers"),
    (r"\bpaddle\.to_tensor\(", "torch.tensor("),
    (r"\bpaddle\.concat\(", "torch.cat("),
    (r"\bpaddle\.nn\.functional\.", "torch.nn.functional."),
    (r"\bpaddle\.nn\.Layer\b", "torch.nn.Module"),
    (r"\bpaddle\.", "torch."),
]
_ASTYPE_RE = re.compile(r"""\.astype\(\s*(?:paddle\.)?['"]?(\w+)['"]?\s*\)""")


def _astype_to_torch(match: re.Match[str]) -> str:
    dtype = match.group(1)
    return _DTYPE_METHODS.get(dtype, f".to(torch.{dtype})")


def translate_paddle(code: str) -> str:
    """Translate a PaddlePaddle usage example of ``pd_x_transformers`` to torch."""
    if not re.search(r"\bpaddle\b|\bpd_x_transformers\b|\.astype\(", code):
        return code
    out = []
    for line in code.splitlines():
        for pattern, repl in PADDLE_REWRITES:
            line = re.sub(pattern, repl, line)
        line = _ASTYPE_RE.sub(_astype_to_torch, line)
        out.append(line)
    return "\n".join(out)


# --------------------------------------------------------- fenced extraction

_FENCE_OPEN_RE = re.compile(r"^\s*```\s*([\w+-]*)\s*$")
_FENCE_CLOSE_RE = re.compile(r"^\s*```\s*$")
_PY_LANGS = {"python", "py", "python3"}


def _finish(code_lines: list[str]) -> str:
    code = textwrap.dedent("\n".join(code_lines)).strip("\n")
    return "\n".join(line.rstrip() for line in code.splitlines())


def extract_fenced(text: str, seed: str = "") -> list[Block]:
    """Blocks of a markdown document: the ```python fences only."""
    lines = text.splitlines()
    blocks: list[Block] = []
    context: list[str] = []
    heading = ""
    i = 0
    while i < len(lines):
        m = _FENCE_OPEN_RE.match(lines[i])
        if not m:
            context.append(lines[i])
            i += 1
            continue
        lang = m.group(1).lower()
        j = i + 1
        while j < len(lines) and not _FENCE_CLOSE_RE.match(lines[j]):
            j += 1
        body = lines[i + 1 : j]
        if lang in _PY_LANGS:
            heading = _pick_heading(context, heading)
            first = next((k for k, ln in enumerate(body) if ln.strip()), 0)
            blocks.append(
                Block(
                    seed=seed,
                    number=len(blocks) + 1,
                    lineno=i + 2 + first,
                    heading=heading,
                    code=translate_paddle(_finish(body)),
                )
            )
        context = []
        i = j + 1
    return blocks


# ------------------------------------------------------- unfenced extraction

_IDENT = r"[A-Za-z_]\w*"
_TARGET = rf"{_IDENT}(?:\.{_IDENT}|\[[^\]]*\])*"
_TARGETS = rf"\(?\s*{_TARGET}(?:\s*,\s*{_TARGET})*\s*,?\s*\)?"
_IMPORT_RE = re.compile(
    rf"^(?:import\s+{_IDENT}(?:\.{_IDENT})*(?:\s+as\s+{_IDENT})?"
    rf"(?:\s*,\s*{_IDENT}(?:\.{_IDENT})*(?:\s+as\s+{_IDENT})?)*"
    rf"|from\s+\.*{_IDENT}(?:\.{_IDENT})*\s+import\s+(?:\(|\*|{_IDENT}))"
)
# a block may start at: import / from-import / `name = callable(`
_ASSIGN_CALL_RE = re.compile(rf"^{_TARGETS}\s*=\s*{_IDENT}(?:\.{_IDENT})*\(")
# statements accepted at bracket depth 0 once inside a block
_ASSIGN_RE = re.compile(rf"^{_TARGETS}\s*(?:[-+*/%@&|^]|//|\*\*|>>|<<)?=(?!=)\s*\S")
_CALL_RE = re.compile(rf"^(?:await\s+)?{_IDENT}(?:\.{_IDENT})*[(\[]")
_ATTR_RE = re.compile(rf"^{_IDENT}(?:\.{_IDENT})+\s*(?:#.*)?$")
_KEYWORD_STMT_RE = re.compile(
    r"^(?:assert|del|return|raise|pass|break|continue|with|for|if|elif|else|"
    r"while|try|except|finally|def|class|async|global|nonlocal|yield)\b"
)
# words allowed to follow each other with only a space between them
_STATEMENT_WORDS = set(keyword.kwlist) | {"print"}


def _outside_brackets(line: str, depth: int) -> tuple[str, int]:
    """The text of ``line`` at bracket depth 0 (strings and comments removed),
    and the bracket depth after the line."""
    out = []
    i = 0
    quote = ""
    while i < len(line):
        ch = line[i]
        if quote:
            if ch == "\\":
                i += 2
                continue
            if line.startswith(quote, i):
                i += len(quote)
                quote = ""
                out.append(" " if depth == 0 else "")
                continue
            i += 1
            continue
        if ch == "#":
            break
        if ch in "\"'":
            quote = line[i : i + 3] if line[i : i + 3] in ('"""', "'''") else ch
            i += len(quote)
            continue
        if ch in "([{":
            if depth == 0:
                out.append(" ")
            depth += 1
        elif ch in ")]}":
            depth -= 1
            if depth < 0:
                return "".join(out), depth
        elif depth == 0:
            out.append(ch)
        i += 1
    return "".join(out), depth


def _looks_like_prose(top_level_text: str) -> bool:
    """Two plain words separated only by whitespace outside brackets = prose.

    ``import torch``, ``from a import b as c`` and ``x = a if b else c`` pass
    because one word of every such pair is a Python keyword."""
    for m in re.finditer(rf"(?=\b({_IDENT})\s+({_IDENT})\b)", top_level_text):
        if m.group(1) not in _STATEMENT_WORDS and m.group(2) not in _STATEMENT_WORDS:
            return True
    return False


def is_block_start(line: str) -> bool:
    """Whether an unfenced line can open a code block."""
    s = line.strip()
    if not (_IMPORT_RE.match(s) or _ASSIGN_CALL_RE.match(s)):
        return False
    top, _ = _outside_brackets(s, 0)
    return not _looks_like_prose(top)


def is_code_statement(line: str) -> bool:
    """Whether a line at bracket depth 0 looks like (the start of) a statement."""
    s = line.strip()
    if not s or s.startswith("#"):
        return True
    if not (
        _IMPORT_RE.match(s)
        or _ASSIGN_RE.match(s)
        or _CALL_RE.match(s)
        or _ATTR_RE.match(s)
        or _KEYWORD_STMT_RE.match(s)
    ):
        return False
    top, _ = _outside_brackets(s, 0)
    return not _looks_like_prose(top)


def _parses(lines: list[str]) -> bool:
    try:
        ast.parse(textwrap.dedent("\n".join(lines)))
    except SyntaxError:
        return False
    return True


def _grow_block(lines: list[str], start: int) -> int:
    """End index (exclusive) of the code block starting at ``lines[start]``;
    ``start`` when no valid block starts there."""
    depth = 0
    last_good = start
    i = start
    while i < len(lines):
        line = lines[i]
        if depth == 0:
            if line.strip() and not is_code_statement(line):
                break
            suite = line[:1].isspace() and line.strip() and not line.strip().startswith("#")
            if suite and not _in_suite(lines, start, i):
                break
        _, depth = _outside_brackets(line, depth)
        if depth < 0:
            break
        i += 1
        if depth == 0 and line.strip():
            if _parses(lines[start:i]):
                last_good = i
            elif not lines[i - 1].rstrip().endswith(":"):
                break
    return last_good


def _in_suite(lines: list[str], start: int, i: int) -> bool:
    """An indented depth-0 line is only code inside a compound statement."""
    for k in range(i - 1, start - 1, -1):
        prev = lines[k].rstrip()
        if prev.strip() and not prev.strip().startswith("#"):
            return prev.endswith(":") or prev[:1].isspace()
    return False


def extract_unfenced(text: str, seed: str = "") -> list[Block]:
    """Blocks of a scraped document whose code has no fences."""
    lines = text.splitlines()
    blocks: list[Block] = []
    context: list[str] = []
    heading = ""
    i = 0
    while i < len(lines):
        if is_block_start(lines[i]):
            end = _grow_block(lines, i)
            if end > i:
                heading = _pick_heading(context, heading)
                blocks.append(
                    Block(
                        seed=seed,
                        number=len(blocks) + 1,
                        lineno=i + 1,
                        heading=heading,
                        code=translate_paddle(_finish(lines[i:end])),
                    )
                )
                context = []
                i = end
                continue
        context.append(lines[i])
        i += 1
    return blocks


def is_fenced(text: str) -> bool:
    return bool(re.search(r"^\s*```\s*(python|py|python3)\s*$", text, re.MULTILINE))


def extract_seed(path: Path) -> list[Block]:
    """All raw Python blocks of one seed file, in document order."""
    text = Path(path).read_text(encoding="utf-8")
    name = Path(path).name
    if is_fenced(text):
        return extract_fenced(text, name)
    return extract_unfenced(text, name)


# --------------------------------------------------------------- fragments


def _bound_names(tree: ast.AST, *, imports: bool = True) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            names.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, (ast.Import, ast.ImportFrom)) and imports:
            for alias in node.names:
                names.add((alias.asname or alias.name).split(".")[0])
        elif isinstance(node, ast.ExceptHandler) and node.name:
            names.add(node.name)
    return names


def assigned_names(code: str) -> set[str]:
    """Names a block binds other than by import."""
    return _bound_names(ast.parse(code), imports=False)


def free_names(code: str) -> set[str]:
    """Names a block loads without binding them (builtins excluded)."""
    tree = ast.parse(code)
    loaded = {
        n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)
    }
    return loaded - _bound_names(tree) - set(dir(builtins))


def _resolve_fragments(blocks: list[Block]) -> list[str]:
    """Runnable code of each block: earlier blocks are prepended when the
    block loads names that only an earlier block of the seed assigns."""
    assigned = [assigned_names(b.code) for b in blocks]
    result = []
    for idx, block in enumerate(blocks):
        needed: set[int] = set()
        todo = [idx]
        while todo:
            k = todo.pop()
            for name in free_names(blocks[k].code):
                src = next((j for j in range(k - 1, -1, -1) if name in assigned[j]), None)
                if src is not None and src not in needed:
                    needed.add(src)
                    todo.append(src)
        parts = [blocks[j].code for j in sorted(needed)] + [block.code]
        result.append("\n\n".join(parts))
    return result


# --------------------------------------------------------------------- api


def is_gpt3(code: str) -> bool:
    """The GPT-3 sized example: a Decoder with dim 12288, depth 96, heads 96."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return False
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            kw = {
                k.arg: k.value.value
                for k in node.keywords
                if k.arg and isinstance(k.value, ast.Constant)
            }
            if kw.get("dim") == 12288 and kw.get("depth") == 96 and kw.get("heads") == 96:
                return True
    return False


def load_examples(seeds: Path | str | None = None) -> list[Example]:
    """All de-duplicated, non-excluded runnable examples of every seed file."""
    root = Path(seeds) if seeds is not None else seeds_dir()
    kept: dict[str, int] = {}  # normalized code -> index into examples
    examples: list[Example] = []
    also: list[list[str]] = []
    for path in sorted(root.glob("*.txt")):
        prefix = path.name.split("_", 1)[0]
        blocks = extract_seed(path)
        for block, code in zip(blocks, _resolve_fragments(blocks)):
            if fingerprint(code) in EXCLUDED or fingerprint(block.code) in EXCLUDED:
                continue
            ref = f"{prefix}-{block.number:02d}"
            key = normalize(code)
            if key in kept:
                also[kept[key]].append(ref)
                continue
            kept[key] = len(examples)
            also.append([])
            examples.append(
                Example(
                    id=f"{ref}-{slugify(block.heading)}",
                    seed=block.seed,
                    heading=block.heading,
                    code=code,
                    lineno=block.lineno,
                )
            )
    return [
        Example(
            id=ex.id + "".join(f"+{r}" for r in refs),
            seed=ex.seed,
            heading=ex.heading,
            code=ex.code,
            lineno=ex.lineno,
            also_in=tuple(refs),
        )
        for ex, refs in zip(examples, also)
    ]
