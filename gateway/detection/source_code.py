"""Is there program source in this text field? Cheap, explainable line features.

Each line gets a score from features that are common in code across many
languages and rare in prose: statement endings (`;`, `{`, `}`), lines that open
with a language construct (`def f(`, `func (`, `#include <`, `public static`,
`SELECT ... ` in capitals, `const x =`), symbol density (`{}()[];=<>`) and
operators (`==`, `=>`, `::`, `&&`). Sentences (ending in `.?!` and full of
English function words) are pushed down. A region is a run of code lines,
where blank and comment lines neither break nor count; it is reported when it
has enough code lines and characters. Inline `code` mentions inside a sentence
stay prose. Pygments' guess_lexer was not used: it always names *some* lexer,
so it cannot say "this is prose", and it is far slower.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from gateway.detection.finding import Finding

ENTITY_TYPE = "SOURCE_CODE"

CODE_LINE = 2.0
STRONG_LINE = 4.5

_CONSTRUCTS = [
    r"def \w+\s*\(", r"class \w+\s*(?:[(:{]|extends\b|implements\b|<)", r"(?:import|from) [\w.]+(?: import \w| as \w|;|$)",
    r"import\s*[{*]", r"#include\s*[<\"]", r"#(?:define|ifn?def|endif|pragma)\b", r"package [\w.]+;?$", r"using [\w.]+;$",
    r"(?:public|private|protected|internal|static|final|abstract|override)\s+[\w<>\[\],]+\s+\w+",
    r"func (?:\(\w+ \*?\w+\) )?\w+\(", r"(?:pub )?fn \w+", r"(?:let|const|var|val|auto|mut) \w+\s*(?::\s*[\w<>\[\]]+\s*)?=",
    r"(?:if|while|for|switch|foreach|catch)\s*\(", r"(?:if|elif|while|for|with|async with|async for) .+:$",
    r"else\s*[:{]|}\s*else\b|else if\b", r"try\s*[:{]", r"except\b.*:$", r"return\b.*;$", r"return [\w.()\[\]\"'+\-*/, ]+$",
    r"[a-z_]\w*: [\w.\[\]|]+(?: = .+)?$", r"var \w+ [\w.\[\]*]+$",
    r"(?:SELECT|INSERT INTO|UPDATE|DELETE FROM|CREATE (?:TABLE|INDEX|VIEW)|ALTER TABLE|DROP TABLE|WITH \w+ AS)\b",
    r"(?:FROM|WHERE|LEFT JOIN|INNER JOIN|JOIN|GROUP BY|ORDER BY|HAVING|LIMIT|VALUES|SET|AND|OR|ON)\b",
    r"#!/", r"echo\b", r"export \w+=", r"(?:local|readonly|declare) \w+=", r"\w+=(?:\$|\"|'|\d|\w+$)", r"\$\w+\s*=",
    r"<\?php", r"fun \w+\(", r"end$", r"(?:do|done|fi|esac|then)$", r"@\w+(?:\(|$)", r"(?:async |public |export )*function\b",
    r"module\.exports\b", r"(?:self|this)\.\w+\s*=", r"print(?:ln|f)?\(", r"console\.\w+\(", r"(?:fmt|System\.out)\.\w+",
    r"(?:struct|enum|interface|trait|impl|type) \w+.*[{=]$", r"yield\b", r"raise \w+", r"throw new\b", r"assert\b",
    r"if \[", r"(?:for|while) .*; do$", r"set -[a-z]+", r"puts\b", r"\w+(?:\.\w+)* do(?: \|[\w, ]+\|)?$",
    r"(?:sudo |mkdir|cp|mv|rm|gzip|tar|curl|wget|chmod|chown|grep|sed|awk|pip|npm|docker|kubectl|git) .*(?: -\w|\$)",
    r"\w+ (?:BIGSERIAL|SERIAL|BIGINT|INT|INTEGER|SMALLINT|TEXT|VARCHAR|CHAR|NUMERIC|DECIMAL|BOOLEAN|DATE|TIMESTAMP)\b",
    r"\w+(?:\.\w+)*\([^()]*\)\s*[;{]?$", r"[\w.\[\]]+\s*(?:[+\-*/%|&]?=|:=)\s*\S",
]
_CONSTRUCT = re.compile(r"^\s*(?:" + "|".join(_CONSTRUCTS) + ")")
_CASE_SENSITIVE_SQL = re.compile(r"^\s*[a-z]")  # SQL constructs above count only when written in capitals
_OPERATORS = re.compile(r"\$\{?\w+|==|!=|=>|->|::|&&|\|\||\+=|-=|:=|<=|>=|\+\+|<<|>>|[\w)\]\"']\.\w+\(|\w\[[\w\"']")
_SYMBOLS = re.compile(r"[{}()\[\];=<>]")
_ENDING = re.compile(r"(?:[;{}]|\)\s*:|\[|\(|=>|\\)\s*$")
_CLOSERS = re.compile(r"^\s*[}\])]+[;,)]*\s*$")
_COMMENT = re.compile(r"^\s*(?://|#(?!!|include|define)|/\*|\*|--\s|<!--|\"\"\"|''')")
_WORD = re.compile(r"(?<![\w.])[A-Za-z']+(?![\w(]|\.\w)")
_SENTENCE_END = re.compile(r"[.?!:)\"']\s*$")
_FUNCTION_WORDS = frozenset(
    "the a an and of to is are was were be been this that it its we you i he she they our your please can could "
    "will would should have has had but so at on by about there their them my me us".split()
)


@dataclass(frozen=True)
class _Line:
    start: int
    end: int
    score: float
    neutral: bool


def line_score(line: str) -> float:
    """How much one line looks like code (>= 2 counts as a code line)."""
    stripped = line.strip()
    score = 0.0
    construct = _CONSTRUCT.match(stripped)
    if construct and not (construct.group().lstrip()[:1].isupper() and _looks_like_sentence(stripped)):
        score += 2.5
    if _CLOSERS.match(stripped):
        score += 3
    if _ENDING.search(stripped):
        score += 2
    density = len(_SYMBOLS.findall(stripped)) / max(len(stripped), 1)
    score += 2 if density >= 0.12 else 1 if density >= 0.06 else 0
    score += min(len(_OPERATORS.findall(stripped)), 2)
    if line[:1] in (" ", "\t") and score > 0:
        score += 0.5
    if _looks_like_sentence(stripped):
        score -= 3
    return score


def _looks_like_sentence(stripped: str) -> bool:
    words = _WORD.findall(stripped)
    if len(words) < 5:
        return False
    function_words = sum(w.lower() in _FUNCTION_WORDS and not w.isupper() for w in words)
    return function_words / len(words) >= 0.2 or (_SENTENCE_END.search(stripped) and function_words >= 2)


class SourceCodeDetector:
    """One SOURCE_CODE finding per code region of at least `min_chars` characters."""

    name = "source_code"

    def __init__(self, min_chars: int = 40, min_lines: int = 2, min_density: float = 0.6):
        self.min_chars = min_chars
        self.min_lines = min_lines
        self.min_density = min_density

    def detect(self, text: str) -> list[Finding]:
        findings = []
        for region in _regions(_lines(text)):
            code = [ln for ln in region if not ln.neutral and ln.score >= CODE_LINE]
            scored = [ln for ln in region if not ln.neutral]
            start, end = region[0].start, region[-1].end
            if end - start < self.min_chars or not code:
                continue
            density = len(code) / len(scored)
            one_strong_line = len(code) == 1 and code[0].score >= STRONG_LINE
            if (len(code) >= self.min_lines or one_strong_line) and density >= self.min_density:
                score = round(min(0.99, 0.5 + 0.05 * len(code)), 2)
                why = f"code_lines={len(code)} lines={len(scored)} density={density:.2f}"
                findings.append(Finding(ENTITY_TYPE, start, end, score, self.name, "line_features", why))
        return findings


def _lines(text: str) -> list[_Line]:
    out = []
    for m in re.finditer(r"[^\n]*", text):
        if m.start() > 0 and m.start() == m.end() and text[m.start() - 1 : m.start()] != "\n":
            continue
        line = m.group()
        stripped = line.strip()
        neutral = not stripped or (bool(_COMMENT.match(line)) and not stripped.startswith("#!"))
        s, e = m.start() + len(line) - len(line.lstrip()), m.start() + len(line.rstrip())
        out.append(_Line(s, e, 0.0 if neutral else line_score(line), neutral))
    return out


def _regions(lines: list[_Line]) -> list[list[_Line]]:
    """Runs of code lines; blank/comment lines and short non-code stretches between code lines stay inside."""
    regions: list[list[_Line]] = []
    current: list[_Line] = []
    misses = 0
    for ln in lines:
        if ln.neutral:
            if current:
                current.append(ln)
            continue
        if ln.score >= CODE_LINE:
            current.append(ln)
            misses = 0
        elif current:
            misses += 2 if ln.score < 0 else 1  # a sentence weighs more than an unclear line
            current.append(ln)
            if misses >= 3:
                regions.append(current)
                current, misses = [], 0
    if current:
        regions.append(current)
    trimmed = []
    for region in regions:
        while region and (region[-1].neutral or region[-1].score < CODE_LINE):
            region.pop()
        while region and region[0].neutral:
            region.pop(0)
        if region:
            trimmed.append(region)
    return trimmed
