"""The video source: sampling, one-pass decoding of the right frames, and clear errors for bad files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from agcurate.cli import app
from agcurate.errors import SourceError
from agcurate.items import Item
from agcurate.sources import SourceOptions, discover, read_group
from agcurate.sources.video import VideoSource, sample_indices, sample_times
from videokit import pan, photo, retime_mp4, timescale_mp4, write_video


def level_video(path: Path, n: int = 25, fps: float = 10.0, fourcc: str = "MJPG") -> Path:
    """Frame i is a flat grey of level 8*i (mod 256): decoded pixels tell which frame came back."""
    frames = [np.full((48, 64, 3), (8 * i) % 256, np.uint8) for i in range(n)]
    return write_video(path, frames, fps=fps, fourcc=fourcc)


def test_sample_indices():
    assert sample_indices(25, 10.0, 2) == [0, 5, 10, 15, 20]
    assert sample_indices(7, 10.0, 0) == list(range(7))            # 0 = every frame
    assert sample_indices(7, 10.0, 50) == list(range(7))           # faster than the video: every frame
    assert sample_indices(26, 25.0, 3) == [0, 8, 17, 25]          # round(k * 25 / 3)
    assert sample_indices(0, 25.0, 2) == []
    assert sample_indices(100, 25.0, None) == [0, 13, 25, 38, 50, 63, 75, 88]  # default 2 fps


def test_sampling_by_timestamps_equals_index_sampling_at_a_constant_rate():
    for n in (0, 1, 7, 26, 100, 241):
        for video_fps in (10.0, 24.0, 25.0, 29.97, 30.0, 59.94):
            for fps in (None, 0, 0.5, 1, 2, 3, 7.5, 24, 100):
                times = [i / video_fps for i in range(n)]
                step = video_fps / (2.0 if fps is None else fps) if fps != 0 else 1
                expected = (list(range(n)) if fps == 0 or (fps or 2.0) >= video_fps else
                            sorted({int(k * step + 0.5) for k in range(n + 1) if int(k * step + 0.5) < n}))
                assert sample_times(times, video_fps, fps) == expected, (n, video_fps, fps)


def vfr_video(path: Path, n: int = 20) -> Path:
    """``level_video`` whose first half plays at 20 fps and second half at 6.7 fps (frames of 0.05 s,
    then 0.15 s), written with OpenCV and re-timed in its MP4 time-to-sample table."""
    video = level_video(path, n=n, fps=10.0, fourcc="mp4v")
    ticks = timescale_mp4(video)
    return retime_mp4(video, [ticks // 20] * (n // 2) + [ticks * 3 // 20] * (n - n // 2))


def test_variable_frame_rate_times_come_from_the_container(tmp_path):
    video = vfr_video(tmp_path / "vfr.mp4")
    every = VideoSource().items(video, SourceOptions(fps=0))
    expected = [0.05 * i if i < 10 else 0.5 + 0.15 * (i - 10) for i in range(20)]
    assert [it.time_s for it in every] == pytest.approx(expected, abs=1e-6)
    assert every[12].time_s == pytest.approx(0.8)                 # index / nominal 10 fps would say 1.2
    assert every[0].meta["duration_s"] == pytest.approx(2.0)
    sampled = VideoSource().items(video, SourceOptions(fps=2))   # nearest to 0, 0.5, 1.0, 1.5 s
    assert [it.frame for it in sampled] == [0, 10, 13, 17]
    assert [it.time_s for it in sampled] == pytest.approx([0.0, 0.5, 0.95, 1.55])
    for d in read_group(sampled):                                 # the decoded frame is the one timed
        assert abs(float(d.rgb.mean()) - 8 * d.item.frame) < 3, d.item.frame


def test_b_frame_timestamps_are_put_in_presentation_order(tmp_path):
    """MPEG-2 with B-frames stores packets out of order (0, 0.3, 0.1, 0.2 s...): times still rise by frame."""
    video = write_video(tmp_path / "bframes.mkv", pan(photo("coffee"), 20), fps=10.0, fourcc="mpg2")
    items = VideoSource().items(video, SourceOptions(fps=0))
    assert [it.time_s for it in items] == pytest.approx([i / 10 for i in range(20)], abs=1e-6)


def test_items_are_sampled_frames_of_one_group(tmp_path):
    video = level_video(tmp_path / "levels.avi")
    items = VideoSource().items(video, SourceOptions(fps=2))
    assert [it.frame for it in items] == [0, 5, 10, 15, 20]
    assert [it.time_s for it in items] == [0.0, 0.5, 1.0, 1.5, 2.0]
    assert {it.kind for it in items} == {"frame"}
    assert len({it.group for it in items}) == 1 and len({it.fingerprint for it in items}) == 1
    assert items[1].key.endswith("levels.avi#frame=5")
    found = discover([tmp_path], SourceOptions(fps=0))
    assert len(found.items) == 25 and not found.skipped


def test_read_decodes_exactly_the_wanted_frames(tmp_path):
    video = level_video(tmp_path / "levels.avi")
    items = VideoSource().items(video, SourceOptions(fps=0))
    wanted = [items[i] for i in (21, 3, 4, 12)]                   # any order in, one pass inside
    decoded = {d.item.frame: d for d in read_group(wanted)}
    assert sorted(decoded) == [3, 4, 12, 21]
    for frame, d in decoded.items():
        assert d.error is None and d.rgb.shape == (48, 64, 3) and d.rgb.dtype == np.uint8
        assert abs(float(d.rgb.mean()) - 8 * frame) < 3, frame


def test_frame_count_comes_from_the_file_not_the_metadata(tmp_path):
    video = level_video(tmp_path / "levels.avi", n=50)
    data = video.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) // 2])                     # header still says 50 frames
    import cv2

    assert cv2.VideoCapture(str(cut)).get(cv2.CAP_PROP_FRAME_COUNT) == 50
    items = VideoSource().items(cut, SourceOptions(fps=0))
    assert 10 < len(items) < 50
    errors = {d.item.frame: d.error for d in read_group(items) if d.error}
    assert set(errors) <= {items[-1].frame}                       # at most the half-written last frame
    assert all("breaks off after" in e and "truncated" in e for e in errors.values())


def test_skip_static_drops_repeats_but_not_a_sharper_copy(tmp_path):
    from videokit import SHARP_AT, story

    video, shots = story(tmp_path / "story.mp4")
    every = [it.frame for it in VideoSource().items(video, SourceOptions(fps=5))]
    moving = [it.frame for it in VideoSource().items(video, SourceOptions(fps=5, skip_static=True))]
    hold = shots["hold"]
    assert [f for f in every if f not in hold] == [f for f in moving if f not in hold]  # pans: all kept
    kept_hold = [f for f in moving if f in hold]
    assert kept_hold[0] == hold[0] and hold[SHARP_AT] in kept_hold   # the first, and the sharp one
    assert len(kept_hold) < len([f for f in every if f in hold])


def test_frames_past_the_end_are_reported(tmp_path):
    video = level_video(tmp_path / "levels.avi", n=10)
    src = VideoSource()
    items = src.items(video, SourceOptions(fps=0))
    ghost = Item(path=str(video), kind="frame", frame=40, time_s=4.0, fingerprint=items[0].fingerprint)
    out = {d.item.frame: d for d in src.read([items[2], ghost], SourceOptions())}
    assert out[2].error is None
    assert "no frame 40: the video breaks off after 10 frame(s)" in out[40].error


def test_bad_videos_are_skipped_with_a_clear_reason(tmp_path):
    good = write_video(tmp_path / "ok.mp4", pan(photo("coffee"), 10))
    data = good.read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: int(len(data) * 0.6)])  # moov box at the end is cut off
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "garbage.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    avi = level_video(tmp_path / "levels.avi").read_bytes()
    (tmp_path / "alien.avi").write_bytes(avi.replace(b"MJPG", b"XQZW"))  # a codec nobody decodes
    found = discover([tmp_path], SourceOptions(fps=2))
    reasons = {Path(s.path).name: s.reason for s in found.skipped}
    assert set(reasons) == {"cut.mp4", "empty.mp4", "garbage.mp4", "alien.avi"}
    assert "truncated" in reasons["cut.mp4"]
    assert reasons["empty.mp4"] == "empty file"
    assert "corrupt" in reasons["garbage.mp4"]
    assert "codec 'XQZW'" in reasons["alien.avi"]
    assert {Path(it.path).name for it in found.items} == {"ok.mp4", "levels.avi"}
    with pytest.raises(SourceError, match="truncated"):
        VideoSource().items(tmp_path / "cut.mp4", SourceOptions())


def test_cli_embed_a_video_and_bad_video_exit_code(tmp_path, store):
    video = write_video(tmp_path / "clip.mp4", pan(photo("rocket"), 10))
    r = CliRunner().invoke(app, ["embed", str(video), "--store", str(store), "--workers", "0"])
    assert r.exit_code == 0, r.output
    assert "items found" in r.output and " 2 " in r.output       # 1 s at 10 fps, sampled at 2 fps
    import agcurate

    emb = agcurate.embed([video], store=store, source_options=SourceOptions(fps=2))
    assert emb.stats.encoded == 0 and emb.items["frame"].tolist() == [0, 5]
    assert (emb.items["kind"] == "frame").all() and np.allclose(np.linalg.norm(emb.vectors, axis=1), 1, atol=1e-3)
    bad = tmp_path / "bad" / "broken.mp4"
    bad.parent.mkdir()
    bad.write_bytes(video.read_bytes()[:500])
    r = CliRunner().invoke(app, ["embed", str(bad), "--store", str(store)])
    assert r.exit_code == 2
    assert "broken.mp4" in r.output and "truncated" in r.output


@pytest.mark.slow
def test_decode_workers_do_not_hang_after_opencv_ran_in_this_process(tmp_path):
    # OpenCV's thread pool does not survive fork(); embed must not deadlock its decode workers
    import subprocess
    import sys
    import textwrap

    video = write_video(tmp_path / "clip.avi", pan(photo("rocket"), 40), fourcc="MJPG")
    script = textwrap.dedent(f"""
        import cv2, numpy as np, agcurate
        from agcurate.sources import SourceOptions
        cv2.resize(np.zeros((2000, 2000, 3), np.uint8), (500, 500))   # starts OpenCV's thread pool
        emb = agcurate.embed([{str(video)!r}], store={str(tmp_path / 'st')!r}, workers=2, progress=False,
                             source_options=SourceOptions(fps=0))
        print("frames", len(emb))
    """)
    root = Path(__file__).resolve().parents[1]
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                       cwd=root, env={**__import__("os").environ, "PYTHONPATH": str(root)})
    assert r.returncode == 0, r.stderr[-2000:]
    assert "frames 40" in r.stdout
