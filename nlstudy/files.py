"""Files in and out: what a person or another tool wrote, read with one clear line when it cannot be; what
the project writes, written whole or not at all.

Reading (sweep files, configs, CSV and list files, a run's saved config):

    read_text(path)      UTF-8 text; a leading byte-order mark (Windows editors, spreadsheets' "CSV UTF-8")
                         dropped; CRLF line ends are left to the parsers (YAML, csv, splitlines all take them).
                         Not UTF-8 (a Latin-1 / cp1252 byte): FileProblem naming the byte, line and column.
    decode_problem(...)  that sentence, for a reader that streams a file (csv) and meets the byte late.
    load_yaml(text)      yaml.safe_load, except that a key given twice in one mapping is refused, naming the
                         key and both lines (PyYAML, like json, silently keeps the last).
    walk(root)           os.walk following symbolic links to folders, each real folder once.

Writing: every file the project writes goes through `replacing(path)` (or `write_text` / `write_bytes` /
`copy`, built on it): the content goes to a temporary file beside `path` (same folder, so the same file
system), is flushed to the disk, and is renamed over `path` in one step. A reader sees the old file or the
new one, never half of one; a full disk, a signal or an error leaves the old file (or none) and no
temporary behind (except a SIGKILL, which leaves a `.<name>.<pid>.tmp` that no reader looks at).

Nothing here imports torch, nor a third-party package but PyYAML.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from nlstudy.errors import yaml_problem

BOM = "\ufeff"


class FileProblem(ValueError):
    """A file that cannot be read as what it should be; ``problem`` is one line, ``path`` the file."""

    def __init__(self, path: str | os.PathLike, problem: str):
        self.path, self.problem = Path(path), problem
        super().__init__(f"{path}: {problem}")


# --- reading ---------------------------------------------------------------------------------------------

def _position(data: bytes, offset: int) -> str:
    line = data.count(b"\n", 0, offset) + 1
    column = offset - (data.rfind(b"\n", 0, offset) + 1) + 1
    return f"line {line}, column {column}"


def decode_problem(data: bytes, error: UnicodeDecodeError | None = None) -> str:
    """Why `data` is not UTF-8, in words: 'not UTF-8 text (byte 0xe9 at line 3, column 7; saved as Latin-1
    or Windows-1252?): save it as UTF-8'. `error` is the decoder's (found again when not given)."""
    if error is None:
        try:
            data.decode("utf-8")
            return "not UTF-8 text"
        except UnicodeDecodeError as e:
            error = e
    offset = error.start
    byte = data[offset:offset + 1]
    guess = "; saved as Latin-1 or Windows-1252?" if byte and byte[0] >= 0x80 else ""
    if b"\x00" in data[:4096]:
        guess = "; a binary file, or UTF-16?"
    return f"not UTF-8 text (byte 0x{byte.hex()} at {_position(data, offset)}{guess}): save it as UTF-8"


def read_text(path: str | os.PathLike) -> str:
    """The text of `path`: UTF-8, a leading BOM dropped. FileProblem when it is not UTF-8; OSError when it
    cannot be read at all (missing, a folder, no permission), for the caller to word."""
    data = Path(path).read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise FileProblem(path, decode_problem(data, e)) from None
    return text.removeprefix(BOM)


class DuplicateKey(yaml.constructor.ConstructorError):
    """A mapping that gives one key twice."""


class _UniqueKeys(yaml.SafeLoader):
    """yaml.SafeLoader that refuses a key given twice in one mapping (merge keys `<<:` may still be overridden)."""


def _mapping(loader: _UniqueKeys, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node, deep=True)
        try:
            first = seen.get(key)
        except TypeError:  # an unhashable key: the constructor below says so
            continue
        line = key_node.start_mark.line + 1
        if first is not None:
            raise DuplicateKey(None, None, f"key {key!r} is given twice (lines {first} and {line}); keep one",
                               key_node.start_mark)
        seen[key] = line
    return loader.construct_mapping(node, deep=deep)


_UniqueKeys.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def load_yaml(text: str) -> Any:
    """`text` as YAML (JSON included), as yaml.safe_load reads it, but a key given twice in one mapping raises
    DuplicateKey (a yaml.YAMLError, which ``nlstudy.errors.yaml_problem`` words with its lines)."""
    return yaml.load(text, Loader=_UniqueKeys)  # noqa: S506 - a SafeLoader subclass


def read_yaml(path: str | os.PathLike) -> Any:
    """`path` read (`read_text`) and parsed (`load_yaml`); any problem with its content is a FileProblem whose
    ``problem`` is one line (OSError is left to the caller)."""
    text = read_text(path)
    try:
        return load_yaml(text)
    except yaml.YAMLError as e:
        raise FileProblem(path, yaml_problem(e)) from None


def walk(root: str | os.PathLike) -> Iterator[tuple[str, list[str], list[str]]]:
    """os.walk(root) following symbolic links to folders (a runs root's `wandb/` or a dataset's clips kept on
    another disk and linked in; Path.rglob and os.walk do not follow them), each real folder once (a link back
    up does not loop). The caller may prune `subfolders` in place, as with os.walk."""
    walked: set[str] = set()
    for folder, subfolders, names in os.walk(root, followlinks=True):
        real = os.path.realpath(folder)
        if real in walked:
            subfolders.clear()
            continue
        walked.add(real)
        yield folder, subfolders, names


# --- writing ---------------------------------------------------------------------------------------------

def temporary(path: str | os.PathLike) -> Path:
    """Where `replacing` writes `path` first: a hidden name beside it, unique to this process."""
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


@contextlib.contextmanager
def replacing(path: str | os.PathLike) -> Iterator[Path]:
    """Yields a temporary path beside `path` to write to (by any means: a writer that wants a file name, such
    as savefig or torch.save); when the block ends without an error, the temporary is flushed to the disk and
    renamed over `path`. On any error (a full disk, KeyboardInterrupt) the temporary is removed, `path` is
    left as it was, and the error propagates (an OSError about the temporary as one about `path`)."""
    tmp = temporary(path)
    try:
        yield tmp
        with open(tmp, "rb+") as f:  # on the disk before the name points at it (a power cut after the rename)
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(e, OSError) and e.errno is not None and e.filename in (None, str(tmp), tmp):
            raise OSError(e.errno, e.strerror, str(path)) from e  # the file the caller writes, not its temporary
        raise


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `path` whole or not at all."""
    with replacing(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write `text` to `path` as UTF-8, whole or not at all."""
    write_bytes(path, text.encode("utf-8"))


def copy(source: str | os.PathLike, target: str | os.PathLike) -> None:
    """Copy the file `source` to `target`, whole or not at all."""
    with replacing(target) as tmp:
        shutil.copyfile(source, tmp)
