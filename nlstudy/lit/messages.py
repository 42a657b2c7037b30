"""Rewording jsonargparse's errors: one line that names the key, the valid choices and the closest key or value
(moved out of nlstudy.lit.cli, which imports these names back for its callers)."""

from __future__ import annotations

import dataclasses
import re
import typing
from collections.abc import Callable, Sequence
from typing import Any

from nlstudy import files, keys
from nlstudy.choices import TRAIN_COMMANDS
from nlstudy.data import ClipDataModule
from nlstudy.errors import MAX_LINE, one_line
from nlstudy.lit.module import VideoClassifier
from nlstudy.registry import did_you_mean


def argument_error_line(error: BaseException) -> str:
    """A jsonargparse (or our own) error as one line: the first line names the key; the innermost reason
    follows. jsonargparse's errors are text only, so this reads their layout: a Union failure lists its
    "Subtypes:" and the "Given value:", which become "expected A or B; given value: V" (a Literal's values
    listed one by one). If a later jsonargparse words these differently, the message degrades to the first
    line plus the last reason line, still one line that names the key (tests/test_cli_hooks.py pins the
    current layout). A message that lists choices is not cut short; where jsonargparse names only a Literal's
    base type ("Expected a <class 'int'>"), the valid values are added."""
    text = str(error).strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    head = lines[0] if lines else type(error).__name__
    key = re.match(r'Parser key "([^"]+)"', head)
    choices = LITERAL_CHOICES.get(key.group(1)) if key and "Literal[" not in text else None
    limit = None if "Literal[" in text or choices else MAX_LINE
    subtypes = next((line for line in lines if line.startswith("Subtypes:")), None)
    if subtypes:  # a Union: name the accepted types and what was given
        given = next((line for line in lines if line.startswith("Given value:")), "")
        line = f"{head} expected {' or '.join(type_names(subtypes))}; {given[0].lower() + given[1:] if given else ''}"
        line = line.strip("; ")
    else:
        reason = next((l for l in reversed(lines) if l.startswith("- ") or "Expected" in l or "not" in l), "")
        line = f"{head} {reason}" if reason and reason not in head else head
    if choices:
        line += f"; valid choices: {', '.join(repr(c) for c in choices)}"
    given_value = re.search(r"(?:Got|Given) value: (.+)$", text, flags=re.M)
    if key and given_value and key.group(1) in LITERAL_CHOICES:  # a misspelled choice: the one meant
        line += did_you_mean(given_value.group(1).strip().strip("'\""), LITERAL_CHOICES[key.group(1)])
    return one_line(line, limit)


def literal_choices() -> dict[str, tuple[Any, ...]]:
    """{dotted key: its valid values} for every model.* and data.* setting typed as a Literal (the specs'
    nlstudy.choices types), for the errors where jsonargparse names only the Literal's base type."""
    found: dict[str, tuple[Any, ...]] = {}

    def walk(prefix: str, hints: dict[str, Any]) -> None:
        for name, hint in hints.items():
            if typing.get_origin(hint) is typing.Literal:
                found[f"{prefix}.{name}"] = typing.get_args(hint)
            elif dataclasses.is_dataclass(hint):
                walk(f"{prefix}.{name}", typing.get_type_hints(hint))

    walk("model", typing.get_type_hints(VideoClassifier.__init__))
    walk("data", typing.get_type_hints(ClipDataModule.__init__))
    return found


LITERAL_CHOICES = literal_choices()


def type_names(subtypes: str) -> list[str]:
    """jsonargparse's "Subtypes: [typing.Literal['a', 'b'], <class 'int'>, <class 'NoneType'>]" -> the
    accepted values and types: ["'a'", "'b'", 'int', 'null'] (other types as written)."""
    body = subtypes.partition("[")[2].rpartition("]")[0]
    items, depth, start = [], 0, 0
    for i, char in enumerate(body + ","):  # split at the commas outside brackets
        if char in "[(":
            depth += 1
        elif char in "])":
            depth -= 1
        elif char == "," and depth == 0:
            items.append(body[start:i].strip())
            start = i + 1
    names = []
    for item in filter(None, items):
        literal = re.fullmatch(r"typing\.Literal\[(.*)\]", item)
        cls = re.fullmatch(r"<class '([\w.]+)'>", item)
        if literal:
            names += [v.strip() for v in literal.group(1).split(",")]
        else:
            names.append(cls.group(1).rsplit(".", 1)[-1].replace("NoneType", "null") if cls else item)
    return list(dict.fromkeys(names))


# jsonargparse's words for a key it does not know: on the command line, and in a config file
UNKNOWN_ARGUMENT = re.compile(r"unrecognized arguments: --([^\s=]+)")
UNKNOWN_OPTION = re.compile(r"does not accept option '([^']+)'")


def parse_error_line(error: BaseException, valid_keys: Callable[[str], list[str]], args: Any) -> str:
    """`argument_error_line`, plus what jsonargparse's text leaves out: for an unknown key, the closest and
    the valid keys beside it (`keys.unknown_key`, from `valid_keys(subcommand)`); for a config file that does
    not read, which file and where."""
    text = str(error)
    argv = [str(a) for a in args] if isinstance(args, (list, tuple)) else []
    unknown = UNKNOWN_ARGUMENT.search(text) or UNKNOWN_OPTION.search(text)
    if unknown and argv and argv[0] in TRAIN_COMMANDS:
        valid = valid_keys(argv[0])
        if valid:
            return one_line(keys.unknown_key(unknown.group(1), valid), None)
    if text.startswith(("Problems parsing config", "Unexpected config")):
        for path in config_files(argv):
            problem = config_file_problem(path)
            if problem:
                return f"config {path}: {problem}"
    return argument_error_line(error)


def config_files(argv: Sequence[str]) -> list[str]:
    """The --config files of an argument list, in order."""
    files = [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--config"]
    return files + [a.split("=", 1)[1] for a in argv if a.startswith("--config=")]


def config_file_problem(path: str) -> str | None:
    """Why a config file cannot be a config (not UTF-8, not YAML, a key given twice, not a mapping of keys), or
    None when it can."""
    try:
        tree = files.read_yaml(path)
    except OSError:
        return None  # jsonargparse reports a missing file itself, naming the key
    except files.FileProblem as e:
        return e.problem
    if tree is not None and not isinstance(tree, dict):
        return f"a config file is a YAML mapping of keys (model:, data:, trainer:, ...), got a {type(tree).__name__}"
    return None
