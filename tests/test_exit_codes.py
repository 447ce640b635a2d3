"""One exit-code scheme for every command: 0 done, 1 failed while working, 2 usage or input error
(invalid options found before any file is read; no usable input), 130 interrupted."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from agcurate.cli import app
from agcurate.errors import AgcurateError
from tests.conftest import make_image

runner = CliRunner()


@pytest.fixture
def photos(tmp_path):
    d = tmp_path / "photos"
    for i in range(3):
        make_image(d / f"p{i}.jpg", color=(40 * i, 90, 30), seed=i)
    return d


@pytest.fixture
def no_file_reads(monkeypatch):
    """Fail the test if anything lists or decodes the collection (discovery is the first file access)."""
    import agcurate.embedding.encode as encode
    import agcurate.training.train as train

    def refuse(*_a, **_k):
        raise AssertionError("files were read before the options were checked")

    monkeypatch.setattr(encode, "discover", refuse)
    monkeypatch.setattr(train, "discover", refuse)


BAD_OPTIONS = [  # command line (PHOTOS stands for a folder of images), words the message must hold
    (["embed", "PHOTOS", "--device", "gpu"], "--device 'gpu' is not one of auto, cpu, cuda"),
    (["dedup", "PHOTOS", "--backend", "tensorflow"], "--backend 'tensorflow' is not one of auto, torch, onnx"),
    (["dedup", "PHOTOS", "--stretch", "5000"], "--stretch wants LO,HI"),
    (["outliers", "PHOTOS", "--bands", "5,2"], "--bands '5,2': give 1 or 3 bands"),
    (["cluster", "PHOTOS", "--bands", "foo"], "unknown band 'foo'"),
    (["cluster", "PHOTOS", "--stretch", "3000,0"], "--stretch: HI must exceed LO"),
    (["search", "PHOTOS/p0.jpg", "--in", "PHOTOS", "--stride", "8"], "--stride needs --tile"),
    (["dedup", "PHOTOS", "--keep", "smallest"], "--keep 'smallest' is not one of largest, sharpest, first"),
    (["outliers", "PHOTOS", "--method", "magic"], "--method 'magic' is not one of"),
    (["outliers", "PHOTOS", "--reference", "PHOTOS/missing"], "--reference: "),
    (["cluster", "PHOTOS", "--reduction", "tsne"], "--reduction 'tsne' is not one of umap, pca"),
    (["frames", "PHOTOS", "--tile", "64"], "--tile does not apply to videos"),
    (["search", "PHOTOS/nope.jpg", "--in", "PHOTOS"], "does not exist"),
    (["probe", "PHOTOS"], "exactly one of --labels"),
    (["probe", "PHOTOS", "--labels", "PHOTOS/missing.csv"], "cannot read labels file"),
    (["probe", "PHOTOS", "--labels-from-folders", "--fractions", "0,2"], "--fractions"),
    (["probe", "PHOTOS", "--labels-from-folders", "--device", "tpu"], "--device 'tpu'"),
    (["dedup", "PHOTOS", "--model", "no-such-model"], "unknown model 'no-such-model'"),
    (["pretrain", "PHOTOS", "--method", "byol"], "--method 'byol' is not one of simclr, dino"),
    (["pretrain", "PHOTOS", "--init", "no-such-model"], "--init 'no-such-model'"),
]


@pytest.mark.parametrize("args,message", BAD_OPTIONS, ids=[" ".join(a[:3]) for a, _ in BAD_OPTIONS])
def test_invalid_options_exit_2_before_any_file_is_read(args, message, photos, store, no_file_reads):
    argv = [a.replace("PHOTOS", str(photos)) for a in args]
    res = runner.invoke(app, argv + ["--store", str(store)] if argv[0] != "pretrain" else argv)
    assert res.exit_code == 2, res.output
    assert message in res.output
    assert "Traceback" not in res.output and len(res.output.strip().splitlines()) == 1


@pytest.mark.parametrize("command", ["embed", "dedup", "outliers", "cluster", "frames"])
def test_no_usable_input_exits_2(command, tmp_path, store):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    res = runner.invoke(app, [command, str(empty), "--store", str(store), "--out", str(tmp_path / "o")]
                        if command != "embed" else [command, str(empty), "--store", str(store)])
    assert res.exit_code == 2, res.output
    assert "no usable image" in res.output or "no image found" in res.output


@pytest.mark.parametrize("command,target", [("dedup", "agcurate.ops.dedup.find_duplicates"),
                                            ("outliers", "agcurate.ops.outliers.score_outliers"),
                                            ("cluster", "agcurate.ops.cluster.cluster")])
def test_failure_while_working_exits_1_and_interrupt_exits_130(command, target, examples_store, tmp_path,
                                                               monkeypatch):
    module, _, name = target.rpartition(".")

    def fail(*_a, **_k):
        raise AgcurateError("the disk went away")

    monkeypatch.setattr(f"{module}.{name}", fail)
    res = runner.invoke(app, [command, "--store", str(examples_store), "--out", str(tmp_path)])
    assert res.exit_code == 1 and "error: the disk went away" in res.output

    def os_fail(*_a, **_k):
        raise PermissionError(13, "Permission denied", str(tmp_path / "out.csv"))

    monkeypatch.setattr(f"{module}.{name}", os_fail)
    res = runner.invoke(app, [command, "--store", str(examples_store), "--out", str(tmp_path)])
    assert res.exit_code == 1 and "Permission denied" in res.output and "Traceback" not in res.output

    def interrupt(*_a, **_k):
        raise KeyboardInterrupt

    monkeypatch.setattr(f"{module}.{name}", interrupt)
    res = runner.invoke(app, [command, "--store", str(examples_store), "--out", str(tmp_path)])
    assert res.exit_code == 130 and "interrupted" in res.output


def test_library_raises_the_same_usage_errors(photos, store, no_file_reads):
    import agcurate
    from agcurate.errors import UsageError

    with pytest.raises(UsageError, match="--keep"):
        agcurate.dedup([photos], keep="smallest", store=store)
    with pytest.raises(UsageError, match="unknown embedding option"):
        agcurate.cluster([photos], stroe=store)
    with pytest.raises(UsageError, match="--device"):
        agcurate.EmbedConfig(device="gpu")
    with pytest.raises(UsageError, match="--workers"):
        agcurate.outliers([photos], workers=-1, store=store)
    assert agcurate.EmbedConfig(device=" CUDA ").device == "cuda"  # normalised once
    assert UsageError("x").exit_code == 2
