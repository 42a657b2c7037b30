"""Bad input, generated (hypothesis), not hand-picked: unknown keys, wrong types, out-of-range values, block
indices beyond a stage, subsampling that contradicts the mode, malformed YAML, bad sweep files and macros, and a
config that asks for a GPU this machine lacks. Every one gets a one-line error naming the key (with the valid
choices where there is a finite set of them) before any data is read, and leaves no run or sweep state behind.

Building the training CLI's parser takes about a second, so most generated configurations go through one
`CheckCLI` (the parser and hooks `nlstudy fit` uses, as `nlstudy check` and the sweep check do), and a smaller
draw of the same generator goes through `nlstudy fit` itself, in this process: exit code 2, one line on stderr.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import string
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from nlstudy import choices, keys
from nlstudy.cli import main
from nlstudy.data import ClipDataModule
from nlstudy.errors import UsageError
from nlstudy.lit.check import CheckCLI, check_all
from nlstudy.models.resnet import DEPTH_BLOCKS
from nlstudy.sweep import check as sweep_check
from nlstudy.sweep import cli as sweep_cli
from nlstudy.sweep.command import MACROS

pytestmark = pytest.mark.filterwarnings("ignore:LightningCLI's args parameter:UserWarning")
ROOT = Path(__file__).resolve().parents[1]
DEMO = str(ROOT / "experiments" / "demo.yaml")
KINETICS = str(ROOT / "experiments" / "kinetics.yaml")
GENERATED = settings(derandomize=True, deadline=None, database=None,
                     suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


class DataRead(BaseException):
    """Raised by ClipDataModule.setup in these tests: a bad config must fail before the data is read."""


def read_no_data(self, stage: str) -> None:
    raise DataRead(f"ClipDataModule.setup({stage!r}) was called")


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """One CheckCLI over the demo config, runs pointed at a folder that must stay absent, a folder for files."""
    runs = tmp_path_factory.mktemp("work") / "runs"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(keys.RUNS_ENV, str(runs))
        cli = CheckCLI(["fit", "--config", DEMO])
        yield cli, runs, tmp_path_factory.mktemp("files")


@pytest.fixture
def no_data(monkeypatch):
    """ClipDataModule.setup raises DataRead (a BaseException: nothing turns it into a clean error)."""
    monkeypatch.setattr(ClipDataModule, "setup", read_no_data)


# --- the generator of bad training configurations ---------------------------------------------------------
# each draws (arguments after `fit --config demo.yaml`, the key the error must name, the choices it must list)

CHOICES = {
    keys.ARCH: choices.ARCHS + choices.TORCHVISION_ARCHS, keys.DEPTH: choices.DEPTHS, keys.BLOCK: choices.BLOCKS,
    keys.NORM: choices.NORMS, keys.INIT: choices.INITS, keys.PAIRWISE: choices.PAIRWISE, keys.MODE: choices.MODES,
    keys.SUBSAMPLE_ORDER: choices.SUBSAMPLE_ORDERS, "model.backbone.nl.zero_init": choices.ZERO_INITS,
    keys.NONLOCAL_BLOCKS: choices.PLACEMENTS, "model.optim.name": choices.OPTIMIZERS,
    "model.optim.schedule": choices.SCHEDULES, keys.DATASET: choices.DATASETS, keys.TASK: choices.TASKS,
    "data.video.test_crops": (1, 3), "trainer.accelerator": ("auto", "gpu", "cpu", "cuda", "mps", "tpu"),
    "trainer.precision": ("16-mixed", "bf16-mixed", "32-true", "64-true", "bf16-true"),
}
TYPED = {  # key -> the type name its error must give
    **dict.fromkeys(["data.batch_size", "data.frames", "data.size", keys.WIDTH, "data.num_workers",
                     "data.synthetic.train_samples", "model.backbone.nl.reduction"], "int"),
    **dict.fromkeys(["model.optim.lr", "model.backbone.dropout", keys.INTER_RATIO, "model.label_smoothing",
                     "model.optim.gamma"], "float"),
    **dict.fromkeys(["model.backbone.pool1", keys.SCALE, "model.channels_last", "save_weights",
                     "model.optim.nesterov"], "bool"),
}
NEAR = st.floats(0.0, 1000.0).map(lambda v: f"{v:.3f}")  # as YAML floats (1e+308 would read as a string)
OUT_OF_RANGE = {  # key -> values outside its range
    **{k: st.integers(-1000, 0) for k in ("data.batch_size", "data.frames", "data.size", keys.WIDTH)},
    "data.num_workers": st.integers(-1000, -1), keys.MAX_EPOCHS: st.integers(-1000, -2),
    "model.backbone.dropout": st.one_of(st.floats(1.0, 100.0), st.floats(-100.0, -0.001)).map(lambda v: f"{v:.3f}"),
    "model.optim.lr": NEAR.map(lambda v: f"-{v}"), keys.INTER_RATIO: NEAR.map(lambda v: f"-{v}"),
    "model.optim.momentum": st.floats(1.0, 50.0).map(lambda v: f"{v:.3f}"),
    "model.optim.weight_decay": st.floats(0.001, 10.0).map(lambda v: f"-{v:.3f}"),
    "model.optim.gamma": NEAR.map(lambda v: f"-{v}"),
    "model.optim.warmup": st.floats(1.0, 10.0).map(lambda v: f"{v:.3f}"),
    "model.label_smoothing": st.floats(1.001, 10.0).map(lambda v: f"{v:.3f}"),
    "model.optim.milestones": st.lists(st.floats(1.0, 5.0), min_size=1, max_size=3).map(
        lambda v: json.dumps([0.5, *v])),
    keys.DISTANCE: st.one_of(st.integers(13, 1000), st.integers(-1000, -1)),  # demo: data.size 16, patch 4
    "trainer.limit_train_batches": st.integers(-1000, -1),
}
MUTATED = [keys.DEPTH, keys.PAIRWISE, "model.optim.lr", "data.batch_size", keys.TASK, keys.MAX_EPOCHS, keys.SEED,
           "data.video.root", "model.label_smoothing"]


def plain_word(extra: str = "") -> st.SearchStrategy[str]:
    """Words that YAML reads back as the same string (not true, null, 12, ...)."""
    return st.text(string.ascii_lowercase + extra, min_size=1, max_size=10).filter(
        lambda w: yaml.safe_load(w) == w)


@st.composite
def unknown_choice(draw):
    key = draw(st.sampled_from(sorted(CHOICES)))
    valid = {str(c) for c in CHOICES[key]}
    value = draw(plain_word("_-").filter(lambda w: w not in valid and w.lower() not in valid))
    return [f"--{key}={value}"], key, CHOICES[key]


@st.composite
def unknown_key(draw):
    """A real key with one letter dropped, changed or added in one of its parts; on the command line or in a file."""
    key = draw(st.sampled_from(MUTATED))
    parts = key.split(".")
    at = draw(st.integers(0, len(parts) - 1))
    part = parts[at]
    i = draw(st.integers(0, len(part)))
    letter = draw(st.sampled_from(string.ascii_lowercase))
    edit = draw(st.sampled_from(["drop", "change", "add"]))
    new = {"drop": part[:i] + part[i + 1:], "change": part[:i] + letter + part[i + 1:],
           "add": part[:i] + letter + part[i:]}[edit]
    assume(new != part and new)
    bad = ".".join(parts[:at] + [new] + parts[at + 1:])
    parent = ".".join(parts[:at])
    return bad, parent, part, draw(st.booleans())


@st.composite
def wrong_type(draw):
    key = draw(st.sampled_from(sorted(TYPED)))
    kind = TYPED[key]
    value = draw(plain_word() if kind != "int" else st.one_of(plain_word(), NEAR.filter(lambda v: not v.endswith(".000"))))
    return [f"--{key}={value}"], key, ()


@st.composite
def out_of_range(draw):
    key = draw(st.sampled_from(sorted(OUT_OF_RANGE)))
    return [f"--{key}={draw(OUT_OF_RANGE[key])}"], key, ()


@st.composite
def block_beyond_a_stage(draw):
    depth = draw(st.sampled_from(choices.DEPTHS))
    sizes = dict(zip(choices.STAGES, DEPTH_BLOCKS[depth][1]))
    stage = draw(st.sampled_from(choices.STAGES))
    n = sizes[stage]
    index = draw(st.one_of(st.integers(n, n + 100), st.integers(-100, -1)))
    placement = {stage: sorted({*draw(st.lists(st.integers(0, n - 1), max_size=2)), index})}
    return ([f"--{keys.DEPTH}={depth}", f"--{keys.NONLOCAL_BLOCKS}={json.dumps(placement)}"],
            keys.NONLOCAL_BLOCKS, (f"0-{n - 1}",))


@st.composite
def unknown_stage(draw):
    stage = draw(plain_word("0123456789").filter(lambda w: w not in choices.STAGES))
    return [f"--{keys.NONLOCAL_BLOCKS}={json.dumps({stage: [0]})}"], keys.NONLOCAL_BLOCKS, choices.STAGES


@st.composite
def subsampling_against_the_mode(draw):
    mode = draw(st.sampled_from(["space", "time"]))
    t, h, w = (draw(st.integers(1, 4)) for _ in range(3))
    if mode == "space":
        t = draw(st.integers(2, 4))  # pools across frames
    else:
        h = draw(st.integers(2, 4))  # pools across pixels
    return [f"--{keys.MODE}={mode}", f"--{keys.SUBSAMPLE}={t}x{h}x{w}", f"--{keys.NONLOCAL_BLOCKS}=1-block"], \
        "model.backbone.nl", ()


@st.composite
def scale_without_softmax(draw):
    from nlstudy.blocks.pairwise import FORMS, SOFTMAX_FORMS

    pairwise = draw(st.sampled_from([p for p, form in FORMS.items() if not form.softmax]))
    return [f"--{keys.PAIRWISE}={pairwise}", f"--{keys.SCALE}=true"], "model.backbone.nl", SOFTMAX_FORMS


MALFORMED_YAML = [
    "model:\n  backbone: {{depth: [{value}\n",  # an unclosed flow sequence
    "model:\n\tbackbone: {value}\n",  # a tab
    "model: {value}: {value}\n",  # a mapping value where none may be
    "- {value}\n- model\n",  # a list, not a mapping
    "model:\n  backbone:\n    depth: 18\n   width: {value}\n",  # bad indentation
    "data: [{value}}}\n",  # mismatched brackets
    "'{value}\n",  # an unclosed quote
]


@st.composite
def malformed_yaml(draw):
    template = draw(st.sampled_from(MALFORMED_YAML))
    return template.format(value=draw(plain_word()))


def bad_file(folder: Path, text: str) -> str:
    path = folder / f"bad-{hashlib.sha1(text.encode()).hexdigest()[:12]}.yaml"
    path.write_text(text)
    return str(path)


BAD_CONFIGS = st.one_of(unknown_choice(), wrong_type(), out_of_range(), block_beyond_a_stage(), unknown_stage(),
                        subsampling_against_the_mode(), scale_without_softmax())


def arguments(draw_result, folder: Path):
    """A generator's draw as (arguments, key, choices); unknown keys and malformed YAML become files."""
    kind, value = draw_result
    if kind == "config":
        return value
    if kind == "unknown":
        bad, parent, part, in_file = value
        if in_file:  # nested, as a config file writes it
            tree: object = 1
            for name in reversed(bad.split(".")):
                tree = {name: tree}
            return ["--config", bad_file(folder, yaml.safe_dump(tree))], bad, (part,)
        return [f"--{bad}=1"], bad, (part,)
    path = bad_file(folder, value)
    return ["--config", path], f"config {path}", ()


