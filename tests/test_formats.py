"""Every image mode and container reaches the encoder as correct RGB, recognised by content."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from agcurate.sources import discover
from agcurate.sources.images import decode_image, to_rgb_uint8
from agcurate.sources.sniff import sniff


def _encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def test_16bit_grayscale_is_scaled_not_cast():
    arr = np.full((8, 8), 32896, np.uint16)  # 32896 / 257 = 128
    arr[0, 0] = 65535
    rgb, size = decode_image(_encode(Image.fromarray(arr), "PNG"))
    assert size == (8, 8) and rgb.dtype == np.uint8 and rgb.shape == (8, 8, 3)
    assert tuple(rgb[4, 4]) == (128, 128, 128)
    assert tuple(rgb[0, 0]) == (255, 255, 255)


def test_16bit_rgb_tiff_keeps_colour():
    import cv2

    arr = np.zeros((6, 6, 3), np.uint16)
    arr[..., 0] = 65535  # red in RGB order
    ok, data = cv2.imencode(".tiff", arr[..., ::-1].copy())  # OpenCV writes BGR
    assert ok
    rgb, _ = decode_image(data.tobytes())
    assert tuple(rgb[2, 2]) == (255, 0, 0)


def test_grayscale_palette_cmyk_and_one_bit():
    grey = Image.fromarray(np.full((4, 4), 77, np.uint8))
    assert tuple(decode_image(_encode(grey, "PNG"))[0][1, 1]) == (77, 77, 77)
    pal = Image.fromarray((np.zeros((4, 4, 3)) + [10, 200, 30]).astype(np.uint8)).convert("P", palette=Image.ADAPTIVE)
    assert tuple(decode_image(_encode(pal, "GIF"))[0][1, 1]) == pytest.approx((10, 200, 30), abs=3)
    cmyk = Image.new("CMYK", (4, 4), (0, 255, 255, 0))  # pure red in CMYK
    r, g, b = decode_image(_encode(cmyk, "JPEG", quality=100))[0][2, 2]
    assert r > 200 and g < 60 and b < 60
    one = Image.fromarray(np.eye(4, dtype=bool))
    assert tuple(decode_image(_encode(one, "PNG"))[0][0, 0]) == (255, 255, 255)


def test_alpha_is_composited_over_white():
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 1] = 255          # green
    rgba[:2, :, 3] = 255        # top half opaque, bottom half transparent
    rgb, _ = decode_image(_encode(Image.fromarray(rgba, "RGBA"), "PNG"))
    assert tuple(rgb[0, 0]) == (0, 255, 0)
    assert tuple(rgb[3, 3]) == (255, 255, 255)
    la = Image.fromarray(np.stack([np.full((4, 4), 50, np.uint8), np.full((4, 4), 0, np.uint8)], -1), "LA")
    assert tuple(decode_image(_encode(la, "PNG"))[0][0, 0]) == (255, 255, 255)


def test_float_and_32bit_arrays():
    assert tuple(to_rgb_uint8(np.full((2, 2), 0.5, np.float32))[0, 0]) == (128, 128, 128)
    assert tuple(to_rgb_uint8(np.full((2, 2), 1000, np.int32))[0, 0]) == (4, 4, 4)  # 16-bit range / 257


def test_exif_orientation_is_applied():
    img = Image.fromarray(np.zeros((10, 20, 3), np.uint8))  # 20 wide, 10 high
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW when shown
    rgb, _ = decode_image(_encode(img, "JPEG", exif=exif.tobytes()))
    assert rgb.shape[:2] == (20, 10)


def test_large_jpeg_is_decoded_at_reduced_scale():
    big = Image.fromarray(np.random.default_rng(0).integers(0, 255, (2000, 3000, 3), dtype=np.uint8))
    rgb, size = decode_image(_encode(big, "JPEG"), min_side=224)
    assert size == (3000, 2000)
    assert 224 <= min(rgb.shape[:2]) < 1000


@pytest.mark.parametrize("fmt,name", [("JPEG", "jpeg"), ("PNG", "png"), ("TIFF", "tiff"), ("WEBP", "webp"),
                                      ("BMP", "bmp"), ("GIF", "gif")])
def test_sniff_by_content(fmt, name):
    data = _encode(Image.new("RGB", (8, 8), (1, 2, 3)), fmt)
    assert sniff(data[:64]) == name
    assert decode_image(data)[0].shape == (8, 8, 3)


def test_discovery_recognises_content_not_extension(tmp_path):
    img = Image.new("RGB", (16, 16), (200, 10, 10))
    (tmp_path / "upper.JPG").write_bytes(_encode(img, "JPEG"))
    (tmp_path / "png_named.jpg").write_bytes(_encode(img, "PNG"))
    (tmp_path / "no_extension").write_bytes(_encode(img, "WEBP"))
    (tmp_path / "Tiff.TIF").write_bytes(_encode(img, "TIFF"))
    (tmp_path / "sub dir ü").mkdir()
    (tmp_path / "sub dir ü" / "<img src=x onerror=alert(1)>.png").write_bytes(_encode(img, "PNG"))
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / ".hidden.jpg").write_bytes(_encode(img, "JPEG"))
    found = discover([tmp_path])
    names = sorted(p.split("/")[-1] for p in (it.path for it in found.items))
    assert names == sorted(["upper.JPG", "png_named.jpg", "no_extension", "Tiff.TIF",
                            "<img src=x onerror=alert(1)>.png"])
    assert found.ignored == 1 and not found.skipped


def test_symlink_loop_is_followed_once_and_reported(tmp_path):
    """``sub/loop -> ..`` must not embed every file once per path through the loop."""
    img = Image.new("RGB", (16, 16), (10, 120, 30))
    (tmp_path / "a.png").write_bytes(_encode(img, "PNG"))
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.png").write_bytes(_encode(img, "PNG"))
    (tmp_path / "sub" / "loop").symlink_to("..", target_is_directory=True)
    (tmp_path / "sub" / "self").symlink_to("self")                    # a link that points at itself
    (tmp_path / "alias").symlink_to("sub", target_is_directory=True)  # a second way into sub/: once
    (tmp_path / "c.png").symlink_to("a.png")                          # a second name of a.png: once
    found = discover([tmp_path])
    assert sorted(it.path for it in found.items) == [str(tmp_path / "a.png"), str(tmp_path / "sub" / "b.png")]
    reasons = {s.path: s.reason for s in found.skipped}
    assert set(reasons) == {str(tmp_path / n) for n in ("sub/loop", "sub/self", "alias", "c.png")}
    assert reasons[str(tmp_path / "sub" / "loop")].startswith("symbolic link loop")
    assert reasons[str(tmp_path / "sub" / "self")].startswith("symbolic link loop")
    assert reasons[str(tmp_path / "alias")] == f"same folder as {tmp_path / 'sub'} (symbolic link)"
    assert reasons[str(tmp_path / "c.png")] == f"same file as {tmp_path / 'a.png'} (symbolic link)"


def test_dangling_symlink_is_reported_with_its_target(tmp_path):
    (tmp_path / "ok.png").write_bytes(_encode(Image.new("RGB", (16, 16), (1, 2, 3)), "PNG"))
    (tmp_path / "gone.jpg").symlink_to(tmp_path / "deleted.jpg")
    found = discover([tmp_path])
    assert [it.path for it in found.items] == [str(tmp_path / "ok.png")]
    assert [(s.path, s.reason) for s in found.skipped] == [
        (str(tmp_path / "gone.jpg"), f"broken symbolic link -> {tmp_path / 'deleted.jpg'}")]
    again = discover([tmp_path / "gone.jpg"])                         # named on the command line
    assert [s.reason for s in again.skipped] == [f"broken symbolic link -> {tmp_path / 'deleted.jpg'}"]
