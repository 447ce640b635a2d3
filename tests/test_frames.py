"""Keyframes: the pure selection on known vectors, then real videos spliced from real photos,
the CLI in-process and the contact sheet in a real browser."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from agcurate.cli import app
from agcurate.ops.keyframes import select_keyframes
from videokit import SHARP_AT, pan, photo, story, write_video

# --- the pure function on hand-made vectors --------------------------------------------------------


def _run(rng, base: np.ndarray, n: int, noise: float = 0.05) -> np.ndarray:
    v = base[None, :] + rng.normal(0, noise, (n, base.size))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _table(vectors, sharp=None):
    n = len(vectors)
    return pd.DataFrame({"frame": np.arange(n) * 5, "time_s": np.arange(n) * 0.5,
                         "sharpness": np.ones(n) if sharp is None else sharp})


def test_select_keyframes_known_structure():
    rng = np.random.default_rng(0)
    e = np.eye(16)
    parts = [("A", e[0]), ("B", e[1]), ("hold", e[2]), ("C", e[3]), ("A2", e[0]), ("D", e[4])]
    vecs = np.concatenate([_run(rng, b, 6) for _, b in parts])
    names = np.repeat([p for p, _ in parts], 6)
    sharp = np.ones(len(vecs))
    sharp[2 * 6 + 4] = 50.0  # the one sharp frame of the hold
    sharp[0 * 6 + 2] = 9.0   # ... and of shot A
    res = select_keyframes(vecs, _table(vecs, sharp), threshold=0.75)
    kept = names[res["is_keyframe"].to_numpy()].tolist()
    assert kept == ["A", "B", "hold", "C", "D"]                    # one each, nothing from A again
    assert res.loc[res["is_keyframe"], "frame"].tolist()[0] == 2 * 5      # sharpest of A
    assert res.loc[res["is_keyframe"], "frame"].tolist()[2] == (2 * 6 + 4) * 5
    a2 = res[names == "A2"]
    assert a2["is_repeat"].all() and (a2["shot"] == 0).all()          # compared with A, four runs back
    assert res["segment"].tolist() == sorted(res["segment"].tolist())
    assert res.loc[res["is_keyframe"], "score"].min() > 0.5               # keyframes are far from each other
    assert res.loc[~res["is_keyframe"], "score"].max() < 0.25             # dropped frames are near a keyframe


def test_select_keyframes_slow_drift_keeps_both_ends():
    # a camera panning from one scene to another: no cut, but the end shows something new
    t = np.linspace(0, np.pi / 2, 30)
    vecs = np.stack([np.cos(t), np.sin(t)] + [np.zeros(30)] * 6, axis=1)
    res = select_keyframes(vecs, _table(vecs), threshold=0.9)
    assert 2 <= res["is_keyframe"].sum() <= 4
    assert res.loc[~res["is_keyframe"], "score"].max() < 0.15             # every frame is near some keyframe


def test_look_changes_adds_one_frame_per_new_look_of_an_untracked_stretch():
    """Looks A (kept), B, A again, C: B and C each get their sharpest frame; the return to A none."""
    from agcurate.ops.keyframes import look_changes

    rng = np.random.default_rng(3)
    a, b, c = np.eye(8)[:3]
    v = np.concatenate([_run(rng, a, 10), _run(rng, b, 10), _run(rng, a, 10), _run(rng, c, 10)])
    sharp = np.ones(40)
    sharp[[13, 36]] = 5.0
    kept = np.zeros(40, bool)
    kept[0] = True
    assert look_changes(v, sharp, kept) == [13, 36]
    kept[14] = True  # B already has a keyframe (e.g. a new object): only C is added
    assert look_changes(v, sharp, kept) == [36]
    assert look_changes(v[:10], sharp[:10], kept[:10]) == []  # one look: nothing to add
    flash = np.concatenate([v[:10], v[10:11], v[:10]])  # B for one frame (1 s): no new look at 2 s
    assert look_changes(flash, np.ones(21), np.arange(21) == 0, min_s=2.0) == []
    assert look_changes(flash, np.ones(21), np.arange(21) == 0, min_s=1.0) == [10]
    assert look_changes(v[:0], sharp[:0], kept[:0]) == []


def _walk_analysis(camera: str):
    """A 12 s stretch of one video as analyse_views would give it: its first frame kept, the camera
    ``camera``; the sampled frames' embeddings show field A for 6 s, then field B."""
    from agcurate.items import Item
    from agcurate.workflows.frames import ViewAnalysis

    rng = np.random.default_rng(0)
    n = 120
    items = [Item(path="/videos/walk.mp4", kind="frame", frame=3 * k, time_s=0.1 * k) for k in range(n)]
    looks = [rng.integers(0, 255, (90, 160), dtype=np.uint8) for _ in range(2)]
    grey = [np.roll(looks[int(k >= 60)], 2 * (k % 5), axis=1) for k in range(n)]
    table = pd.DataFrame({"time_s": [it.time_s for it in items], "frame": [it.frame for it in items],
                          "segment": np.zeros(n, np.int64), "camera": [camera] * n,
                          "is_keyframe": np.arange(n) == 0, "reason": ["new shot"] + [""] * (n - 1),
                          "overlap": np.zeros(n), "coverage": np.ones(n)})
    sampled = items[::5]  # 2 fps
    vectors = np.concatenate([_run(rng, np.eye(8)[int(k >= 60)], 1) for k in range(0, n, 5)])
    sharp = np.ones(n)
    sharp[[77, 80]] = [3.0, 2.0]
    return sampled, vectors, ViewAnalysis(items=items, grey=grey, sharpness=sharp, table=table)