EVERY_KIND = st.one_of(st.tuples(st.just("config"), BAD_CONFIGS), st.tuples(st.just("unknown"), unknown_key()),
                       st.tuples(st.just("yaml"), malformed_yaml()))


def assert_one_line_naming(error: str, key: str, valid: tuple) -> None:
    assert "\n" not in error.strip() and error.strip(), error
    assert key in error, (key, error)
    for choice in valid:
        assert str(choice) in error, (choice, error)


# --- the tests ---------------------------------------------------------------------------------------------


@settings(GENERATED, max_examples=100)
@given(case=EVERY_KIND)
def test_generated_bad_configs_fail_in_one_line_naming_the_key(workspace, no_data, case):
    cli, runs, folder = workspace
    args, key, valid = arguments(case, folder)
    with pytest.raises(UsageError) as error:
        cli.check(["fit", "--config", DEMO, *args])
    assert_one_line_naming(str(error.value), key, valid)
    assert not runs.exists()


def fit(args: list[str]) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(["fit", *args])
    return code, err.getvalue()


GPU = st.tuples(st.just("config"), st.sampled_from(["gpu", "cuda", "mps"]).map(
    lambda a: ([f"--trainer.accelerator={a}"], "trainer.accelerator", ("--trainer.accelerator=cpu",))))


