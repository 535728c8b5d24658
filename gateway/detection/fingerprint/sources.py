"""Which files to index and how: text files only, code or prose by extension."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gateway.detection.fingerprint.normalise import CODE, PROSE

MAX_FILE_BYTES = 5 * 1024 * 1024

CODE_EXTENSIONS = frozenset(
    """
    .py .pyi .pyx .js .jsx .mjs .cjs .ts .tsx .go .java .c .cc .cpp .cxx .h .hh .hpp .hxx .rs .rb .php .cs
    .kt .kts .swift .scala .sql .sh .bash .zsh .ksh .ps1 .pl .pm .lua .r .m .mm .dart .groovy .gradle .ex .exs
    .erl .hs .clj .fs .vb .jl .f90 .proto .tf .css .scss .less .vue .svelte .zig .nim .sol
    """.split()
)


def mode_for(source: str | Path) -> str:
    """"code" for a source-code file extension, else "prose"."""
    return CODE if Path(str(source)).suffix.lower() in CODE_EXTENSIONS else PROSE


@dataclass(frozen=True)
class SkippedFile:
    path: Path
    reason: str


@dataclass(frozen=True)
class PathScan:
    files: list[Path]
    skipped: list[SkippedFile]


def scan_paths(paths: list[Path], max_bytes: int = MAX_FILE_BYTES) -> PathScan:
    """Files under `paths` (recursively; dot-directories skipped), sorted, with skip reasons."""
    files: list[Path] = []
    skipped: list[SkippedFile] = []
    for root in map(Path, paths):
        if root.is_dir():
            candidates = sorted(p for p in root.rglob("*") if p.is_file() and not _in_dot_dir(p, root))
        elif root.is_file():
            candidates = [root]
        else:
            skipped.append(SkippedFile(root, "not found"))
            continue
        for path in candidates:
            reason = _skip_reason(path, max_bytes)
            if reason:
                skipped.append(SkippedFile(path, reason))
            else:
                files.append(path)
    return PathScan(files, skipped)


def read_text(path: Path) -> str:
    return path.read_bytes().decode("utf-8-sig")


def _in_dot_dir(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts[:-1])


def _skip_reason(path: Path, max_bytes: int) -> str | None:
    size = path.stat().st_size
    if size > max_bytes:
        return f"larger than {max_bytes} bytes ({size})"
    if size == 0:
        return "empty"
    data = path.read_bytes()
    if b"\0" in data[:8192]:
        return "binary (NUL bytes)"
    try:
        data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return "not UTF-8 text"
    return None