def test_an_untracked_walk_gets_a_frame_where_its_look_changes():
    """The fallback for footage whose motion cannot be measured: the stretch is kept as one view,
    plus a ``new look`` frame (the sharpest of the new look, overlap unknown) where its embeddings
    change. A fixed camera (``static``) keeps its own rule: no frame for a change of look."""
    from agcurate.workflows.frames import view_keyframes

    sampled, vectors, analysis = _walk_analysis("untracked")
    table, _ = view_keyframes(sampled, vectors, analysis=analysis)
    kept = table[table["is_keyframe"]]
    assert kept["frame"].tolist() == [0, 3 * 77]
    assert kept["reason"].tolist() == ["new shot", "new look"]
    assert np.isnan(kept["overlap"].iat[1])
    sampled, vectors, analysis = _walk_analysis("static")
    table, _ = view_keyframes(sampled, vectors, analysis=analysis)
    assert table["is_keyframe"].sum() == 1


def test_select_keyframes_edge_cases():
    empty = select_keyframes(np.zeros((0, 8), np.float32), _table(np.zeros((0, 8))))
    assert list(empty.columns) == ["frame", "time_s", "segment", "shot", "is_repeat", "is_keyframe", "score"]
    assert len(empty) == 0
    one = select_keyframes(np.eye(8)[:1], pd.DataFrame({"frame": [7], "time_s": [0.7]}))
    assert one["is_keyframe"].tolist() == [True] and one["score"].tolist() == [1.0]
    # unsorted input rows: the result follows the input order
    rng = np.random.default_rng(1)
    vecs = np.concatenate([_run(rng, np.eye(8)[0], 3), _run(rng, np.eye(8)[1], 3)])
    tab = _table(vecs).iloc[::-1].reset_index(drop=True)
    res = select_keyframes(vecs[::-1], tab)
    assert res["frame"].tolist() == tab["frame"].tolist()
    assert res["is_keyframe"].sum() == 2 and res.loc[res["frame"] == 0, "segment"].item() == 0


# --- real videos spliced from real photos -------------------------------------------------------------

@pytest.fixture(scope="module")
def story_video(tmp_path_factory):
    """Shots A, B, a blurred static hold with one sharp frame, C, A again, D (6 s at 10 fps)."""
    return story(tmp_path_factory.mktemp("story") / "story.mp4")


