"""``agcurate pretrain``: views, a short real training run, checkpoints and resume, pairs, DINO, CLI."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from agcurate.cli import app
from agcurate import PretrainConfig, pretrain
from agcurate.training.augment import AugmentConfig, BandJitter, make_views, to_view_input
from agcurate.training.data import read_pairs

CLASSES = ("Forest", "Highway", "SeaLake", "Industrial")
SMALL = dict(batch_size=8, image_size=32, embed_size=48, workers=0, lr=1e-3, seed=0)


@pytest.fixture(scope="module")
def tiny_set(shared_data, tmp_path_factory):
    """24 real EuroSAT patches (6 of each of 4 classes), copied so the test owns them."""
    src = shared_data("eurosat-rgb") / "images"
    root = tmp_path_factory.mktemp("tiny")
    for cls in CLASSES:
        (root / cls).mkdir()
        for i in range(1, 7):
            shutil.copy(src / cls / f"{cls}_{i}.jpg", root / cls / f"{cls}_{i}.jpg")
    return root


@pytest.fixture(scope="module")
def trained(tiny_set, tmp_path_factory):
    """One uninterrupted 3-epoch SimCLR run from the ImageNet lite0 weights (its checkpoint kept)."""
    out = tmp_path_factory.mktemp("run") / "model.pt"
    res = pretrain([tiny_set], out, PretrainConfig(epochs=3, **SMALL), progress=False, keep_checkpoint=True)
    return res


def quadrant(x: torch.Tensor) -> int:
    """Which quadrant of a C x H x W view holds the bright block."""
    m = x.float().mean(0)
    h, w = m.shape
    q = [m[: h // 2, : w // 2], m[: h // 2, w // 2:], m[h // 2:, : w // 2], m[h // 2:, w // 2:]]
    return int(np.argmax([float(v.mean()) for v in q]))


@pytest.mark.parametrize("channels", [3, 5])
def test_views_cover_all_orientations_for_rgb_and_bands(channels):
    """Flips + 90-degree turns: a bright corner must land in every corner (overhead has no 'up')."""
    img = np.zeros((32, 32, channels), np.uint8)
    img[:12, :12] = 255
    cfg = AugmentConfig(crop_scale=(1.0, 1.0), jitter_prob=0.0, blur_prob=0.0, gray_prob=0.0)
    views = make_views("simclr", channels, 32, [0.5] * 3, [0.25] * 3, cfg)
    torch.manual_seed(0)
    np.random.seed(0)
    x = to_view_input(img)
    seen = set()
    for _ in range(60):
        v0, v1 = views([x])
        assert v0.shape == (channels, 32, 32) and v0.dtype == torch.float32
        seen.add(quadrant(v0))
    assert seen == {0, 1, 2, 3}
    assert float(v0.max()) == pytest.approx(2.0, abs=0.05)   # normalised: (1 - 0.5) / 0.25


def test_band_jitter_keeps_range_and_band_ratios_roughly():
    torch.manual_seed(0)
    x = torch.rand(6, 16, 16) * 0.5 + 0.25
    j = BandJitter(brightness=0.4, band_gain=0.1, contrast=0.0)
    y = j(x)
    assert y.shape == x.shape and float(y.min()) >= 0 and float(y.max()) <= 1
    ratio = (y[3] / y[2]) / (x[3] / x[2])               # e.g. NIR / red: moves by at most ~band_gain
    assert float((ratio - 1).abs().max()) < 0.25
    assert not torch.allclose(x, y)


def test_dino_views_are_two_global_and_local_crops():
    views = make_views("dino", 3, 64, [0.5] * 3, [0.5] * 3, local_views=3)
    out = views([to_view_input(np.full((80, 80, 3), 100, np.uint8))])
    assert [tuple(v.shape[-2:]) for v in out] == [(64, 64)] * 2 + [(24, 24)] * 3


def test_pretrain_loss_goes_down_and_checkpoint_embeds(trained, tiny_set, store):
    import agcurate
    from agcurate.encoders import read_checkpoint

    losses = [h["loss"] for h in trained.history]
    assert len(losses) == 3 and all(np.isfinite(losses))
    assert losses[-1] < losses[0]
    steps = trained.step_losses
    assert len(steps) == 9                              # 24 images / batch 8 x 3 epochs
    assert np.mean(steps[-3:]) < np.mean(steps[:3])

    payload = read_checkpoint(trained.out)
    assert payload["arch"] == "timm:tf_efficientnet_lite0"
    assert payload["input_size"] == 48 and payload["dim"] == 1280
    assert payload["config"]["method"] == "simclr" and payload["config"]["epochs"] == 3
    assert not any(k.startswith(("head", "backbone.")) for k in payload["state_dict"])  # head dropped
    assert trained.checkpoint == trained.out.with_name("model.pt.ckpt") and trained.checkpoint.exists()

    emb = agcurate.embed([tiny_set], f"file:{trained.out}", store=store, workers=0, progress=False)
    assert emb.vectors.shape == (24, 1280)
    assert np.allclose(np.linalg.norm(emb.vectors, axis=1), 1, atol=2e-3)
    assert emb.encoder.weights_id.startswith("file-") and emb.stats.encoded == 24
    base = agcurate.embed([tiny_set], "lite0", store=store, workers=0, progress=False, image_size=48)
    assert base.encoder.slug != emb.encoder.slug        # its own cache id
    cos = np.sum(base.vectors * emb.vectors, axis=1)
    assert cos.mean() < 0.999                           # the weights really changed
    again = agcurate.embed([tiny_set], f"file:{trained.out}", store=store, workers=0, progress=False)
    assert again.stats.encoded == 0 and again.stats.cached == 24
    assert np.array_equal(again.vectors, emb.vectors)


def test_resume_after_interruption_continues_from_saved_epoch(trained, tiny_set, tmp_path):
    out = tmp_path / "model.pt"

    def stop_after_two(rec):
        if rec["epoch"] == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        pretrain([tiny_set], out, PretrainConfig(epochs=3, **SMALL), progress=False, on_epoch_end=stop_after_two)
    assert not out.exists() and (tmp_path / "model.pt.ckpt").exists()
    res = pretrain([tiny_set], out, PretrainConfig(epochs=3, **SMALL), resume=True, progress=False)
    assert res.start_epoch == 2 and [h["epoch"] for h in res.history] == [1, 2, 3]
    assert len(res.step_losses) == 9
    # the resumed run is the uninterrupted run: same data order, augmentations and weights
    np.testing.assert_allclose(res.step_losses, trained.step_losses, rtol=1e-3)
    assert out.exists()
    assert res.checkpoint is None and not (tmp_path / "model.pt.ckpt").exists()  # done: removed


def test_resume_with_another_method_is_refused(trained, tiny_set):
    res = CliRunner().invoke(app, ["pretrain", str(tiny_set), "--out", str(trained.out), "--resume",
                                   "--method", "dino", "--epochs", "3", "--workers", "0"])
    assert res.exit_code == 1
    assert "cannot resume" in res.output and "simclr" in res.output


def test_pairs_csv_cli(tiny_set, tmp_path):
    """Two different images of one class form each positive pair (as RGB + RGB-NIR of one plant would)."""
    rows = ["first,second"]
    for cls in CLASSES:
        for i in (1, 3, 5):
            rows.append(f"{tiny_set / cls / f'{cls}_{i}.jpg'},{tiny_set / cls / f'{cls}_{i + 1}.jpg'}")
    rows.append(f"{tiny_set / 'Forest' / 'Forest_1.jpg'},{tmp_path / 'missing.jpg'}")
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("\n".join(rows) + "\n")
    assert len(read_pairs(pairs)) == 13
    out = tmp_path / "paired.pt"
    args = ["pretrain", "--pairs", str(pairs), "--out", str(out), "--epochs", "1", "--batch-size", "6",
            "--image-size", "32", "--embed-size", "48", "--workers", "1", "--device", "cpu"]
    res = CliRunner().invoke(app, [*args, "--keep-checkpoint"])
    assert res.exit_code == 0, res.output
    assert "pairs" in res.output and "12" in res.output and "missing.jpg" in res.output
    ckpt = tmp_path / "paired.pt.ckpt"
    assert ckpt.exists() and "(kept: --resume continues it; delete it when done)" in res.output
    res = CliRunner().invoke(app, [*args, "--resume"])  # already finished: exports again, then tidies up
    assert res.exit_code == 0, res.output
    assert not ckpt.exists() and "training checkpoint removed (--keep-checkpoint keeps it)" in res.output
    from agcurate.encoders import get_encoder, read_checkpoint

    assert read_checkpoint(out)["config"]["pairs"] == str(pairs)
    enc = get_encoder(f"file:{out}")
    with torch.inference_mode():
        feats = enc.build()(torch.zeros(2, 3, 48, 48))
    assert feats.shape == (2, 1280)


def test_dino_from_scratch_one_epoch(tiny_set, tmp_path):
    from agcurate.encoders import read_checkpoint
    from agcurate.encoders.lite0 import build_backbone

    out = tmp_path / "dino.pt"
    cfg = PretrainConfig(method="dino", init="scratch", epochs=1, batch_size=8, image_size=32, embed_size=48,
                         workers=0, local_views=1, seed=1)
    res = pretrain([tiny_set], out, cfg, progress=False)
    assert len(res.step_losses) == 3 and np.all(np.isfinite(res.step_losses))
    assert res.checkpoint is None and [f.name for f in tmp_path.iterdir()] == ["dino.pt"]
    payload = read_checkpoint(out)
    sd = payload["state_dict"]
    assert payload["config"]["init"] == "scratch" and payload["config"]["method"] == "dino"
    assert "conv_stem.weight" in sd and not any("head" in k and "conv_head" not in k for k in sd)
    assert not torch.allclose(sd["conv_stem.weight"], build_backbone().state_dict()["conv_stem.weight"])


def test_pretrain_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    res = CliRunner().invoke(app, ["pretrain", str(tmp_path / "empty"), "--out", str(tmp_path / "m.pt")])
    assert res.exit_code == 2 and "no image found" in res.output
    res = CliRunner().invoke(app, ["pretrain", str(tmp_path), "--method", "byol"])
    assert res.exit_code == 2 and "--method 'byol' is not one of simclr, dino" in res.output


@pytest.mark.slow
def test_workers_do_not_hang_after_opencv_ran_in_the_parent(tmp_path, examples_dir):
    """OpenCV's thread pool does not survive fork(): pretraining must not hang its decode workers."""
    import subprocess
    import sys

    from tests.conftest import ROOT

    code = (
        "import cv2, numpy as np\n"
        "cv2.GaussianBlur(np.zeros((1500, 1500, 3), np.uint8), (5, 5), 0)\n"
        "from agcurate import PretrainConfig, pretrain\n"
        f"pretrain([{str(examples_dir)!r}], {str(tmp_path / 'm.pt')!r}, PretrainConfig(epochs=1, image_size=32,"
        f" batch_size=8, workers=2), store={str(tmp_path / 'store')!r}, progress=False)\n"
        "print('done')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "done" in out.stdout and (tmp_path / "m.pt").exists()
