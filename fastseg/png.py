"""A small PNG writer and reader in NumPy + zlib, so fastseg needs no imaging library.

Scope: 8-bit, non-interlaced greyscale, grey+alpha, RGB and RGBA (colour types 0, 4, 2, 6).
That covers COCO panoptic PNGs (8-bit RGB, as written by PIL/libpng with adaptive filtering)
and anything `save_png` writes. Palette images, bit depths other than 8 and Adam7 interlacing
are refused with a ValueError saying so, never decoded wrongly.

Arrays are uint8 `[H, W]` (grey) or `[H, W, C]` with C = 2, 3 or 4.

Writing picks, per row, the filter among None/Sub/Up with the smallest sum of absolute
(signed) residuals, the usual libpng heuristic, computed for all rows at once; zlib level 6.
Reading undoes all five filter types. Rows using only None/Sub/Up are undone with whole-array
cumulative sums. Average and Paeth depend on the pixel to the left *and* the one above, so an
image that uses them is undone along anti-diagonals (every pixel on an anti-diagonal depends only
on earlier ones): H + W - 1 vectorised steps instead of H * W scalar ones.
"""
from __future__ import annotations

import os
import struct
import zlib
from typing import BinaryIO, Dict, List, Tuple, Union

import numpy as np

__all__ = ["save_png", "load_png", "encode_png", "decode_png"]

PathLike = Union[str, "os.PathLike[str]"]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_CHANNELS_BY_COLOR_TYPE: Dict[int, int] = {0: 1, 4: 2, 2: 3, 6: 4}
_COLOR_TYPE_BY_CHANNELS: Dict[int, int] = {c: t for t, c in _CHANNELS_BY_COLOR_TYPE.items()}
_COLOR_TYPE_NAMES = {0: "greyscale", 2: "RGB", 3: "palette", 4: "greyscale+alpha", 6: "RGBA"}
_IDAT_CHUNK_BYTES = 1 << 20  # split the compressed stream into 1 MiB IDAT chunks


# ----------------------------------------------------------------------------- writing