@pytest.fixture(scope="module")
def warm_store(tmp_path_factory, story_video):
    """A store that already holds the story's frames sampled at 5 fps (embedded once per module)."""
    import agcurate
    from agcurate.sources import SourceOptions

    root = tmp_path_factory.mktemp("frames-store")
    agcurate.embed([story_video[0]], store=root, workers=0, progress=False, remember=False,
                   source_options=SourceOptions(fps=5))
    return root


def test_keyframes_of_a_spliced_video(story_video, warm_store, tmp_path):
    from agcurate.workflows.frames import frames

    video, shots = story_video
    res = frames([video], out=tmp_path / "out", fps=5, store=warm_store, workers=0)
    assert res.embeddings.stats.encoded == 0                       # every sample came from the store
    (v,) = res.videos
    kept = v.kept["frame"].tolist()
    per_shot = {name: sum(f in rng for f in kept) for name, rng in shots.items()}
    assert per_shot == {"A": 1, "B": 1, "hold": 1, "C": 1, "A2": 0, "D": 1}
    assert shots["hold"][SHARP_AT] in kept                         # the sharp frame of the blurred hold
    assert v.table.loc[v.table["frame"].isin(shots["A2"]), "is_repeat"].all()
    csv = pd.read_csv(tmp_path / "out" / "frames.csv", keep_default_na=False)
    assert list(csv.columns) == ["frame", "time_s", "path", "score", "video", "segment", "segment_start_s",
                                 "segment_end_s", "sharpness", "reason", "overlap", "camera"]
    assert csv["reason"].tolist() == ["new shot"] * 5              # five shots, each seen once
    assert csv["camera"].tolist() == ["moving", "moving", "static", "moving", "moving"]
    assert csv["frame"].tolist() == kept
    assert np.allclose(csv["time_s"], csv["frame"] / 10.0)
    for p in csv["path"]:
        assert Path(p).is_file() and Path(p).parent == tmp_path / "out" / "frames"
    from PIL import Image

    with Image.open(csv["path"][0]) as im:
        assert im.size == (160, 90) and im.format == "JPEG"


def test_motion_is_measured_while_the_samples_are_embedded(story_video, tmp_path, monkeypatch):
    """``frames`` starts each video's motion analysis as soon as the items are listed, before any is
    encoded, and the keyframes are those of the analysis done afterwards, one video at a time."""
    import agcurate.workflows.frames as fw

    video, _ = story_video
    listed, analysed = [], []
    group, analyse = fw._frames_by_video, fw.analyse_views

    def on_listed(items):  # called when the analyses are submitted
        listed.append(len(list((tmp_path / "st").rglob("parts/*.parquet"))))  # vectors stored by then
        return group(items)

    monkeypatch.setattr(fw, "_frames_by_video", on_listed)
    monkeypatch.setattr(fw, "analyse_views", lambda sampled, **kw: analysed.append(1) or analyse(sampled, **kw))
    import cv2

    threads = cv2.getNumThreads()
    res = fw.frames([video], fps=5, store=tmp_path / "st", workers=0, progress=False)
    assert res.embeddings.stats.encoded > 0 and listed == [0] and analysed == [1]  # before any vector
    assert cv2.getNumThreads() == threads                          # OpenCV's threads given back
    (v,) = res.videos
    sub = res.embeddings.to_items()
    again, _ = fw.view_keyframes(sorted(sub, key=lambda it: it.frame), res.embeddings.vectors[
        np.argsort(res.embeddings.items["frame"].to_numpy(), kind="stable")])
    assert again["is_keyframe"].tolist() == v.table["is_keyframe"].tolist()
    assert again["reason"].tolist() == v.table["reason"].tolist()


def test_videos_beyond_the_memory_budget_are_measured_in_turn(story_video, warm_store, tmp_path, monkeypatch):
    """Only ``AHEAD_FRAMES`` analysed frames are measured ahead while embedding (their grey frames are
    held until selection); a video beyond that budget is measured when its turn comes, same result."""
    import threading

    import agcurate.workflows.frames as fw

    video, _ = story_video
    where = []
    analyse = fw.analyse_views
    monkeypatch.setattr(fw, "analyse_views", lambda sampled, **kw: where.append(threading.current_thread().name)
                        or analyse(sampled, **kw))
    ahead = fw.frames([video], fps=5, store=warm_store, workers=0, progress=False)
    monkeypatch.setattr(fw, "AHEAD_FRAMES", 10)                    # less than the 6 s video's 60 frames
    in_turn = fw.frames([video], fps=5, store=warm_store, workers=0, progress=False)
    assert where[0].startswith("agcurate-motion") and where[1] == threading.main_thread().name
    assert in_turn.videos[0].table["is_keyframe"].tolist() == ahead.videos[0].table["is_keyframe"].tolist()


