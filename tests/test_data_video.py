"""Video (and image) datasets on disk: tiny videos encoded here with PyAV, decoded back through the sources.

Every frame of a test video is one flat grey level, 6 x its frame index (mod 40), encoded at a high bit rate
(decoded within +-1): with mean 0 and std 1/255 the clip's pixels read back as frame indices.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from nlstudy import keys
from nlstudy.data import DATASETS, ClipDataModule
from nlstudy.data.video import (
    VideoSource,
    VideoSpec,
    _indexed,
    clip_indices,
    decode_frames,
    eval_crops,
    eval_starts,
    frame_count,
    list_hmdb51,
    list_ucf101,
)

ROOT = Path(__file__).resolve().parents[1]
STEP = 6  # grey level per frame index
PERIOD = 40  # frame i shows grey STEP * (i mod 40): levels stay below 256
CODECS = {"mp4": "mpeg4", "avi": "mpeg4", "webm": "libvpx", "mkv": "libx264"}
RAW = dict(mean=(0.0, 0.0, 0.0), std=(1 / 255,) * 3)  # pixels back as 0..255 grey levels


def encode(path: Path, frames: int = 40, height: int = 48, width: int = 64, rate: int = 30) -> Path:
    """A video whose frame i is flat grey 6 * (i mod 40); codec from the extension; a keyframe every 8 frames."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(CODECS[path.suffix[1:]], rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.gop_size, stream.bit_rate = 8, 20_000_000
        for i in range(frames):
            image = np.full((height, width, 3), STEP * (i % PERIOD), np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def frame_ids(clip: torch.Tensor) -> list[int]:
    """(..., 3, T, H, W) raw grey clip -> the frame index of each of the T frames (of the first view)."""
    while clip.dim() > 4:
        clip = clip[0]
    return (clip.mean(dim=(0, 2, 3)) / STEP).round().int().tolist()


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """root/{train,val}/{a,b,c}/ with 2 videos each (40 frames, 48x64), every container format."""
    root = tmp_path_factory.mktemp("videos")
    formats = ["mp4", "webm", "mkv", "avi", "mp4", "webm"]
    for split in ("train", "val"):
        for c, name in enumerate("abc"):
            for v in range(2):
                encode(root / split / name / f"{name}{v}.{formats[2 * c + v]}")
    return root


def module(root: Path, dataset: str = "video_folder", frames: int = 5, size: int = 32, **video) -> ClipDataModule:
    spec = dict(root=str(root), train_scale=(32, 40), test_scale=32, sampling_rate=3, **RAW)
    return ClipDataModule(dataset, frames=frames, size=size, batch_size=2, video=VideoSpec(**{**spec, **video}))


# --- registry and configuration, no disk ------------------------------------------------------------------


@pytest.mark.parametrize("name,count", [("kinetics", 400), ("ucf101", 101), ("hmdb51", 51)])
def test_named_datasets_know_their_class_count_without_the_disk(name, count, tmp_path):
    dm = ClipDataModule(name, video=VideoSpec(root=str(tmp_path / "absent")))
    assert dm.num_classes == count
    assert dm.clip_shape == (3, 4, 16, 16)
    assert not (tmp_path / "absent").exists()


def test_registry_lists_the_video_datasets():
    assert {"synthetic", "kinetics", "ucf101", "hmdb51", "video_folder", "images"} <= set(DATASETS)


def test_video_folder_counts_class_folders_and_names_the_missing_path(folder, tmp_path):
    assert module(folder).num_classes == 3
    with pytest.raises(ValueError, match=f"data.video.root: {tmp_path / 'absent' / 'train'} does not exist"):
        module(tmp_path / "absent").num_classes


@pytest.mark.parametrize("video,message", [
    (dict(sampling_rate=0), "data.video.sampling_rate must be a positive integer"),
    (dict(train_scale=(40, 32)), "data.video.train_scale must be [min, max]"),
    (dict(train_scale=(16, 40)), "data.video.train_scale min must be at least data.size=32"),
    (dict(test_scale=16), "data.video.test_scale must be at least data.size=32"),
    (dict(test_views=0), "data.video.test_views"),
    (dict(split=4), "data.video.split must be 1, 2 or 3"),
    (dict(std=(1.0, 0.0, 1.0)), "data.video.std"),
])
def test_bad_values_fail_naming_the_key_before_the_disk(video, message, tmp_path):
    with pytest.raises(ValueError, match=message.replace("[", r"\[")):
        module(tmp_path / "absent", dataset="kinetics", **video).num_classes


def test_missing_or_unset_root_fails_at_setup_in_one_line(tmp_path):
    dm = module(tmp_path / "absent", dataset="kinetics")  # constructing and counting classes need no disk
    assert dm.num_classes == 400
    with pytest.raises(ValueError, match=f"^data.video.root: {tmp_path / 'absent'} does not exist$"):
        dm.setup("fit")
    with pytest.raises(ValueError, match="^data.video.root is not set"):
        ClipDataModule("kinetics", size=32, video=VideoSpec()).setup("validate")


def test_a_named_dataset_checks_its_class_count_at_setup(folder, tmp_path):
    with pytest.raises(ValueError, match="has 3 classes; kinetics has 400"):
        module(folder, dataset="kinetics").setup("fit")
    (tmp_path / "train" / "a").mkdir(parents=True)  # a class folder without videos
    (tmp_path / "val").mkdir()
    with pytest.raises(ValueError, match="no files ending in"):
        module(tmp_path).setup("fit")


# --- clips --------------------------------------------------------------------------------------------------


def test_train_clips_shapes_dtypes_and_randomness(folder):
    dm = module(folder)
    dm.setup("fit")
    train = dm.split("train")
    assert len(train) == 6 and sorted(set(train.listing.labels.tolist())) == [0, 1, 2]
    torch.manual_seed(0)
    clips = [train[0] for _ in range(6)]
    clip, label = clips[0]
    assert clip.shape == (3, 5, 32, 32) and clip.dtype == torch.float32 and label == 0
    starts = {frame_ids(c)[0] for c, _ in clips}
    assert len(starts) > 1  # random temporal starts
    for c, _ in clips:  # 5 frames, 3 apart, wholly inside the 40-frame video
        ids = frame_ids(c)
        assert ids == [ids[0] + 3 * k for k in range(5)] and 0 <= ids[0] <= 40 - 13
    torch.manual_seed(0)
    assert all(torch.equal(a, b[0]) for (a, _), b in zip(clips, (train[0] for _ in range(6))))


def test_train_crops_vary_in_scale_position_and_flip():
    # a spatial pattern (a gradient) shows what the crop and the flip did; the pure helpers are checked here
    from nlstudy.data.video import train_crop

    frames = torch.arange(40).repeat(48, 1)[None, :, :, None].expand(2, 48, 40, 3)  # (T, H, W, 3), value = x
    torch.manual_seed(1)
    crops = [train_crop(frames, 32, flip=True) for _ in range(20)]
    firsts = {int(c[0, 0, 0, 0]) for c in crops}
    assert len(firsts) > 2 and all(c.shape == (2, 32, 32, 3) for c in crops)
    assert any(c[0, 0, 0, 0] > c[0, 0, -1, 0] for c in crops)  # some flipped
    assert all(c[0, 0, 0, 0] < c[0, 0, -1, 0] for c in (train_crop(frames, 32, flip=False) for _ in range(20)))


def test_eval_is_deterministic_and_takes_the_centre_clip(folder):
    dm = module(folder)
    dm.setup("validate")
    val = dm.split("val")
    a, b = val[1][0], val[1][0]
    assert a.shape == (3, 5, 32, 32) and torch.equal(a, b)
    assert frame_ids(a) == [13, 16, 19, 22, 25]  # span 13, possible starts 0..27: the middle one


@pytest.mark.parametrize("index", range(6))  # one video of each container format
def test_test_views_are_uniformly_spaced_clips_times_crops(folder, index):
    dm = module(folder, test_views=3, test_crops=3)
    dm.setup("test")
    test = dm.split("test")  # no root/test: test reads root/val
    clip, label = test[index]
    assert clip.shape == (9, 3, 5, 32, 32) and label == index // 2
    views = [frame_ids(clip[v]) for v in range(0, 9, 3)]
    assert views == [[s + 3 * k for k in range(5)] for s in (4, 13, 22)]
    assert all(frame_ids(clip[v]) == frame_ids(clip[v - v % 3]) for v in range(9))  # crops share frames


def test_test_split_prefers_root_test(tmp_path):
    for split in ("train", "val", "test"):
        encode(tmp_path / split / "a" / "x.mp4", frames=20)
    dm = module(tmp_path)
    dm.setup("test")
    assert dm.split("test").listing.paths[0].endswith("test/a/x.mp4")


def test_eval_crops_are_left_centre_right_along_the_long_side():
    wide = torch.arange(64).repeat(48, 1)[None, :, :, None]  # (1, 48, 64, 1), value = x
    left, centre, right = eval_crops(wide, 32, 3)
    assert [int(c[0, 0, 0, 0]) for c in (left, centre, right)] == [0, 16, 32]
    tall = wide.transpose(1, 2)  # (1, 64, 48, 1), value = y
    top, middle, bottom = eval_crops(tall, 32, 3)
    assert [int(c[0, 0, 0, 0]) for c in (top, middle, bottom)] == [0, 16, 32]
    (only,) = eval_crops(wide, 32, 1)
    assert int(only[0, 0, 0, 0]) == 16 and only.shape == (1, 32, 32, 1)


def test_clip_index_helpers():
    assert eval_starts(40, 13, 1) == [13] and eval_starts(40, 13, 3) == [4, 13, 22]
    assert eval_starts(5, 13, 4) == [0, 0, 0, 0]  # too short: every view starts at 0 (and loops)
    assert clip_indices(40, 4, 2, 10).tolist() == [10, 12, 14, 16]
    assert clip_indices(5, 4, 2, 0).tolist() == [0, 2, 4, 1]


@pytest.mark.parametrize("ext", ["mp4", "webm"])
def test_decoding_seeks_near_the_clip_instead_of_decoding_from_the_start(tmp_path, ext):
    path = encode(tmp_path / f"long.{ext}", frames=120)  # a keyframe every 8 frames
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert frame_count(container, stream) == 120
        first = next(_indexed(container, stream, 100))[0]
        assert 92 <= first <= 100  # the keyframe at or before frame 100
        frames = decode_frames(container, stream, {101, 110, 119}, short=24)
    assert sorted(frames) == [101, 110, 119] and frames[101].shape == (24, 32, 3)
    assert [round(frames[i].mean() / STEP) for i in (101, 110, 119)] == [101 % PERIOD, 110 % PERIOD, 119 % PERIOD]


def test_short_videos_loop(tmp_path):
    for split in ("train", "val"):
        encode(tmp_path / split / "a" / "short.mkv", frames=5)
    dm = module(tmp_path, frames=4, sampling_rate=2)  # the clip spans 7 frames; the video has 5
    dm.setup("fit")
    clip, _ = dm.split("train")[0]
    assert frame_ids(clip) == [0, 2, 4, 1]
    assert frame_ids(dm.split("val")[0][0]) == [0, 2, 4, 1]


def test_normalisation_uses_mean_and_std(folder):
    dm = module(folder, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    dm.setup("validate")
    clip = dm.split("val")[0][0]
    grey = torch.tensor([13, 16, 19, 22, 25]) * STEP / 255
    torch.testing.assert_close(clip.mean(dim=(2, 3))[0], (grey - 0.5) / 0.25, atol=0.02, rtol=0)


def test_a_corrupt_video_is_skipped_with_a_warning_and_counted(tmp_path):
    for split in ("train", "val"):
        encode(tmp_path / split / "a" / "good.mp4")
        (tmp_path / split / "a" / "bad.mp4").write_bytes(b"not a video" * 100)  # sorted first
    dm = module(tmp_path)
    dm.setup("fit")
    val = dm.split("val")
    with pytest.warns(RuntimeWarning, match="skipping unreadable .*bad.mp4"):
        clip, label = val[0]  # bad.mp4: eval moves on to the next video
    assert frame_ids(clip) == [13, 16, 19, 22, 25] and val.skipped == [val.listing.paths[0]]
    with pytest.warns(RuntimeWarning):
        batches = list(DataLoader(dm.split("train"), batch_size=2))
    assert batches[0][0].shape == (2, 3, 5, 32, 32) and len(dm.split("train").skipped) >= 1
    (tmp_path / "train" / "a" / "good.mp4").write_bytes(b"")  # nothing readable left
    with pytest.raises(RuntimeError, match="^train: 10 files read in a row were all unreadable"):
        dm.split("train")[0]  # (the split warned at its first unreadable file, above; tests/test_data_faults.py)


@pytest.mark.slow  # starts a DataLoader worker process
def test_loader_with_a_worker_batches_multi_view_clips(folder):
    dm = module(folder, test_views=2, test_crops=1)
    dm.num_workers = 1  # containers are opened in the worker
    dm.setup("test")
    loader = dm.test_dataloader()
    clips, labels = next(iter(loader))
    assert clips.shape == (2, 2, 3, 5, 32, 32) and labels.tolist() == [0, 0]
    del loader


# --- UCF101 / HMDB51 split files ----------------------------------------------------------------------------


@pytest.fixture()
def ucf(tmp_path) -> Path:
    splits = tmp_path / "ucfTrainTestlist"
    splits.mkdir()
    (splits / "classInd.txt").write_text("1 ApplyEyeMakeup\r\n2 HandstandPushups\r\n3 YoYo\r\n")
    (splits / "trainlist01.txt").write_text(
        "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1\n"
        "HandStandPushups/v_HandStandPushups_g08_c01.avi 2\n"  # the official files' case quirk
        "YoYo/v_YoYo_g08_c01.avi 3\n")
    (splits / "testlist01.txt").write_text("YoYo/v_YoYo_g01_c01.avi\nApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi\n")
    (splits / "trainlist02.txt").write_text("YoYo/v_YoYo_g01_c01.avi 3\n")
    for name in ("ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01", "HandStandPushups/v_HandStandPushups_g08_c01",
                 "YoYo/v_YoYo_g08_c01", "YoYo/v_YoYo_g01_c01", "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01"):
        encode(tmp_path / f"{name}.avi", frames=20)
    return tmp_path


def test_ucf101_split_files(ucf):
    train = list_ucf101(VideoSpec(root=str(ucf)), "train")
    assert train.classes == ("ApplyEyeMakeup", "HandstandPushups", "YoYo")
    assert train.labels.tolist() == [0, 1, 2]
    assert train.paths[1] == str(ucf / "HandStandPushups" / "v_HandStandPushups_g08_c01.avi")
    test = list_ucf101(VideoSpec(root=str(ucf)), "test")
    assert test.labels.tolist() == [2, 0] and list_ucf101(VideoSpec(root=str(ucf)), "val").paths.tolist() == test.paths.tolist()
    assert list_ucf101(VideoSpec(root=str(ucf), split=2), "train").labels.tolist() == [2]
    with pytest.raises(ValueError, match="data.video.split_dir: .*testlist02.txt does not exist"):
        list_ucf101(VideoSpec(root=str(ucf), split=2), "test")
    with pytest.raises(ValueError, match="data.video.split_dir: .*elsewhere does not exist"):
        list_ucf101(VideoSpec(root=str(ucf), split_dir=str(ucf / "elsewhere")), "train")
    with pytest.raises(ValueError, match="has 3 classes; ucf101 has 101"):
        module(ucf, dataset="ucf101").setup("fit")
    source = VideoSource("ucf101", "ucf101", VideoSpec(root=str(ucf), train_scale=(32, 40), test_scale=32, **RAW),
                         frames=4, size=32, num_classes=3)
    clip, label = source.dataset("test")[0]  # the defaults: 10 views x 3 crops
    assert clip.shape == (30, 3, 4, 32, 32) and label == 2
    assert frame_ids(clip[0]) == [0, 2, 4, 6] and frame_ids(clip[27]) == [12, 14, 16, 18]  # start 13 * 19 // 20


@pytest.fixture()
def hmdb(tmp_path) -> Path:
    splits = tmp_path / "testTrainMulti_7030_splits"
    splits.mkdir()
    (splits / "brush_hair_test_split1.txt").write_text(
        "April_09_brush_hair_u_nm_np1_ba_goo_0.avi 1 \nApril_09_brush_hair_u_nm_np1_ba_goo_1.avi 2 \n"
        "April_09_brush_hair_u_nm_np1_ba_goo_2.avi 0 \n")
    (splits / "cartwheel_test_split1.txt").write_text("Bodenturnen_cartwheel_f_cm_np1_le_med_0.avi 1 \n")
    (splits / "cartwheel_test_split2.txt").write_text("Bodenturnen_cartwheel_f_cm_np1_le_med_0.avi 2 \n")
    (splits / "brush_hair_test_split2.txt").write_text("April_09_brush_hair_u_nm_np1_ba_goo_0.avi 2 \n")
    encode(tmp_path / "brush_hair" / "April_09_brush_hair_u_nm_np1_ba_goo_0.avi", frames=20)
    encode(tmp_path / "brush_hair" / "April_09_brush_hair_u_nm_np1_ba_goo_1.avi", frames=20)
    return tmp_path


def test_hmdb51_split_files(hmdb):
    spec = VideoSpec(root=str(hmdb))
    train = list_hmdb51(spec, "train")
    assert train.classes == ("brush_hair", "cartwheel")  # class names keep their underscores
    assert train.labels.tolist() == [0, 1]
    assert train.paths.tolist() == [str(hmdb / "brush_hair" / "April_09_brush_hair_u_nm_np1_ba_goo_0.avi"),
                                    str(hmdb / "cartwheel" / "Bodenturnen_cartwheel_f_cm_np1_le_med_0.avi")]
    test = list_hmdb51(spec, "test")  # 2 = test; 0 (unused) is in neither
    assert test.paths.tolist() == [str(hmdb / "brush_hair" / "April_09_brush_hair_u_nm_np1_ba_goo_1.avi")]
    assert list_hmdb51(spec, "val").paths.tolist() == test.paths.tolist()
    two = list_hmdb51(VideoSpec(root=str(hmdb), split=2), "test")
    assert two.labels.tolist() == [0, 1]
    with pytest.raises(ValueError, match="data.video.split_dir: no <class>_test_split3.txt files"):
        list_hmdb51(VideoSpec(root=str(hmdb), split=3), "train")
    with pytest.raises(ValueError, match="data.video.root: .*elsewhere/brush_hair/April.* does not exist"):
        (hmdb / "elsewhere").mkdir()  # a wrong root: the first listed video is not there
        list_hmdb51(VideoSpec(root=str(hmdb / "elsewhere"), split_dir=str(hmdb / "testTrainMulti_7030_splits")), "train")
    with pytest.raises(ValueError, match="data.video.split_dir: .* lists no videos"):
        list_hmdb51(VideoSpec(root=str(hmdb), split=2), "train")
    with pytest.raises(ValueError, match="has 2 classes; hmdb51 has 51"):
        module(hmdb, dataset="hmdb51").setup("fit")


# --- images --------------------------------------------------------------------------------------------------


def test_images_are_one_frame_clips(tmp_path):
    from PIL import Image

    for split in ("train", "val"):
        for c, name in enumerate(("cat", "dog")):
            (tmp_path / split / name).mkdir(parents=True)
            Image.new("RGB", (64, 48), (60 * c, 0, 0)).save(tmp_path / split / name / "x.jpg")
    dm = module(tmp_path, dataset="images", frames=1, test_crops=3)
    assert dm.num_classes == 2
    dm.setup("fit")
    clip, label = dm.split("train")[1]
    assert clip.shape == (3, 1, 32, 32) and label == 1 and abs(float(clip[0].mean()) - 60) < 3
    dm.setup("test")
    assert dm.split("test")[0][0].shape == (3, 3, 1, 32, 32)  # 1 view x 3 crops
    with pytest.raises(ValueError, match="data.frames must be 1 for data.dataset: images"):
        module(tmp_path, dataset="images", frames=4).num_classes


# --- a real run ----------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_fit_on_a_video_folder_logs_an_offline_run(folder, tmp_path):
    from nlstudy.report.offline import read_offline

    args = [
        "fit", "--seed_everything=0", "--trainer.accelerator=cpu", "--trainer.max_epochs=1", "--trainer.max_steps=2",
        "--trainer.enable_checkpointing=false", "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false", "--trainer.num_sanity_val_steps=0",
        "--model.backbone.depth=18", "--model.backbone.width=4", "--model.backbone.conv1_stride=[1, 2, 2]",
        "--model.backbone.pool1=false", "--model.backbone.pool2=false", "--model.backbone.dropout=0",
        "--data.dataset=video_folder", f"--data.video.root={folder}", "--data.frames=4", "--data.size=32",
        "--data.batch_size=3", "--data.video.train_scale=[32, 40]", "--data.video.test_scale=32",
        "--data.video.test_views=2", "--data.video.test_crops=3",
    ]
    env = {**os.environ, "WANDB_MODE": "offline", "NLSTUDY_RUNS_DIR": str(tmp_path), "NLSTUDY_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-m", "nlstudy", *args], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    runs = read_offline(tmp_path).runs
    assert len(runs) == 1
    run = runs.iloc[0]
    assert run["state"] == "finished" and run[keys.DATASET] == "video_folder"
    assert run["data.video.test_views"] == 2 and run[keys.INPUT_SHAPE] == "3x4x32x32"
    assert 0 <= run[keys.TEST_TOP1] <= 100 and 0 <= run[keys.VAL_TOP1] <= 100


# --- Kinetics from the official annotation CSVs ----------------------------------------------------------------

KINETICS_HEADER = "label,youtube_id,time_start,time_end,split\n"


@pytest.fixture(scope="module")
def kinetics(tmp_path_factory) -> tuple[Path, Path]:
    """(clips root, CSV folder): 2 classes; train lists 3 clips (one not downloaded), flat in root/train and
    under a label folder; val lists 2 under label folders; test.csv has no labels (as Kinetics-600/700's)."""
    base = tmp_path_factory.mktemp("kinetics")
    root, csvs = base / "clips", base / "annotations"
    csvs.mkdir()
    (csvs / "train.csv").write_text(KINETICS_HEADER + "abseiling,aaa,10,20,train\n"
                                    '"air drumming",bbb,0,10,train\nabseiling,ccc,5.0,15.0,train\n')
    (csvs / "validate.csv").write_text(KINETICS_HEADER + '"air drumming",ddd,30,40,validate\n'
                                       "abseiling,eee,100,110,validate\n")
    (csvs / "test.csv").write_text("youtube_id,time_start,time_end,split\nfff,0,10,test\n")
    for path in ("train/aaa_000010_000020.mp4", "train/air drumming/bbb_000000_000010.mp4",
                 "val/air_drumming/ddd_000030_000040.mp4", "val/abseiling/eee_000100_000110.mp4"):
        encode(root / path, frames=20)
    return root, csvs


def test_kinetics_annotations_list_clips_by_name_and_count_the_missing(kinetics):
    root, csvs = kinetics
    dm = module(root, dataset="kinetics", frames=4, sampling_rate=2, annotations=str(csvs))
    assert dm.num_classes == 2  # from the train CSV: Kinetics-400/600/700 alike
    with pytest.warns(RuntimeWarning) as caught:
        dm.setup("fit")
    lines = [str(w.message) for w in caught if "kinetics" in str(w.message)]
    assert len(lines) == 1 and " train: 1 of 3 clips of " in lines[0] and "(e.g. ccc_000005_000015); left out" in lines[0]
    train, val = dm.split("train"), dm.split("val")
    assert train.listing.classes == ("abseiling", "air drumming")
    assert [Path(p).name for p in train.listing.paths] == ["aaa_000010_000020.mp4", "bbb_000000_000010.mp4"]
    assert train.listing.labels.tolist() == [0, 1] and val.listing.labels.tolist() == [1, 0]
    clip, label = val[0]
    assert clip.shape == (3, 4, 32, 32) and label == 1 and frame_ids(clip) == [6, 8, 10, 12]
    assert train[1][0].shape == (3, 4, 32, 32)
    with pytest.warns(RuntimeWarning, match="test.csv has no labels; test reads .*validate.csv"):
        dm.setup("test")
    assert dm.split("test").listing.paths.tolist() == val.listing.paths.tolist()
    assert dm.split("test")[0][0].shape == (30, 3, 4, 32, 32)  # the defaults: 10 views x 3 crops


def test_kinetics_annotations_fail_in_one_line(kinetics, tmp_path):
    root, csvs = kinetics
    with pytest.raises(ValueError, match=f"^data.video.annotations: {tmp_path / 'absent'} does not exist"):
        module(root, dataset="kinetics", annotations=str(tmp_path / "absent")).num_classes
    with pytest.raises(ValueError, match="^data.video.annotations is read only by data.dataset: kinetics"):
        module(root, annotations=str(csvs)).num_classes
    with pytest.raises(ValueError, match="^data.video.annotation_files must name 3 files"):
        module(root, dataset="kinetics", annotations=str(csvs), annotation_files=("train.csv",)).num_classes
    for name, text in (("train.csv", "youtube_id,time_start,time_end\n"), ("validate.csv", KINETICS_HEADER + "yodel,x,0,10,v\n"),
                       ("other.csv", KINETICS_HEADER + "abseiling,zzz,0,10,validate\n")):
        (tmp_path / name).write_text(text)
    with pytest.raises(ValueError, match="train.csv has no column 'label'|train.csv has no labelled rows"):
        module(root, dataset="kinetics", annotations=str(tmp_path)).num_classes
    (tmp_path / "train.csv").write_text((csvs / "train.csv").read_text())
    dm = module(root, dataset="kinetics", annotations=str(tmp_path))
    with pytest.raises(ValueError, match="validate.csv has label 'yodel', not in .*train.csv"):
        dm.split("val")
    dm = module(root, dataset="kinetics", annotations=str(tmp_path), annotation_files=("train.csv", "other.csv", "t.csv"))
    with pytest.raises(ValueError, match="^data.video.root: none of the 1 clips of .*other.csv is under .*e.g. zzz_000000_000010.mp4"):
        dm.split("val")
    (tmp_path / "other.csv").write_text(KINETICS_HEADER + "abseiling,zzz,start,10,validate\n")
    with pytest.raises(ValueError, match="other.csv line 2 has no numeric time_start and time_end"):
        dm.split("val")


# --- frame-rate resampling -------------------------------------------------------------------------------------


@pytest.mark.parametrize("rate,expected", [(60, [14, 16, 18, 20, 22]), (15, [18, 19, 19, 20, 20]), (30, [17, 18, 19, 20, 21])])
def test_target_fps_picks_frames_at_the_target_rate(tmp_path, rate, expected):
    encode(tmp_path / "train" / "a" / "x.mp4", frames=40, rate=rate)
    encode(tmp_path / "val" / "a" / "x.mp4", frames=40, rate=rate)
    dm = module(tmp_path, sampling_rate=1, target_fps=30)
    dm.setup("validate")
    # at 30 fps the 40 frames last 20 (60 fps), 80 (15 fps) or 40 target frames; the centre 5-frame clip starts at
    # 7, 37 or 17, shown by the video's frames floor(k * fps / 30)
    assert frame_ids(dm.split("val")[0][0]) == expected


def test_target_fps_helpers_and_checks(tmp_path):
    from nlstudy.data.video import resampled, resampled_count

    assert resampled_count(300, 29.97, 30) == 301 and resampled_count(40, 60, 30) == 20
    assert resampled(np.arange(4), 60, 30, 40).tolist() == [0, 2, 4, 6]
    assert resampled(np.array([299, 300]), 29.97, 30, 300).tolist() == [298, 299]  # never past the last frame
    assert module(tmp_path / "absent", dataset="kinetics", target_fps=30).num_classes == 400
    with pytest.raises(ValueError, match="^data.video.target_fps must be 0"):
        module(tmp_path / "absent", dataset="kinetics", target_fps=-1).num_classes
    with pytest.raises(ValueError, match="^data.video.target_fps is read only by data.dataset: kinetics, ucf101"):
        module(tmp_path / "absent", dataset="images", frames=1, target_fps=30).num_classes


# --- the test loader's batch size ------------------------------------------------------------------------------


def test_test_batch_size_sets_the_test_loader_only(folder):
    dm = module(folder, test_views=2, test_crops=1)
    assert dm.test_batch_size == 2  # 0 (the default): batch_size
    dm = ClipDataModule("video_folder", frames=5, size=32, batch_size=4, test_batch_size=1,
                        video=VideoSpec(root=str(folder), train_scale=(32, 40), test_scale=32, sampling_rate=3,
                                        test_views=2, test_crops=1, **RAW))
    dm.setup("test")
    clips, labels = next(iter(dm.test_dataloader()))
    assert clips.shape == (1, 2, 3, 5, 32, 32) and labels.tolist() == [0]
    dm.setup("validate")
    assert dm.val_dataloader().batch_size == 4 and dm.test_dataloader().batch_size == 1
    with pytest.raises(ValueError, match="^data.test_batch_size must be 0 .batch_size. or a positive integer, got -1"):
        ClipDataModule(test_batch_size=-1)