@pytest.mark.slow  # the training CLI's parser built per example (a second each)
@settings(GENERATED, max_examples=5)
@given(case=st.one_of(EVERY_KIND, GPU))
def test_nlstudy_fit_exits_2_with_one_line_and_leaves_nothing(workspace, no_data, case):
    _, runs, folder = workspace
    args, key, valid = arguments(case, folder)
    code, err = fit(["--config", DEMO, *args])
    assert code == 2 and err.count("\n") == 1 and err.startswith("nlstudy fit: error: "), err
    assert_one_line_naming(err, key, valid)
    assert not runs.exists()  # no wandb run directory


@pytest.mark.slow  # builds the paper's ResNet-50 once the way to the CPU is taken
def test_a_gpu_config_on_a_machine_without_one_says_so_before_the_data_root(workspace):
    """experiments/kinetics.yaml as a new user runs it (its data root does not exist here either)."""
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")  # the check under test is for machines without one
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ClipDataModule, "setup", read_no_data)
        code, err = fit(["--config", KINETICS])
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith("nlstudy fit: error: trainer.accelerator: the config asks for 'gpu', but this machine "
                          "has no GPU"), err
    # kinetics.yaml trains in bf16-mixed: the way to the CPU changes the precision too, and then gets as far as
    # the data root (which the GPU check came before)
    assert err.rstrip().endswith("to run on the CPU: --trainer.accelerator=cpu --trainer.precision=32-true")
    code, err = fit(["--config", KINETICS, *err.rstrip().rsplit(": ", 1)[1].split(), "--data.video.root=/absent"])
    assert code == 2 and err.splitlines()[-1] == "nlstudy fit: error: data.video.root: /absent does not exist"


