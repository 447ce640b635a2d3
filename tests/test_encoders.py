"""Encoders: the offline lite0 weights are really ImageNet weights; the registry resolves every kind."""

from __future__ import annotations

import numpy as np
import pytest

from agcurate.encoders import get_encoder, list_encoders, save_encoder
from agcurate.errors import UnknownModelError

CAT_CLASSES = {"Egyptian cat", "tabby", "tiger cat", "Persian cat", "Siamese cat", "lynx"}


def _imagenet_top1(model, rgb):
    import torch
    from PIL import Image
    from torchvision.models import ResNet50_Weights

    from agcurate.encoders.lite0 import TF_MEAN, TF_STD

    cats = ResNet50_Weights.IMAGENET1K_V2.meta["categories"]
    img = np.asarray(Image.fromarray(rgb).convert("RGB").resize((224, 224), Image.BICUBIC), np.float32)
    x = torch.from_numpy(img).permute(2, 0, 1)[None] / 255.0
    x = (x - torch.tensor(TF_MEAN).view(1, 3, 1, 1)) / torch.tensor(TF_STD).view(1, 3, 1, 1)
    with torch.inference_mode():
        p = model(x).softmax(-1)[0]
    return cats[int(p.argmax())], float(p.max())


@pytest.fixture(scope="module")
def lite0_classifier():
    from agcurate.encoders.lite0 import build_classifier

    return build_classifier()


@pytest.mark.parametrize("name,expected", [("chelsea", CAT_CLASSES), ("coffee", {"espresso"})])
def test_lite0_weights_classify_real_photos(lite0_classifier, name, expected):
    from skimage import data

    label, prob = _imagenet_top1(lite0_classifier, getattr(data, name)())
    assert label in expected, (label, prob)
    assert prob > 0.5


def test_lite0_embedding_is_normalised_pooled_backbone_feature(lite0_classifier):
    import torch

    from agcurate.encoders.runners import ModelRunner

    enc = get_encoder("lite0")
    assert enc.dim == 1280 and enc.input_size == 224 and enc.offline
    rng = np.random.default_rng(0)
    batch = torch.from_numpy(rng.integers(0, 256, (2, 3, 224, 224), dtype=np.uint8))
    got = ModelRunner(enc, "cpu")(batch)
    x = (batch.float() / 255.0 - torch.tensor(enc.mean).view(1, 3, 1, 1)) / torch.tensor(enc.std).view(1, 3, 1, 1)
    with torch.inference_mode():
        feats = lite0_classifier.forward_head(lite0_classifier.forward_features(x), pre_logits=True)
    want = torch.nn.functional.normalize(feats, dim=1).numpy()
    assert got.shape == (2, 1280)
    assert np.allclose(got, want, atol=1e-4)


def test_lite0_ml_joins_head_and_block5_features_with_equal_weight(lite0_classifier):
    """lite0-ml = [unit(pooled head), unit(pooled block 5)] / sqrt(2): checked with a forward hook."""
    import torch

    from agcurate.encoders.runners import ModelRunner

    enc = get_encoder("lite0-ml")
    assert enc.dim == 1280 + 192 and enc.offline and enc.id != get_encoder("lite0").id
    rng = np.random.default_rng(1)
    batch = torch.from_numpy(rng.integers(0, 256, (2, 3, 224, 224), dtype=np.uint8))
    got = ModelRunner(enc, "cpu")(batch)
    x = (batch.float() / 255.0 - torch.tensor(enc.mean).view(1, 3, 1, 1)) / torch.tensor(enc.std).view(1, 3, 1, 1)
    seen = {}
    hook = lite0_classifier.blocks[5].register_forward_hook(lambda m, i, o: seen.setdefault("b5", o))
    try:
        with torch.inference_mode():
            head = lite0_classifier.forward_head(lite0_classifier.forward_features(x), pre_logits=True)
    finally:
        hook.remove()
    nrm = torch.nn.functional.normalize
    want = torch.cat([nrm(head, dim=1), nrm(seen["b5"].mean((2, 3)), dim=1)], 1).numpy() / np.sqrt(2)
    assert got.shape == (2, 1472)
    assert np.allclose(got, want, atol=1e-4)
    # each level carries half of the unit vector's weight
    assert np.allclose((got[:, :1280] ** 2).sum(1), 0.5, atol=1e-4)