def _chunk(kind: bytes, data: bytes) -> bytes:
    """One PNG chunk: length, type, data, CRC-32 of type + data."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _as_image(array: np.ndarray) -> np.ndarray:
    """`array` as a contiguous uint8 [H, W, C] array, C in 1..4, or a ValueError."""
    if hasattr(array, "detach"):  # a torch tensor
        array = array.detach().cpu().numpy()
    array = np.asarray(array)
    if array.dtype != np.uint8:
        raise ValueError(f"fastseg.png.save_png: array must be uint8, got {array.dtype}")
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[2] not in _COLOR_TYPE_BY_CHANNELS:
        raise ValueError("fastseg.png.save_png: array must be [H, W] (grey) or [H, W, C] with C in "
                         f"(2, 3, 4), got shape {tuple(array.shape)}")
    if array.shape[0] < 1 or array.shape[1] < 1:
        raise ValueError(f"fastseg.png.save_png: array must be at least 1x1, got shape {tuple(array.shape)}")
    return np.ascontiguousarray(array)


def _filter_rows(rows: np.ndarray, bpp: int) -> np.ndarray:
    """Filtered scanlines [H, 1 + stride] (filter byte first), each row None, Sub or Up,
    whichever has the smallest sum of |residual| with residuals read as signed bytes."""
    sub = rows.copy()
    sub[:, bpp:] -= rows[:, :-bpp]  # uint8 arithmetic wraps mod 256, as PNG wants
    up = rows.copy()
    up[1:] -= rows[:-1]
    candidates = np.stack([rows, sub, up])  # [3, H, stride]
    cost = np.abs(candidates.view(np.int8).astype(np.int16)).sum(axis=2, dtype=np.int64)
    choice = cost.argmin(axis=0)  # ties go to the simplest filter
    out = np.empty((rows.shape[0], rows.shape[1] + 1), np.uint8)
    out[:, 0] = choice
    out[:, 1:] = np.take_along_axis(candidates, choice[None, :, None], axis=0)[0]
    return out


def encode_png(array: np.ndarray, compress_level: int = 6) -> bytes:
    """The PNG file bytes for a uint8 [H, W] or [H, W, C] (C = 2, 3, 4) image."""
    image = _as_image(array)
    h, w, c = image.shape
    ihdr = struct.pack(">IIBBBBB", w, h, 8, _COLOR_TYPE_BY_CHANNELS[c], 0, 0, 0)
    data = zlib.compress(_filter_rows(image.reshape(h, w * c), c).tobytes(), compress_level)
    idats = [_chunk(b"IDAT", data[i:i + _IDAT_CHUNK_BYTES])
             for i in range(0, max(len(data), 1), _IDAT_CHUNK_BYTES)]
    return PNG_SIGNATURE + _chunk(b"IHDR", ihdr) + b"".join(idats) + _chunk(b"IEND", b"")


def save_png(path: Union[PathLike, BinaryIO], array: np.ndarray, compress_level: int = 6) -> None:
    """Write a uint8 [H, W] (grey) or [H, W, 3] (RGB; also 2 and 4 channels) image as a PNG to a
    path or a binary file object."""
    data = encode_png(array, compress_level)
    if hasattr(path, "write"):
        path.write(data)
        return
    with open(path, "wb") as f:
        f.write(data)


# ----------------------------------------------------------------------------- reading


def _read_chunks(data: bytes) -> List[Tuple[bytes, bytes]]:
    """(type, data) of every chunk up to IEND, CRCs checked."""
    if data[:8] != PNG_SIGNATURE:
        raise ValueError("fastseg.png.load_png: not a PNG file (bad signature)")
    chunks, pos = [], 8
    while True:
        if pos + 8 > len(data):
            raise ValueError("fastseg.png.load_png: truncated PNG (no IEND chunk)")
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        crc = data[pos + 8 + length:pos + 12 + length]
        if len(body) != length or len(crc) != 4:
            raise ValueError(f"fastseg.png.load_png: truncated PNG (in chunk {kind!r})")
        if struct.unpack(">I", crc)[0] != zlib.crc32(kind + body):
            raise ValueError(f"fastseg.png.load_png: corrupt PNG (CRC mismatch in chunk {kind!r})")
        chunks.append((kind, body))
        pos += 12 + length
        if kind == b"IEND":
            return chunks


def _parse_header(ihdr: bytes) -> Tuple[int, int, int]:
    """(height, width, channels) from IHDR, or a ValueError for what this reader does not do."""
    if len(ihdr) != 13:
        raise ValueError(f"fastseg.png.load_png: IHDR must be 13 bytes, got {len(ihdr)}")
    w, h, depth, color, compression, filtering, interlace = struct.unpack(">IIBBBBB", ihdr)
    if color not in _CHANNELS_BY_COLOR_TYPE:
        name = _COLOR_TYPE_NAMES.get(color, f"unknown colour type {color}")
        raise ValueError(f"fastseg.png.load_png: unsupported PNG colour type {color} ({name}); "
                         "only 8-bit greyscale, greyscale+alpha, RGB and RGBA are supported")
    if depth != 8:
        raise ValueError(f"fastseg.png.load_png: unsupported PNG bit depth {depth}; only 8-bit is supported")
    if interlace != 0:
        raise ValueError("fastseg.png.load_png: unsupported interlaced (Adam7) PNG; "
                         "only non-interlaced PNGs are supported")
    if compression != 0 or filtering != 0:
        raise ValueError(f"fastseg.png.load_png: invalid PNG compression/filter method "
                         f"{compression}/{filtering} (both must be 0)")
    if w == 0 or h == 0:
        raise ValueError(f"fastseg.png.load_png: invalid PNG size {w}x{h}")
    return h, w, _CHANNELS_BY_COLOR_TYPE[color]


def _unfilter_simple(raw: np.ndarray, types: np.ndarray, bpp: int) -> np.ndarray:
    """Undo filters None (0), Sub (1) and Up (2) on raw scanlines [H, stride].

    None and Sub rows do not depend on the row above, so they are all undone at once; each
    maximal run of Up rows is then a cumulative sum down the columns from the row before it.
    """
    h, stride = raw.shape
    out = raw.copy()
    sub = types == 1
    if sub.any():  # cumulative sum along x, per channel, wrapping mod 256
        rows = raw[sub].reshape(int(sub.sum()), stride // bpp, bpp)
        out[sub] = np.cumsum(rows, axis=1, dtype=np.uint8).reshape(-1, stride)
    is_up = np.concatenate([[False], types == 2, [False]])
    starts = np.flatnonzero(is_up[1:] & ~is_up[:-1])
    ends = np.flatnonzero(~is_up[1:] & is_up[:-1])
    for y0, y1 in zip(starts, ends):
        run = np.cumsum(raw[y0:y1], axis=0, dtype=np.uint8)
        out[y0:y1] = run + out[y0 - 1] if y0 > 0 else run
    return out


def _unfilter_wavefront(raw: np.ndarray, types: np.ndarray, bpp: int) -> np.ndarray:
    """Undo any mix of the five filters on raw scanlines [H, stride], along anti-diagonals.

    Pixel (y, x) needs its left (a), upper (b) and upper-left (c) neighbours, all on earlier
    anti-diagonals y + x = const. In a buffer padded with one zero row on top and one zero
    column on the left, flattened to [(H+1)*(W+1), bpp], an anti-diagonal is a slice with step W,
    and a, b, c are the same slice shifted by -1, -(W+1), -(W+2): plain views, no gathers.
    """
    h, stride = raw.shape
    w = stride // bpp
    pad = np.zeros((h + 1, w + 1, bpp), np.int16)
    filt = np.zeros((h + 1, w + 1, bpp), np.int16)
    filt[1:, 1:] = raw.reshape(h, w, bpp)
    pad_flat, filt_flat = pad.reshape(-1, bpp), filt.reshape(-1, bpp)
    row_type = types.astype(np.int16)
    for d in range(h + w - 1):
        y0, y1 = max(0, d - w + 1), min(h - 1, d)  # rows on this anti-diagonal
        start = (y0 + 1) * (w + 1) + (d - y0 + 1)
        sl = slice(start, start + (y1 - y0) * w + 1, max(w, 1))
        a = pad_flat[start - 1:start - 1 + (y1 - y0) * w + 1:max(w, 1)]
        b = pad_flat[start - w - 1:start - w - 1 + (y1 - y0) * w + 1:max(w, 1)]
        c = pad_flat[start - w - 2:start - w - 2 + (y1 - y0) * w + 1:max(w, 1)]
        t = row_type[y0:y1 + 1, None]
        pa, pb, pc = np.abs(b - c), np.abs(a - c), np.abs(a + b - 2 * c)
        paeth = np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))
        pred = np.where(t == 1, a, np.where(t == 2, b, np.where(t == 3, (a + b) >> 1,
                                                                np.where(t == 4, paeth, 0))))
        pad_flat[sl] = (filt_flat[sl] + pred) & 0xFF
    return pad[1:, 1:].astype(np.uint8).reshape(h, stride)


def decode_png(data: bytes) -> np.ndarray:
    """The image in PNG file bytes: uint8 [H, W] for greyscale, [H, W, C] otherwise."""
    chunks = _read_chunks(bytes(data))
    if chunks[0][0] != b"IHDR":
        raise ValueError("fastseg.png.load_png: invalid PNG (first chunk is not IHDR)")
    h, w, c = _parse_header(chunks[0][1])
    for kind, _ in chunks[1:]:
        if kind[0:1].isupper() and kind not in (b"IDAT", b"IEND", b"PLTE"):
            raise ValueError(f"fastseg.png.load_png: unsupported critical PNG chunk {kind!r}")
    try:
        raw = zlib.decompress(b"".join(body for kind, body in chunks if kind == b"IDAT"))
    except zlib.error as e:
        raise ValueError(f"fastseg.png.load_png: corrupt PNG image data ({e})") from None
    stride = w * c
    if len(raw) != h * (stride + 1):
        raise ValueError(f"fastseg.png.load_png: corrupt PNG: {len(raw)} bytes of image data, "
                         f"expected {h * (stride + 1)} for {w}x{h}x{c}")
    rows = np.frombuffer(raw, np.uint8).reshape(h, stride + 1)
    types = rows[:, 0]
    if types.max() > 4:
        raise ValueError(f"fastseg.png.load_png: corrupt PNG: filter type {int(types.max())} "
                         f"in row {int(types.argmax())} (valid: 0-4)")
    unfilter = _unfilter_simple if types.max() <= 2 else _unfilter_wavefront
    image = unfilter(rows[:, 1:], types, c).reshape(h, w, c)
    return image[:, :, 0] if c == 1 else image


def load_png(path: Union[PathLike, BinaryIO]) -> np.ndarray:
    """Read an 8-bit non-interlaced grey/grey+alpha/RGB/RGBA PNG from a path or binary file
    object: uint8 [H, W] for greyscale, [H, W, C] otherwise. ValueError for other PNGs."""
    if hasattr(path, "read"):
        return decode_png(path.read())
    with open(path, "rb") as f:
        return decode_png(f.read())
