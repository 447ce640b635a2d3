"""Recognise a file's format from its first bytes, never from its extension."""

from __future__ import annotations

IMAGE_EXTENSIONS = {
    ".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".tif", ".tiff", ".webp", ".bmp", ".dib",
    ".gif", ".jp2", ".j2k", ".heic", ".heif", ".avif", ".ppm", ".pgm", ".pbm",
}
VIDEO_EXTENSIONS = {
    ".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".ts", ".mts", ".m2ts",
    ".flv", ".wmv", ".3gp", ".ogv",
}
HEAD_BYTES = 64


def sniff(head: bytes) -> str | None:
    """Return a format name for the leading bytes of a file, or None when none is recognised.

    Image formats: jpeg, png, gif, webp, bmp, tiff, jp2, pnm, heif. Video containers: mp4 (ISO
    base media, incl. mov), matroska (mkv/webm), avi, mpegts, mpegps, flv, asf. Arrays: npy.
    """
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "avi"
    if head[:2] == b"BM" and len(head) >= 14:
        return "bmp"
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "tiff"
    if head.startswith(b"\x00\x00\x00\x0cjP  ") or head.startswith(b"\xff\x4f\xff\x51"):
        return "jp2"
    if head[:6] == b"\x93NUMPY":
        return "npy"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in (b"heic", b"heix", b"mif1", b"msf1", b"avif", b"heim", b"heis", b"hevc"):
            return "heif"
        return "mp4"
    if head[4:8] in (b"moov", b"mdat", b"wide", b"free", b"skip"):
        return "mp4"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "matroska"
    if head[:1] == b"\x47" and len(head) > 1 and head.count(b"\x47") >= 1 and _looks_like_ts(head):
        return "mpegts"
    if head.startswith(b"\x00\x00\x01\xba"):
        return "mpegps"
    if head.startswith(b"FLV"):
        return "flv"
    if head.startswith(b"\x30\x26\xb2\x75\x8e\x66\xcf\x11"):
        return "asf"
    if head[:1] == b"P" and head[1:2] in b"123456" and len(head) > 2 and head[2:3] in b" \t\r\n":
        return "pnm"
    return None


def _looks_like_ts(head: bytes) -> bool:
    # MPEG transport stream: sync byte 0x47 every 188 bytes; with only the head, accept a lone sync
    # byte followed by a plausible PID header.
    return len(head) >= 4 and head[0] == 0x47 and (head[1] & 0x80) == 0


EXTENSION_FORMATS = {  # what a name promises, for listings where reading every file costs a request
    ".jpg": "jpeg", ".jpeg": "jpeg", ".jpe": "jpeg", ".jfif": "jpeg", ".png": "png", ".webp": "webp",
    ".bmp": "bmp", ".dib": "bmp", ".gif": "gif", ".jp2": "jp2", ".j2k": "jp2", ".heic": "heif",
    ".heif": "heif", ".avif": "heif", ".ppm": "pnm", ".pgm": "pnm", ".pbm": "pnm",
}

IMAGE_FORMATS = {"jpeg", "png", "gif", "webp", "bmp", "tiff", "jp2", "pnm", "heif"}
VIDEO_FORMATS = {"mp4", "matroska", "avi", "mpegts", "mpegps", "flv", "asf"}