# --- sweep files ---------------------------------------------------------------------------------------------

GOOD_SWEEP = {"method": "grid", "metric": {"name": "val/top1_best", "goal": "maximize"},
              "parameters": {"table": {"value": "2a"}, "seed_everything": {"values": [0]}},
              "command": ["nlstudy", "fit", "--config", DEMO, "--config", "${args_json_file}"]}


@st.composite
def bad_sweep(draw):
    """(sweep file text, what the error must name, the choices it must list)."""
    sweep = json.loads(json.dumps(GOOD_SWEEP))
    kind = draw(st.sampled_from(["yaml", "method", "goal", "run_cap", "macro", "inside", "early", "spec", "parameter"]))
    word = draw(plain_word())
    if kind == "yaml":
        return draw(malformed_yaml()), "YAML", ()
    if kind == "method":
        sweep["method"] = draw(plain_word().filter(lambda w: w not in ("grid", "random", "bayes", "custom")))
        return yaml.safe_dump(sweep), sweep["method"], ("grid", "random", "bayes")
    if kind == "goal":
        sweep["metric"]["goal"] = draw(plain_word().filter(lambda w: w not in ("maximize", "minimize")))
        return yaml.safe_dump(sweep), "metric.goal", ("maximize", "minimize")
    if kind == "run_cap":
        sweep["run_cap"] = draw(st.one_of(st.integers(-100, 0), plain_word()))
        return yaml.safe_dump(sweep), "run_cap", ()
    if kind == "macro":
        name = draw(plain_word("_").filter(lambda w: w not in MACROS and not w.startswith("envvar")))
        sweep["command"].insert(2, "${" + name + "}")
        return yaml.safe_dump(sweep), "command", tuple(MACROS)
    if kind == "inside":
        sweep["command"][-1] = f"--config={'${args_json_file}'}"
        return yaml.safe_dump(sweep), "command", ()
    if kind == "early":
        sweep["early_terminate"] = {"type": draw(plain_word().filter(lambda w: w != "hyperband")), "min_iter": 1}
        return yaml.safe_dump(sweep), "early_terminate", ("hyperband",)
    if kind == "spec":  # a parameter that is not a mapping ({value: ...}, {values: [...]}, ...)
        sweep["parameters"][keys.DEPTH] = draw(st.one_of(st.integers(), plain_word(), st.lists(st.integers())))
        return yaml.safe_dump(sweep), keys.DEPTH, ()
    kind, case = draw(st.one_of(st.tuples(st.just("unknown"), unknown_key()), st.tuples(st.just("config"), BAD_CONFIGS)))
    if kind == "unknown":
        bad, _, part, _ = case
        sweep["parameters"][bad] = {"value": 1}
        return yaml.safe_dump(sweep), f"parameter {bad}", (part,)
    args, key, valid = case
    for arg in args:  # --key=value -> a parameter with that value (as YAML reads it)
        name, _, value = arg[2:].partition("=")
        sweep["parameters"][name] = {"value": yaml.safe_load(value)}
    return yaml.safe_dump(sweep), key, valid