def test_cli_frames_twice_same_csv_and_contact_sheet(story_video, warm_store, tmp_path, page, artifacts):
    video, shots = story_video
    out = tmp_path / "out"
    args = ["frames", str(video), "--fps", "5", "--out", str(out), "--store", str(warm_store), "--workers", "0"]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    assert "5 keyframes from 28 sampled frames" in r.output      # 2 static copies in the hold not embedded
    first = (out / "frames.csv").read_text()
    (out / "frames" / "frame_000999.jpg").write_bytes(b"not ours")   # a file we did not write stays
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    assert (out / "frames.csv").read_text() == first
    assert (out / "frames" / "frame_000999.jpg").exists()
    assert len(list((out / "frames").glob("*.jpg"))) == 6

    page.goto((out / "frames.html").as_uri())
    page.wait_for_load_state("load")
    assert page.agcurate_errors == []
    imgs = page.locator("figure.keyframe img")
    assert imgs.count() == 5
    page.wait_for_function("() => Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)",
                           timeout=20_000)  # lazy-loaded thumbnails may arrive after the load event
    caption = page.locator("figure.keyframe figcaption").nth(2).inner_text()
    assert "00:02.40" in caption and "frame 24" in caption          # the hold's sharp frame at 2.4 s
    assert page.locator(".timeline span.repeat").count() == 1
    assert page.locator("figure.keyframe .reason").first.inner_text() == "new shot"
    page.screenshot(path=str(artifacts / "frames-contact-sheet.png"), full_page=True)


def test_cli_folder_of_videos_gets_a_subfolder_each(story_video, warm_store, tmp_path):
    video, _ = story_video
    folder = tmp_path / "videos"
    folder.mkdir()
    shutil.copy(video, folder / "story.mp4")
    write_video(folder / "odd <name>.avi", pan(photo("rocket"), 10), fourcc="MJPG")
    (folder / "notes.txt").write_text("not a video")
    out = tmp_path / "out"
    r = CliRunner().invoke(app, ["frames", str(folder), "--fps", "5", "--out", str(out),
                                 "--store", str(tmp_path / "st"), "--workers", "0"])
    assert r.exit_code == 0, r.output
    csv = pd.read_csv(out / "frames.csv")
    assert {Path(p).parent.name for p in csv["path"]} == {"story.mp4", "odd_name_.avi"}
    assert (csv["video"].map(lambda p: Path(p).name) == "odd <name>.avi").sum() == 1
    html = (out / "frames.html").read_text()
    assert "odd &lt;name&gt;.avi" in html and "odd <name>" not in html


def test_cli_frames_bad_input(tmp_path, store):
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "junk.mp4").write_bytes(b"\x00\x00\x00\x18ftypisom" + b"\x01" * 300)
    r = CliRunner().invoke(app, ["frames", str(tmp_path), "--store", str(store), "--out", str(tmp_path / "o")])
    assert r.exit_code == 2
    assert "empty.mp4: empty file" in r.output or "junk.mp4" in r.output
    assert "Traceback" not in r.output
    assert not (tmp_path / "o" / "frames.csv").exists()


def test_frames_without_any_video_says_so(tmp_path, store, examples_dir):
    from agcurate.errors import NoUsableInputError
    from agcurate.workflows.frames import frames

    img = tmp_path / "imgs"
    img.mkdir()
    shutil.copy(examples_dir / "Forest_1.jpg", img)
    with pytest.raises(NoUsableInputError, match="no video found"):
        frames([img], out=tmp_path / "o", store=store, workers=0)


