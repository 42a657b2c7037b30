"""Files people and other tools write (issue 22): encodings (a Latin-1 / cp1252 byte, a BOM), CRLF line ends,
a key given twice, at each place the project reads one (sweep files, experiment configs, Kinetics CSVs, list
files); and every file the project writes, whole or not at all (nlstudy.files)."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest
import yaml

from nlstudy import files
from nlstudy.sweep import cli as sweep_cli

ROOT = Path(__file__).resolve().parents[1]
TOY = ROOT / "tests" / "fixtures" / "sweep" / "toy_run.py"
SWEEP = textwrap.dedent(f"""\
    # a toy sweep: its command does not call nlstudy, so --check reads and validates the file only
    method: grid
    command: [python, {TOY}, "${{args_json_file}}"]
    parameters:
      table: {{value: toy}}
      seed_everything: {{values: [0, 1]}}
      note: {{value: plain}}
    """)


# --- nlstudy.files ------------------------------------------------------------------------------------------

def test_text_from_editors_reads_and_a_latin1_byte_is_named_with_its_line(tmp_path):
    path = tmp_path / "x.txt"
    path.write_bytes("\ufeffa: 1\r\nb: é\r\n".encode())
    assert files.read_text(path) == "a: 1\r\nb: é\r\n".replace("\ufeff", "")  # BOM dropped; CRLF to the parser
    assert files.load_yaml(files.read_text(path)) == {"a": 1, "b": "é"}
    path.write_bytes("a: 1\nb: caf\u00e9\n".encode("latin-1"))
    with pytest.raises(files.FileProblem) as error:
        files.read_text(path)
    assert error.value.problem == ("not UTF-8 text (byte 0xe9 at line 2, column 7; saved as Latin-1 or "
                                   "Windows-1252?): save it as UTF-8")
    assert str(error.value) == f"{path}: {error.value.problem}"


@pytest.mark.parametrize("text,key,lines", [
    ("a: 1\nb: 2\na: 3\n", "a", (1, 3)),
    ("model:\n  x: 1\n  y: 2\n  x: 3\n", "x", (2, 4)),
    ('{"a": 1, "a": 2}', "a", (1, 1)),  # JSON is YAML: json.loads keeps the last too
])
def test_a_key_given_twice_is_refused_naming_both_lines(text, key, lines):
    assert yaml.safe_load(text) is not None  # PyYAML alone takes the last value
    with pytest.raises(files.DuplicateKey) as error:
        files.load_yaml(text)
    assert f"key {key!r} is given twice (lines {lines[0]} and {lines[1]}); keep one" in str(error.value)


def test_merge_keys_may_still_be_overridden():
    assert files.load_yaml("base: &b {x: 1, y: 2}\nrun:\n  <<: *b\n  x: 3\n") == {
        "base": {"x": 1, "y": 2}, "run": {"x": 3, "y": 2}}


def test_a_write_that_fails_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "table.md"
    files.write_text(path, "old\n")
    for error in (OSError(28, "No space left on device"), KeyboardInterrupt()):
        with pytest.raises(type(error)):
            with files.replacing(path) as tmp:
                tmp.write_text("half of the new")
                raise error
        assert path.read_text() == "old\n" and os.listdir(tmp_path) == ["table.md"]
    with pytest.raises(OSError) as error:  # a full disk: the error names the file, not its temporary
        with files.replacing(path) as tmp:
            raise OSError(28, "No space left on device", str(tmp))
    assert error.value.filename == str(path) and error.value.errno == 28
    files.copy(path, tmp_path / "copy.md")
    assert (tmp_path / "copy.md").read_text() == "old\n"


# --- sweep files (case 5) -----------------------------------------------------------------------------------

def check(path: Path, capsys) -> tuple[int, str, str]:
    code = sweep_cli.main([str(path), "--check", "--runs-root", str(path.parent / "runs")])
    out, err = capsys.readouterr()
    return code, out, err


def test_a_sweep_file_from_another_editor_reads_or_is_refused_in_one_line(tmp_path, capsys):
    """A BOM and CRLF line ends read as the file means; a Latin-1 byte and a key given twice (the last value
    silently winning, before) are refused in one line naming the file and the lines; nothing is run."""
    path = tmp_path / "bom_crlf.yaml"
    path.write_bytes(("\ufeff" + SWEEP).replace("\n", "\r\n").encode())
    code, out, err = check(path, capsys)
    assert code == 0 and "ok, grid sweep, 2 run(s)" in out, out + err

    latin = tmp_path / "latin1.yaml"
    latin.write_bytes(SWEEP.replace("plain", "caf\u00e9").encode("latin-1"))
    code, out, err = check(latin, capsys)
    line, text = next((i, l) for i, l in enumerate(SWEEP.splitlines(), 1) if "plain" in l)
    column = text.index("plain") + len("caf") + 1
    assert code == 2 and err == (f"nlstudy sweep: {latin}: not UTF-8 text (byte 0xe9 at line {line}, column {column}; "
                                 "saved as Latin-1 or Windows-1252?): save it as UTF-8\n"), err

    twice = tmp_path / "twice.yaml"
    twice.write_text(SWEEP + "  seed_everything: {values: [5]}\n")
    code, out, err = check(twice, capsys)
    first = next(i for i, l in enumerate(SWEEP.splitlines(), 1) if "seed_everything" in l)
    last = len(SWEEP.splitlines()) + 1
    assert code == 2 and err.count("\n") == 1 and err.startswith(f"nlstudy sweep: {twice}: "), err
    assert f"key 'seed_everything' is given twice (lines {first} and {last}); keep one" in err
    assert not (tmp_path / "runs").exists()


# --- the data's list files and Kinetics CSVs (case 6) --------------------------------------------------------

def kinetics_csvs(folder: Path, encoding: str = "utf-8", bom: bool = False) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rows = "label,youtube_id,time_start,time_end,split\r\n" + '"caf\u00e9 dancing",aaa,0,10,train\r\n'
    for name in ("train.csv", "validate.csv", "test.csv"):
        (folder / name).write_bytes((b"\xef\xbb\xbf" if bom else b"") + rows.encode(encoding))
    return folder


def test_a_kinetics_csv_from_a_spreadsheet_reads_or_fails_naming_the_key_and_file(tmp_path):
    from nlstudy.data import ClipDataModule
    from nlstudy.data.video import VideoSpec

    def classes(folder: Path):
        return ClipDataModule("kinetics", video=VideoSpec(root=str(tmp_path), annotations=str(folder))).num_classes

    assert classes(kinetics_csvs(tmp_path / "utf8-bom", bom=True)) == 1  # "CSV UTF-8": BOM, CRLF
    with pytest.raises(ValueError) as error:
        classes(kinetics_csvs(tmp_path / "cp1252", encoding="cp1252"))
    assert str(error.value) == (f"data.video.annotations: {tmp_path / 'cp1252' / 'train.csv'} is not UTF-8 text "
                                "(byte 0xe9 at line 2, column 5; saved as Latin-1 or Windows-1252?): save it as UTF-8")


@pytest.mark.slow  # builds the training CLI in this process (nothing trains)
def test_the_training_command_names_the_csv_and_refuses_a_config_with_a_key_twice(tmp_path, capsys, monkeypatch):
    """`nlstudy fit` with a cp1252 Kinetics CSV, then with an experiment config that gives a key twice: one line
    each, exit 2, before anything is logged."""
    from nlstudy.lit.entry import train_main

    monkeypatch.setenv("NLSTUDY_RUNS_DIR", str(tmp_path / "runs"))
    demo = str(ROOT / "experiments" / "demo.yaml")
    csvs = kinetics_csvs(tmp_path / "cp1252", encoding="cp1252")
    assert train_main(["fit", "--config", demo, "--data.dataset=kinetics", f"--data.video.root={tmp_path}",
                       f"--data.video.annotations={csvs}"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"data.video.annotations: {csvs / 'train.csv'} is not UTF-8 text" in err, err

    config = tmp_path / "twice.yaml"
    config.write_text("seed_everything: 1\ntrainer:\n  max_epochs: 1\nseed_everything: 2\n")
    assert train_main(["fit", "--config", demo, "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert err == (f"nlstudy fit: error: config {config}: not valid YAML (line 4, column 1): key 'seed_everything' "
                   "is given twice (lines 1 and 4); keep one\n"), err
    latin = tmp_path / "latin1.yaml"
    latin.write_bytes("# r\u00e9sum\u00e9\nseed_everything: 1\n".encode("latin-1"))
    assert train_main(["fit", "--config", demo, "--config", str(latin)]) == 2
    assert "not UTF-8 text (byte 0xe9 at line 1, column 4" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_a_list_file_with_a_bom_and_crlf_reads_as_written(tmp_path):
    from nlstudy.data.video import read_lines

    path = tmp_path / "trainlist01.txt"
    path.write_bytes(b"\xef\xbb\xbfApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1\r\nArchery/v_Archery_g01_c01.avi 3\r\n")
    assert read_lines(path, "data.video.split_dir") == ["ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1",
                                                        "Archery/v_Archery_g01_c01.avi 3"]
    path.write_bytes("Caf\u00e9/v.avi 1\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"^data.video.split_dir: .* is not a text file \(not UTF-8 text \(byte 0xe9"):
        read_lines(path, "data.video.split_dir")


def test_a_checkpoint_whose_write_is_cut_leaves_the_last_good_one(tmp_path):
    """The run's checkpoint IO (lit.callbacks.WholeCheckpointIO): Lightning's own truncates last.ckpt and then
    writes it; a run killed meanwhile lost the checkpoint its retry resumes from."""
    import torch
    from pytorch_lightning.plugins import TorchCheckpointIO

    from nlstudy.lit.callbacks import WholeCheckpointIO

    class CutShort(TorchCheckpointIO):
        def save_checkpoint(self, checkpoint, path, storage_options=None):
            Path(path).write_bytes(b"PK\x03\x04 half a checkpoint")
            raise KeyboardInterrupt  # SIGTERM, as interrupts.raising delivers it, in the middle of the write

    path = tmp_path / "checkpoints" / "last.ckpt"
    WholeCheckpointIO(TorchCheckpointIO()).save_checkpoint({"epoch": 3}, path)
    with pytest.raises(KeyboardInterrupt):
        WholeCheckpointIO(CutShort()).save_checkpoint({"epoch": 4}, path)
    assert torch.load(path, weights_only=True) == {"epoch": 3} and os.listdir(path.parent) == ["last.ckpt"]
    assert WholeCheckpointIO(TorchCheckpointIO()).load_checkpoint(path, weights_only=True) == {"epoch": 3}


def test_a_sweep_state_copied_halfway_is_refused_in_one_line(tmp_path, capsys):
    """The sweep's own sweep.json (written whole) cut short by a copy of the runs root: one line naming it."""
    from nlstudy.sweep.spec import load
    from nlstudy.sweep.state import SweepState

    path, root = tmp_path / "toy.yaml", tmp_path / "runs"
    path.write_text(SWEEP)
    state = SweepState(root, load(path).default_id)
    state.create(SWEEP, {"fingerprint": load(path).fingerprint})
    state.info_file.write_text(state.info_file.read_text()[:20])
    assert sweep_cli.main([str(path), "--runs-root", str(root)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"nlstudy sweep: {state.info_file} cannot be read ("), err
    assert "copied halfway" in err
