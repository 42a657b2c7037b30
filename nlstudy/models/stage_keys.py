"""VideoResNet's names on disk: the one mapping between its module paths and the keys its files hold.

VideoResNet holds its stages in an nn.ModuleDict, `stages`, so its module paths and the state-dict keys torch
would make from them start with "stages.": `stages.res3.nonlocal0.theta.weight`. Every file it reads or writes
(a run's best.pt / final.pt, Lightning checkpoints, model.init_from's warm starts, the key map of ImageNet
inflation) and every name the analysis shows keeps the names of the stages as direct children:
`res3.nonlocal0.theta.weight`. The two differ only there:

    saved_name(name)            "stages.res3.1.conv1.weight" -> "res3.1.conv1.weight" (and "net.stages.res3" ->
                                "net.res3" inside a LightningModule); every other name as it is
    module_name(name, prefix)   the inverse, for a name under `prefix` (where the network sits in the module
                                being loaded: "" or "net.")
    keep_saved_names(network)   registers torch's public state-dict hooks on the network, so that its
                                state_dict() holds the saved names (in the order it held them before) and its
                                load_state_dict() reads them, at any depth inside another module; the missing and
                                unexpected keys it reports are saved names too

No file ever holds the "stages." form: nothing needs upgrading, and a file of either age loads the same.
"""

from __future__ import annotations

import re
from typing import Any

from torch import nn

from nlstudy.choices import STAGES

HOLDER = "stages"  # VideoResNet's attribute: the nn.ModuleDict of res2..res5
# "stages." where it opens a stage's name, at the start of a name or after a dot: the part the files leave out
_HELD = re.compile(rf"(?:^|(?<=\.)){HOLDER}\.(?=(?:{'|'.join(STAGES)})(?:\.|$))")


def saved_name(name: str) -> str:
    """A module path or state-dict key as VideoResNet's files and the analysis name it (see the module docstring)."""
    return _HELD.sub("", name, count=1)


def module_name(name: str, prefix: str = "") -> str:
    """The saved `name` of something in the network at `prefix` -> its module path (state-dict key) in torch."""
    if not name.startswith(prefix):
        return name
    rest = name[len(prefix):]
    return f"{prefix}{HOLDER}.{rest}" if rest.split(".", 1)[0] in STAGES else name


def _save_names(module: nn.Module, state_dict: dict[str, Any], prefix: str, local_metadata: dict) -> None:
    # state_dict is the whole destination (the keys of modules before and after this one too): rebuilt in its order
    items = list(state_dict.items())
    state_dict.clear()
    state_dict.update((_saved_under(prefix, k), v) for k, v in items)
    metadata = getattr(state_dict, "_metadata", None)  # torch's per-module versions, keyed by module path
    if metadata is not None:
        entries = [(k, v) for k, v in metadata.items() if k != prefix + HOLDER]  # the ModuleDict's: files lack it
        metadata.clear()
        metadata.update((_saved_under(prefix, k), v) for k, v in entries)


def _saved_under(prefix: str, name: str) -> str:
    return prefix + saved_name(name[len(prefix):]) if name.startswith(prefix) else name


def _load_names(module: nn.Module, state_dict: dict[str, Any], prefix: str, local_metadata: dict, strict: bool,
                missing_keys: list[str], unexpected_keys: list[str], error_msgs: list[str]) -> None:
    for key in [k for k in state_dict if k.startswith(prefix)]:
        state_dict[module_name(key, prefix)] = state_dict.pop(key)
    # torch's per-module versions: reachable where the network is the module being loaded (a module inside one
    # is handed a plain dict); only BatchNorm reads them, for files older than its num_batches_tracked buffer
    metadata = getattr(state_dict, "_metadata", None)
    if metadata is not None:
        for key in [k for k in metadata if k.startswith(prefix)]:
            metadata[module_name(key, prefix)] = metadata.pop(key)


def _report_names(module: nn.Module, incompatible_keys: Any) -> None:
    for keys in (incompatible_keys.missing_keys, incompatible_keys.unexpected_keys):
        keys[:] = [saved_name(k) for k in keys]


def keep_saved_names(network: nn.Module) -> None:
    """Make `network`'s state_dict() and load_state_dict() use the saved names (torch's public hooks)."""
    network.register_state_dict_post_hook(_save_names)
    network.register_load_state_dict_pre_hook(_load_names)
    network.register_load_state_dict_post_hook(_report_names)