def test_frames_on_a_folder_without_video_says_no_video_found(tmp_path, store):
    """An empty folder, or one with only other files: "no video found" (not "no image found"), exit 2."""
    empty = tmp_path / "empty"
    empty.mkdir()
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "readme.txt").write_text("not a video")
    for folder, extra in ((empty, ""), (notes, " (1 other file(s) ignored)")):
        r = CliRunner().invoke(app, ["frames", str(folder), "--store", str(store), "--out", str(tmp_path / "o")])
        assert r.exit_code == 2, r.output
        assert f"no video found in {folder}{extra}" in " ".join(r.output.split())
        assert "image" not in r.output


@pytest.mark.slow
def test_example_video_of_the_readme(tmp_path, store):
    # examples/videos/intel-shots.mp4: parking 0-74, bottles 75-149, hall 150-224, parking again 225-299, signer 300-349
    from agcurate.workflows.frames import frames

    video = Path(__file__).resolve().parents[1] / "examples" / "videos" / "intel-shots.mp4"
    res = frames([video], out=tmp_path / "out", store=store, workers=0)
    kept = res.videos[0].kept["frame"].tolist()
    shots = [range(0, 75), range(75, 150), range(150, 225), range(225, 300), range(300, 350)]
    # the bottles shot is a fixed camera where a hand takes the left bottle away (about 95-125): a new object
    assert [sum(f in s for f in kept) for s in shots] == [1, 2, 1, 0, 1]
    assert 90 <= kept[2] <= 125
    res = frames([video], out=tmp_path / "shots", store=store, workers=0, mode="shots")
    kept = res.videos[0].kept["frame"].tolist()
    assert [sum(f in s for f in kept) for s in shots] == [1, 1, 1, 0, 1]


def test_cli_frames_without_paths_uses_the_last_embedded_collection(story_video, warm_store, tmp_path):
    video, _ = story_video
    r = CliRunner().invoke(app, ["embed", str(video), "--fps", "5", "--store", str(warm_store)])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(app, ["frames", "--store", str(warm_store), "--out", str(tmp_path / "o")])
    assert r.exit_code == 0, r.output
    assert "5 keyframes from 28 sampled frames (0 newly encoded" in r.output


def test_modes_on_a_pan_with_a_fixed_start(tmp_path, store):
    """A fixed view with someone passing through, then a pan over a large photo: auto keeps the view, the
    visitor and a frame each time the pan moved on; shots keeps one per run of similar embeddings."""
    from agcurate.workflows.frames import frames
    from videokit import window_pan

    img = photo("astronaut")
    still = window_pan(img, [(0, 180)] * 30, size=(160, 90), window=(240, 135))
    visitor = photo("coffee")[100:300:5, 200:400:5]
    for k in range(10, 20):
        still[k] = still[k].copy()
        still[k][30:70, 60:100] = visitor
    moving = window_pan(img, [(x, 180) for x in range(0, 272, 4)], size=(160, 90), window=(240, 135))
    video = write_video(tmp_path / "pan.mp4", still + moving)
    common = dict(store=store, workers=0, fps=5, progress=False)
    auto = frames([video], out=tmp_path / "auto", **common)
    csv = pd.read_csv(tmp_path / "auto" / "frames.csv")
    assert csv["reason"].tolist()[:2] == ["new shot", "new object"]
    assert 10 <= csv["frame"].tolist()[1] < 20                    # the visitor
    assert "moved on" in csv["reason"].tolist()
    assert (csv.loc[csv["reason"] == "moved on", "overlap"] <= 0.8).all()
    shots = frames([video], out=tmp_path / "shots", mode="shots", **common)
    assert shots.n_kept < auto.n_kept
    assert set(pd.read_csv(tmp_path / "shots" / "frames.csv")["reason"]) == {"new shot"}


def test_cli_rejects_a_bad_mode_or_overlap_before_reading(tmp_path, store):
    for args, msg in ((["--mode", "fast"], "--mode"), (["--overlap", "1.5"], "--overlap")):
        r = CliRunner().invoke(app, ["frames", str(tmp_path / "missing.mp4"), *args, "--store", str(store)])
        assert r.exit_code == 2, r.output
        assert msg in r.output