@settings(GENERATED, max_examples=110)
@given(case=bad_sweep())
def test_generated_bad_sweep_files_fail_in_one_line_and_leave_no_state(workspace, case, tmp_path_factory):
    cli, _, _ = workspace
    text, named, valid = case
    folder = tmp_path_factory.mktemp("sweep")
    path, runs = folder / "bad.yaml", folder / "runs"
    path.write_text(text)
    err = io.StringIO()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stderr(err), \
            contextlib.redirect_stdout(io.StringIO()):
        # `nlstudy check` in this process (the same CheckCLI) rather than a subprocess per example
        patch.setattr(sweep_check, "run_nlstudy_check", lambda arg_lists, machine=True: check_all(arg_lists, cli))
        code = sweep_cli.main([str(path), "--runs-root", str(runs)])
    err = err.getvalue()
    assert code == 2 and err.count("\n") == 1 and err.startswith(f"nlstudy sweep: {path}: "), err
    assert_one_line_naming(err, named, valid)
    assert not runs.exists()  # no sweep state, no run


def test_the_unknown_key_message_lists_the_keys_the_cli_accepts(workspace):
    cli, _, _ = workspace
    valid = cli.valid_keys("fit")
    assert {keys.DEPTH, keys.PAIRWISE, keys.MAX_EPOCHS, keys.SEED} <= set(valid)
    assert keys.unknown_key("model.backbone.nl.pairwse", valid).startswith(
        "model.backbone.nl.pairwse: unknown key (did you mean model.backbone.nl.pairwise?); valid keys under "
        "model.backbone.nl: init_std, inter_ratio, mode, pairwise,")