def test_encoder_id_covers_weights_and_preprocessing():
    a, b = get_encoder("lite0"), get_encoder("lite0", image_size=160)
    assert a.id != b.id and a.slug != b.slug
    assert "weights=imagenet-" in a.id and "size=224" in a.id
    assert get_encoder("lite0").id == a.id  # stable


def test_unknown_model_is_a_clear_error():
    with pytest.raises(UnknownModelError, match="unknown model"):
        get_encoder("nonsense-model")
    with pytest.raises(UnknownModelError, match="timm has no model"):
        get_encoder("timm:no_such_net")


def test_timm_and_torchvision_with_local_weights(tmp_path):
    import timm
    import torch
    from torchvision.models import get_model

    tw = tmp_path / "resnet18_timm.pth"
    torch.save(timm.create_model("resnet18", pretrained=False).state_dict(), tw)
    enc = get_encoder("timm:resnet18", weights=str(tw))
    assert enc.dim == 512 and enc.offline and "file-" in enc.weights_id
    out = enc.build()(torch.zeros(1, 3, 64, 64))
    assert out.shape == (1, 512)

    vw = tmp_path / "resnet18_tv.pth"
    torch.save(get_model("resnet18", weights=None).state_dict(), vw)
    enc2 = get_encoder("torchvision:resnet18", weights=str(vw))
    assert enc2.dim == 512
    assert enc2.build()(torch.zeros(1, 3, 64, 64)).shape == (1, 512)


def test_file_checkpoint_round_trip(tmp_path):
    import torch

    from agcurate.encoders.lite0 import build_backbone

    backbone = build_backbone()
    ck = save_encoder(tmp_path / "model.pt", backbone, arch="timm:tf_efficientnet_lite0", dim=1280,
                      input_size=160, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), config={"method": "test"})
    enc = get_encoder(f"file:{ck}")
    assert enc.dim == 1280 and enc.input_size == 160 and enc.name == f"file:{ck.resolve()}"
    x = torch.randn(1, 3, 160, 160)
    with torch.inference_mode():
        assert torch.allclose(enc.build()(x), backbone(x), atol=1e-5)
    assert get_encoder(str(ck)).id == enc.id  # a bare checkpoint path works too


def test_models_listing_marks_lite0_offline():
    rows = {r["name"]: r for r in list_encoders()}
    assert rows["lite0"]["offline"] is True and rows["lite0"]["dim"] == 1280


def test_a_file_that_is_not_a_checkpoint_says_so(tmp_path):
    """``--model notes.txt`` and friends: one line that names the file and says what it is not."""
    import torch
    from typer.testing import CliRunner

    from agcurate.cli import app
    from agcurate.errors import WeightsUnavailableError

    notes = tmp_path / "notes.txt"
    notes.write_text("hello, these are my notes\n")
    (tmp_path / "empty.pt").write_bytes(b"")
    (tmp_path / "noise.bin").write_bytes(bytes(range(256)) * 8)
    torch.save({"conv.weight": torch.zeros(2, 2)}, tmp_path / "state_dict.pt")
    (tmp_path / "cut.pt").write_bytes((tmp_path / "state_dict.pt").read_bytes()[:200])
    torch.save({"format": "agcurate-pretrain/1", "epoch": 1}, tmp_path / "model.pt.ckpt")
    expected = {
        "notes.txt": "is not an agcurate or torch checkpoint (it is a text file)",
        "empty.pt": "is not an agcurate or torch checkpoint (it is empty)",
        "noise.bin": "is not an agcurate or torch checkpoint",
        "cut.pt": "is not an agcurate or torch checkpoint (a zip archive torch cannot read: truncated?",
        "state_dict.pt": "is a torch checkpoint but not an agcurate encoder",
        "model.pt.ckpt": "is a training checkpoint of `agcurate pretrain`, not an encoder",
    }
    for name, message in expected.items():
        for model in (str(tmp_path / name), f"file:{tmp_path / name}"):
            with pytest.raises(WeightsUnavailableError) as err:
                get_encoder(model)
            assert message in str(err.value) and str(tmp_path / name) in str(err.value), str(err.value)
            assert "\n" not in str(err.value)
    res = CliRunner().invoke(app, ["embed", str(tmp_path), "--model", str(notes), "--store", str(tmp_path / "s")])
    assert res.exit_code == 2
    assert "notes.txt is not an agcurate or torch checkpoint (it is a text file)" in " ".join(res.output.split())
    assert ": 101" not in res.output and "Traceback" not in res.output
