"""fastseg.panoptic_format: COCO panoptic / Cityscapes encodings, the colour picture, and PNG
files (through Pillow, an optional dependency: the PNG tests skip without it).

Pure Python; needs no compiled ops. `load_png` is checked on files from an independent per-byte
encoder written here from the PNG specification (every filter type, chunk layout), and
`save_png`'s files are read back by Pillow directly, not by `load_png` alone.
"""
import io
import struct
import zlib

import numpy as np
import pytest
import torch

from fastseg import panoptic_format as pf

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")


def needs_pil():
    """Pillow, or skip: only the PNG file tests need it."""
    return pytest.importorskip("PIL.Image", reason="PNG files need Pillow (pip install pillow)")


# ----------------------------------------------------------------------------- helpers


def random_panoptic(rng, h, w, ids, things_every=2):
    """A random map using every id in `ids` (plus void) and its exact segments_info: things in
    5 categories (so several instances per category), one stuff segment per stuff category."""
    ids = np.asarray(ids, np.int64)
    choices = np.concatenate([[0], ids])
    m = choices[rng.integers(0, len(choices), (h, w))]
    m.ravel()[rng.permutation(h * w)[:len(ids)]] = ids  # every id appears at least once
    segments = []
    for k, sid in enumerate(ids.tolist()):
        thing = k % things_every == 0
        seg = {"id": sid, "category_id": 1 + k % 5 if thing else 100 + k, "isthing": thing,
               "area": int((m == sid).sum())}
        if thing:
            seg["score"] = float(rng.random())
        segments.append(seg)
    return m, segments


def categories_of(segments):
    return [{"id": s["category_id"], "isthing": int(s["isthing"]), "name": "c"} for s in segments]


def decode_coco_ids(rgb):
    rgb = rgb.astype(np.int64)
    return rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]


# ----------------------------------------------------------------------------- COCO panoptic


@pytest.mark.parametrize("id_range", [(1, 200), (1, 70000), (60000, 256 ** 3)], ids=["small", "gt255", "gt65535"])
def test_coco_round_trip(id_range):
    rng = np.random.default_rng(id_range[1])
    for trial in range(5):
        h, w = rng.integers(1, 40, 2)
        ids = rng.choice(np.arange(*id_range), size=int(rng.integers(1, 12)), replace=False)
        m, segments = random_panoptic(rng, h, w, ids)
        for dtype in (torch.int32, torch.int64):
            rgb, ann = pf.to_coco_panoptic(torch.from_numpy(m).to(dtype), segments, image_id=trial)
            assert rgb.dtype == np.uint8 and rgb.shape == (h, w, 3)
            np.testing.assert_array_equal(decode_coco_ids(rgb), m)
            assert ann["image_id"] == trial and ann["file_name"] == f"{trial}.png"
            back, back_segments = pf.from_coco_panoptic(rgb, ann, categories=categories_of(segments))
            assert back.dtype == torch.int32 and back.device.type == "cpu"
            np.testing.assert_array_equal(back.numpy(), m)
            assert back_segments == segments


@pytest.mark.parametrize("id_range", [(1, 200), (1, 70000), (60000, 256 ** 3)], ids=["small", "gt255", "gt65535"])
def test_coco_round_trip_through_png(id_range):
    """Through a PNG file, as a COCO submission would go: byte-exact ids."""
    needs_pil()
    rng = np.random.default_rng(id_range[1] + 1)
    for trial in range(5):
        h, w = rng.integers(1, 40, 2)
        ids = rng.choice(np.arange(*id_range), size=int(rng.integers(1, 12)), replace=False)
        m, segments = random_panoptic(rng, h, w, ids)
        rgb, ann = pf.to_coco_panoptic(torch.from_numpy(m), segments, image_id=trial)
        buf = io.BytesIO()
        pf.save_png(buf, rgb)
        buf.seek(0)
        back, back_segments = pf.from_coco_panoptic(pf.load_png(buf), ann["segments_info"])
        np.testing.assert_array_equal(back.numpy(), m)
        assert back_segments == segments  # isthing/score travel as extra annotation keys


def test_cityscapes_ids_through_16bit_png(tmp_path):
    """Cityscapes instanceIds (category * 1000 + instance) fit 16-bit grey PNGs: exact."""
    needs_pil()
    m = np.array([[0, 1, 2, 3], [3, 2, 4, 0]], np.int32)
    segments = [{"id": 1, "category_id": 26, "isthing": True}, {"id": 2, "category_id": 26, "isthing": True},
                {"id": 3, "category_id": 7, "isthing": False}, {"id": 4, "category_id": 33, "isthing": True}]
    ids = pf.to_cityscapes_ids(m, segments).numpy()
    assert ids.max() > 255
    pf.save_png(tmp_path / "x_instanceIds.png", ids.astype(np.uint16))
    back = pf.load_png(tmp_path / "x_instanceIds.png")
    assert back.dtype == np.uint16
    np.testing.assert_array_equal(back, ids)


def test_coco_exact_rgb_hand_example():
    m = np.array([[0, 1, 256], [65536, 300, 256 ** 3 - 1]], np.int32)
    segments = [{"id": int(i), "category_id": 1, "isthing": True} for i in m.ravel() if i]
    rgb, _ = pf.to_coco_panoptic(m, segments)
    expected = np.array([[[0, 0, 0], [1, 0, 0], [0, 1, 0]],
                         [[0, 0, 1], [44, 1, 0], [255, 255, 255]]], np.uint8)
    np.testing.assert_array_equal(rgb, expected)


def test_coco_bbox_area_hand_example():
    m = torch.tensor([[0, 0, 3, 3, 0],
                      [1, 1, 3, 0, 0],
                      [1, 0, 0, 0, 7],
                      [0, 0, 0, 0, 7]], dtype=torch.int16)
    segments = [
        {"id": 7, "category_id": 21, "isthing": False, "area": 999},          # area is recomputed
        {"id": 9, "category_id": 2, "isthing": True, "area": 0, "score": 0.1},  # absent: dropped
        {"id": 1, "category_id": 3, "isthing": True, "area": 3, "score": 0.5},
        {"id": 3, "category_id": 3, "isthing": True, "area": 3, "score": 0.25, "iscrowd": 1},
    ]
    _, ann = pf.to_coco_panoptic(m, segments, image_id=42)
    assert ann == {"image_id": 42, "file_name": "42.png", "segments_info": [
        {"id": 7, "category_id": 21, "iscrowd": 0, "bbox": [4, 2, 1, 2], "area": 2, "isthing": False},
        {"id": 1, "category_id": 3, "iscrowd": 0, "bbox": [0, 1, 2, 2], "area": 3, "isthing": True, "score": 0.5},
        {"id": 3, "category_id": 3, "iscrowd": 1, "bbox": [2, 0, 2, 2], "area": 3, "isthing": True, "score": 0.25},
    ]}
    _, ann = pf.to_coco_panoptic(m, segments, image_id=5, file_name="x/y.png")
    assert ann["file_name"] == "x/y.png"
    for seg in ann["segments_info"]:  # plain Python types, so json.dump works
        assert all(type(v) is int for v in seg["bbox"]) and type(seg["area"]) is int


def test_coco_bbox_matches_brute_force():
    rng = np.random.default_rng(3)
    m, segments = random_panoptic(rng, 23, 31, [5, 6, 400, 70000])
    _, ann = pf.to_coco_panoptic(m, segments)
    for seg in ann["segments_info"]:
        ys, xs = np.nonzero(m == seg["id"])
        assert seg["bbox"] == [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
        assert seg["area"] == len(ys)


def test_from_coco_categories():
    rgb = np.zeros((2, 2, 3), np.uint8)
    rgb[0, 0] = (1, 0, 0)
    rgb[1, 1] = (2, 1, 0)  # id 258
    segments = [{"id": 1, "category_id": 1, "iscrowd": 0, "bbox": [0, 0, 1, 1], "area": 1},
                {"id": 258, "category_id": 92, "iscrowd": 0, "bbox": [1, 1, 1, 1], "area": 1, "isthing": True},
                {"id": 5, "category_id": 1, "iscrowd": 1, "bbox": [0, 0, 0, 0], "area": 0}]
    categories = [{"id": 1, "name": "person", "isthing": 1}, {"id": 92, "name": "banner", "isthing": 0}]
    panoptic, info = pf.from_coco_panoptic(rgb, {"segments_info": segments}, categories)
    np.testing.assert_array_equal(panoptic.numpy(), [[1, 0], [0, 258]])
    assert info == [{"id": 1, "category_id": 1, "isthing": True, "area": 1},
                    {"id": 258, "category_id": 92, "isthing": False, "area": 1},  # categories win
                    {"id": 5, "category_id": 1, "isthing": True, "area": 0, "iscrowd": 1}]
    _, info = pf.from_coco_panoptic(rgb, segments, {92: True})
    assert [s["isthing"] for s in info] == [None, True, None]  # unknown: segment's key, else None
    _, info = pf.from_coco_panoptic(rgb, segments)
    assert [s["isthing"] for s in info] == [None, True, None]


# ----------------------------------------------------------------------------- Cityscapes

CS_MAP = np.array([[0, 5, 5, 2],
                   [3, 3, 9, 2],
                   [4, 4, 9, 2]])
CS_SEGMENTS = [{"id": 2, "category_id": 7, "isthing": False},
               {"id": 9, "category_id": 26, "isthing": True, "score": 0.9},
               {"id": 4, "category_id": 26, "isthing": True, "score": 0.8},
               {"id": 3, "category_id": 26, "isthing": True, "score": 0.7},
               {"id": 5, "category_id": 24, "isthing": True, "score": 0.6},
               {"id": 11, "category_id": 26, "isthing": True, "score": 0.5}]  # absent: takes no index
CS_IDS = np.array([[0, 24000, 24000, 7],
                   [26000, 26000, 26002, 7],
                   [26001, 26001, 26002, 7]])


def test_cityscapes_hand_example():
    ids = pf.to_cityscapes_ids(torch.from_numpy(CS_MAP), CS_SEGMENTS)
    assert ids.dtype == torch.int32
    np.testing.assert_array_equal(ids.numpy(), CS_IDS)

    panoptic, info = pf.from_cityscapes_ids(CS_IDS, thing_ids={24, 26})
    np.testing.assert_array_equal(panoptic.numpy(), [[0, 2, 2, 1], [3, 3, 5, 1], [4, 4, 5, 1]])
    assert info == [{"id": 1, "category_id": 7, "isthing": False, "area": 3},
                    {"id": 2, "category_id": 24, "isthing": True, "area": 2},
                    {"id": 3, "category_id": 26, "isthing": True, "area": 2},
                    {"id": 4, "category_id": 26, "isthing": True, "area": 2},
                    {"id": 5, "category_id": 26, "isthing": True, "area": 2}]
    np.testing.assert_array_equal(pf.to_cityscapes_ids(panoptic, info).numpy(), CS_IDS)

    panoptic, info = pf.from_cityscapes_ids(CS_IDS, [24, 26], keep_ids=True)
    np.testing.assert_array_equal(panoptic.numpy(), CS_IDS)
    assert [s["id"] for s in info] == [7, 24000, 26000, 26001, 26002]


def test_cityscapes_crowd():
    segments = [dict(s, iscrowd=1) if s["id"] == 9 else s for s in CS_SEGMENTS]
    ids = pf.to_cityscapes_ids(CS_MAP, segments).numpy()
    np.testing.assert_array_equal(ids[1:, 2], [26, 26])  # crowd: bare category id, no index
    np.testing.assert_array_equal(ids[1:, 0], [26000, 26001])
    _, info = pf.from_cityscapes_ids(ids, [24, 26])
    assert {"id": 2, "category_id": 26, "isthing": True, "area": 2, "iscrowd": 1} in info


def test_cityscapes_round_trip_random():
    rng = np.random.default_rng(7)
    for _ in range(10):
        m, segments = random_panoptic(rng, 17, 19, rng.choice(np.arange(1, 5000), 15, replace=False))
        cs = pf.to_cityscapes_ids(m, segments).numpy()
        panoptic, info = pf.from_cityscapes_ids(cs, {s["category_id"] for s in segments if s["isthing"]})
        p = panoptic.numpy()
        pairs = set(zip(m.ravel().tolist(), p.ravel().tolist()))  # renumbering is a bijection
        assert len(pairs) == len({a for a, _ in pairs}) == len({b for _, b in pairs})
        old = {s["id"]: s for s in segments}
        for seg in info:
            (orig,) = {a for a, b in pairs if b == seg["id"]}
            assert (seg["category_id"], seg["isthing"], seg["area"]) == (
                old[orig]["category_id"], old[orig]["isthing"], old[orig]["area"])
        np.testing.assert_array_equal(pf.to_cityscapes_ids(panoptic, info).numpy(), cs)


# ----------------------------------------------------------------------------- colorize


def test_colorize_deterministic_void_black_instances_distinct():
    m = np.zeros((6, 8), np.int32)
    m[:, 1:4] = 3        # two touching instances of category 5
    m[:, 4:7] = 8
    m[5, :] = 20         # a stuff strip along the bottom
    segments = [{"id": 3, "category_id": 5, "isthing": True, "score": 0.9},
                {"id": 8, "category_id": 5, "isthing": True, "score": 0.8},
                {"id": 20, "category_id": 5, "isthing": False}]
    for boundaries in (False, True):
        a = pf.colorize_panoptic(torch.from_numpy(m), segments, boundaries=boundaries)
        b = pf.colorize_panoptic(m.astype(np.uint16), list(reversed(segments)), boundaries=boundaries)
        assert a.dtype == np.uint8 and a.shape == (6, 8, 3)
        np.testing.assert_array_equal(a, b)
        assert (a[m == 0] == 0).all()
        assert (a[m != 0].max(axis=1) > 0).all()  # no segment is drawn black
    plain = pf.colorize_panoptic(m, segments, boundaries=False)
    c3, c8, c20 = plain[0, 1], plain[0, 5], plain[5, 0]
    assert len({tuple(c3), tuple(c8), tuple(c20)}) == 3
    for sid, colour in ((3, c3), (8, c8), (20, c20)):
        assert (plain[m == sid] == colour).all()  # one colour per segment


def test_colorize_boundaries_one_pixel():
    m = np.array([[1, 1, 2, 2, 0, 0]] * 3, np.int32)
    segments = [{"id": 1, "category_id": 1, "isthing": False}, {"id": 2, "category_id": 2, "isthing": False}]
    img = pf.colorize_panoptic(m, segments)
    white = (img == 255).all(axis=2)
    np.testing.assert_array_equal(white, [[False, False, True, True, False, False]] * 3)
    assert (img[:, 4:] == 0).all()


def test_colorize_greedy_instance_colours():
    # a chain 1-2-3-4 of touching instances of one class and a disjoint one
    m = np.array([[1, 2, 3, 4, 0, 5]], np.int32)
    segments = [{"id": i, "category_id": 9, "isthing": True} for i in range(1, 6)]
    img = pf.colorize_panoptic(m, segments, boundaries=False)[0]
    for x in range(3):
        assert tuple(img[x]) != tuple(img[x + 1])
    colours = [pf.category_color(9, True, v) for v in range(12)]
    assert len(set(colours)) == 12
    assert all(tuple(c) in colours for c in img[[0, 1, 2, 3, 5]])


def test_category_colors_distinct():
    stuff = {pf.category_color(c, False) for c in range(1, 201)}
    things = {pf.category_color(c, True) for c in range(1, 201)}
    assert len(stuff) == len(things) == 200 and not stuff & things and (0, 0, 0) not in stuff | things


# ----------------------------------------------------------------------------- PNG: round trip


@pytest.mark.parametrize("shape", [(1, 1), (7, 13), (13, 7), (1, 40), (64, 33)])
@pytest.mark.parametrize("channels", [None, 2, 3, 4, "uint16"])
def test_png_round_trip(tmp_path, shape, channels):
    """save_png then load_png gives the array back exactly, and Pillow reading the file on its
    own (not through load_png) sees the same pixels, bit depth and colour type."""
    Image = needs_pil()
    rng = np.random.default_rng(shape[0] * 100 + shape[1])
    wide = channels == "uint16"
    dtype = np.uint16 if wide else np.uint8
    full = shape if channels in (None, "uint16") else shape + (channels,)
    top = 65536 if wide else 256
    smooth = (np.arange(np.prod(full)).reshape(full) * 7 // 3 % top).astype(dtype)
    for image in (rng.integers(0, top, full).astype(dtype), smooth, np.zeros(full, dtype),
                  np.full(full, top - 1, dtype)):
        path = tmp_path / "x.png"
        pf.save_png(path, image)
        data = path.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
        w, h, depth, color = struct.unpack(">IIBB", data[16:26])
        assert (h, w, depth) == (shape[0], shape[1], 16 if wide else 8)
        assert color == {None: 0, "uint16": 0, 2: 4, 3: 2, 4: 6}[channels]
        for back in (pf.load_png(str(path)), pf.load_png(path), pf.load_png(io.BytesIO(data))):
            assert back.dtype == dtype and back.flags.writeable
            np.testing.assert_array_equal(back, image)
        with Image.open(path) as im:
            np.testing.assert_array_equal(np.asarray(im).astype(dtype), image)


def test_png_tensor_and_file_object(tmp_path):
    needs_pil()
    t = torch.arange(2 * 3 * 3, dtype=torch.uint8).reshape(2, 3, 3)
    buf = io.BytesIO()
    pf.save_png(buf, t)
    buf.seek(0)
    np.testing.assert_array_equal(pf.load_png(buf), t.numpy())


def test_png_without_pillow(monkeypatch):
    """Pillow missing: a clear ImportError naming the install command (the rest of the module works)."""
    import sys
    monkeypatch.setitem(sys.modules, "PIL", None)
    monkeypatch.setitem(sys.modules, "PIL.Image", None)
    with pytest.raises(ImportError, match=r"fastseg\.save_png needs Pillow.*pip install pillow"):
        pf.save_png(io.BytesIO(), np.zeros((2, 2), np.uint8))
    with pytest.raises(ImportError, match=r"fastseg\.load_png needs Pillow.*pip install pillow"):
        pf.load_png(io.BytesIO(_hand_png(np.zeros((2, 2), np.uint8), (0,))))
    rgb, _ = pf.to_coco_panoptic(np.array([[1]], np.int32), [{"id": 1, "category_id": 1, "isthing": True}])
    assert rgb.tolist() == [[[1, 0, 0]]]


# ----------------------------------------------------------------------------- PNG: independent encoder


def _paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def _filter_line(ftype, line, prev, bpp):
    """One scanline filtered per the PNG spec, byte by byte (independent of Pillow)."""
    out = bytearray([ftype])
    for i, x in enumerate(line):
        a = line[i - bpp] if i >= bpp else 0
        b = prev[i]
        c = prev[i - bpp] if i >= bpp else 0
        pred = (0, a, b, (a + b) // 2, _paeth(a, b, c))[ftype]
        out.append((x - pred) % 256)
    return bytes(out)


def _chunk(kind, body):
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _hand_png(image, row_types, color_type=None, depth=8, interlace=0, extra=(), idat_pieces=1):
    """PNG bytes of `image` (uint8; uint16 big-endian for depth 16) with the given row filters."""
    h, w = image.shape[:2]
    channels = 1 if image.ndim == 2 else image.shape[2]
    if color_type is None:
        color_type = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
    if image.dtype == np.uint16:
        image = image.astype(">u2").view(np.uint8).reshape(h, w, -1)
    bpp = channels * (depth // 8)
    lines = [bytes(r) for r in image.reshape(h, -1).tolist()]
    prev = bytes(len(lines[0]))
    raw = b""
    for y, line in enumerate(lines):
        raw += _filter_line(row_types[y % len(row_types)], line, prev, bpp)
        prev = line
    z = zlib.compress(raw, 9)
    cut = [len(z) * k // idat_pieces for k in range(idat_pieces + 1)]
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, color_type, 0, 0, interlace))
            + b"".join(extra) + b"".join(_chunk(b"IDAT", z[cut[k]:cut[k + 1]]) for k in range(idat_pieces))
            + _chunk(b"IEND", b""))


def _load(data):
    return pf.load_png(io.BytesIO(data))


@pytest.mark.parametrize("row_types", [(0,), (1,), (2,), (3,), (4,), (0, 1, 2), (2, 2, 1, 0), (4, 3, 2, 1, 0), (3, 4, 4, 1)])
@pytest.mark.parametrize("shape", [(7, 13, 3), (13, 7), (5, 9, 4), (6, 5, 2), (1, 1, 3), (1, 17), (11, 1, 3)])
def test_png_decodes_every_filter_type(row_types, shape):
    needs_pil()
    rng = np.random.default_rng(sum(shape) * 10 + len(row_types))
    noise = rng.integers(0, 256, shape, dtype=np.uint8)
    smooth = np.clip(np.cumsum(rng.integers(-3, 4, shape), axis=0) + 128, 0, 255).astype(np.uint8)
    for image in (noise, smooth):
        np.testing.assert_array_equal(_load(_hand_png(image, row_types)), image)


def test_png_decoder_wide_paeth_image():
    needs_pil()
    rng = np.random.default_rng(11)
    image = rng.integers(0, 256, (40, 90, 3), dtype=np.uint8)
    image[:, 30:60] = 17  # flat area: Paeth picks a, b and c in different places
    data = _hand_png(image, (4, 3, 4, 1, 2, 0), idat_pieces=5,
                     extra=[_chunk(b"tEXt", b"Software\x00test"), _chunk(b"PLTE", b"\x00" * 6)])
    np.testing.assert_array_equal(_load(data), image)


def test_png_16bit_grey_and_palette():
    needs_pil()
    rng = np.random.default_rng(12)
    wide = rng.integers(0, 65536, (9, 11)).astype(np.uint16)
    for rows in ((0,), (4, 3, 1, 2)):
        back = _load(_hand_png(wide, rows, depth=16))
        assert back.dtype == np.uint16
        np.testing.assert_array_equal(back, wide)
    # a palette image reads as the colours it shows
    palette = np.array([[0, 0, 0], [255, 0, 0], [1, 2, 3]], np.uint8)
    index = rng.integers(0, 3, (4, 5)).astype(np.uint8)
    data = _hand_png(index, (0, 1), color_type=3, extra=[_chunk(b"PLTE", palette.tobytes())])
    np.testing.assert_array_equal(_load(data), palette[index])


def test_png_unsupported_and_corrupt():
    needs_pil()
    image = np.zeros((2, 3, 3), np.uint8)
    # 16-bit colour: Pillow would keep only the high bytes; refused, never decoded wrongly
    wide = np.arange(2 * 3 * 3, dtype=np.uint16).reshape(2, 3, 3) * 257
    with pytest.raises(ValueError, match="^fastseg.load_png: unsupported 16-bit RGB PNG"):
        _load(_hand_png(wide, (0,), depth=16))
    good = _hand_png(image, (0,))
    np.testing.assert_array_equal(_load(good), image)
    with pytest.raises(ValueError, match="^fastseg.load_png: not a PNG file"):
        _load(b"GIF89a" + good[6:])
    with pytest.raises(ValueError, match="^fastseg.load_png: not a PNG file"):
        _load(b"")
    corrupt = [
        good[:20] + bytes([good[20] ^ 1]) + good[21:],  # IHDR CRC mismatch
        good[:30],  # truncated in the header
        good[:33] + _chunk(b"IDAT", zlib.compress(b"\x00" + bytes(9) + b"\x07" + bytes(9))) + _chunk(b"IEND", b""),
        good[:33] + _chunk(b"IDAT", zlib.compress(bytes(19))) + _chunk(b"IEND", b""),  # 19 of 20 bytes
        good[:33] + _chunk(b"IDAT", b"not zlib data") + _chunk(b"IEND", b""),
        good[:33] + _chunk(b"IEND", b""),  # no image data
    ]
    big = _hand_png(np.random.default_rng(0).integers(0, 256, (60, 70, 3), dtype=np.uint8), (1,))
    corrupt.append(big[:len(big) // 2])  # truncated in the image data
    for i, data in enumerate(corrupt):
        with pytest.raises(ValueError, match="^fastseg.load_png: corrupt or unreadable PNG"):
            _load(data)


def test_save_png_bad_arrays():
    with pytest.raises(ValueError, match=r"^fastseg.save_png: array must be uint8"):
        pf.save_png(io.BytesIO(), np.zeros((2, 2, 3), np.float32))
    with pytest.raises(ValueError, match=r"array must be uint8"):
        pf.save_png(io.BytesIO(), np.zeros((2, 2), bool))
    with pytest.raises(ValueError, match=r"array must be \[H, W\]"):
        pf.save_png(io.BytesIO(), np.zeros((1, 2, 2, 3), np.uint8))
    with pytest.raises(ValueError, match=r"array must be \[H, W\]"):
        pf.save_png(io.BytesIO(), np.zeros((2, 2, 5), np.uint8))
    with pytest.raises(ValueError, match=r"uint16 array must be \[H, W\]"):
        pf.save_png(io.BytesIO(), np.zeros((2, 2, 3), np.uint16))
    with pytest.raises(ValueError, match=r"at least 1x1"):
        pf.save_png(io.BytesIO(), np.zeros((0, 2, 3), np.uint8))


# ----------------------------------------------------------------------------- bad inputs

SEG = [{"id": 1, "category_id": 1, "isthing": True}]


@pytest.mark.parametrize("fn", [pf.to_coco_panoptic, pf.to_cityscapes_ids, pf.colorize_panoptic])
def test_bad_panoptic(fn):
    name = fn.__name__
    with pytest.raises(ValueError, match=rf"fastseg.{name}: panoptic must be \[H, W\]"):
        fn(torch.ones(1, 2, 2, dtype=torch.int32), SEG)
    with pytest.raises(ValueError, match=rf"fastseg.{name}: panoptic must hold ids >= 0"):
        fn(np.array([[1, -1]]), SEG)
    with pytest.raises(ValueError, match=rf"fastseg.{name}: panoptic must have an integer dtype"):
        fn(torch.ones(2, 2), SEG)
    with pytest.raises(ValueError, match=rf"fastseg.{name}: panoptic contains segment ids missing from segments_info: 2, 70000"):
        fn(np.array([[1, 2], [70000, 0]]), SEG)
    with pytest.raises(ValueError, match=rf"fastseg.{name}: segments_info lists segment id 1 twice"):
        fn(np.array([[1]]), SEG + SEG)
    with pytest.raises(ValueError, match=rf"fastseg.{name}: segments_info\[0\] has id 0"):
        fn(np.array([[1]]), [{"id": 0, "category_id": 1}])
    with pytest.raises(ValueError, match=rf"fastseg.{name}: segments_info must be a list"):
        fn(np.array([[1]]), {"id": 1, "category_id": 1})


def test_bad_coco_args():
    with pytest.raises(ValueError, match="panoptic ids must be < 256"):
        pf.to_coco_panoptic(np.array([[256 ** 3]]), [{"id": 256 ** 3, "category_id": 1}])
    with pytest.raises(ValueError, match=r"from_coco_panoptic: rgb must be uint8 \[H, W, 3\]"):
        pf.from_coco_panoptic(np.zeros((2, 2), np.uint8), [])
    with pytest.raises(ValueError, match=r"rgb must be uint8"):
        pf.from_coco_panoptic(np.zeros((2, 2, 3), np.int32), [])
    with pytest.raises(ValueError, match="rgb contains segment ids missing from annotation_or_segments: 1"):
        pf.from_coco_panoptic(np.array([[[1, 0, 0]]], np.uint8), [])
    with pytest.raises(ValueError, match="annotation_or_segments is a dict without 'segments_info'"):
        pf.from_coco_panoptic(np.zeros((1, 1, 3), np.uint8), {"image_id": 1})
    with pytest.raises(ValueError, match=r"categories\[0\] must be a dict with 'id' and 'isthing'"):
        pf.from_coco_panoptic(np.zeros((1, 1, 3), np.uint8), [], categories=[{"id": 1}])


def test_bad_cityscapes_args():
    with pytest.raises(ValueError, match="segment 1 has no 'isthing'"):
        pf.to_cityscapes_ids(np.array([[1]]), [{"id": 1, "category_id": 3}])
    with pytest.raises(ValueError, match="stuff category_id 1000"):
        pf.to_cityscapes_ids(np.array([[1]]), [{"id": 1, "category_id": 1000, "isthing": False}])
    with pytest.raises(ValueError, match="category_id 0; must be >= 1"):
        pf.to_cityscapes_ids(np.array([[1]]), [{"id": 1, "category_id": 0, "isthing": False}])
    with pytest.raises(ValueError, match="category 3 has more than 1000 instances"):
        m = np.arange(1, 1002).reshape(1, -1)
        pf.to_cityscapes_ids(m, [{"id": i, "category_id": 3, "isthing": True} for i in range(1, 1002)])
    with pytest.raises(ValueError, match="ids_map value 26001 is an instance of category 26, which is not in thing_ids"):
        pf.from_cityscapes_ids(np.array([[7, 26001]]), [24])
    with pytest.raises(ValueError, match=r"from_cityscapes_ids: ids_map must be \[H, W\]"):
        pf.from_cityscapes_ids(np.zeros(3, np.int32), [24])
    with pytest.raises(ValueError, match="from_cityscapes_ids: ids_map must hold ids >= 0"):
        pf.from_cityscapes_ids(np.array([[-1]]), [24])


# ----------------------------------------------------------------------------- CUDA inputs


@needs_cuda
def test_cuda_inputs():
    rng = np.random.default_rng(5)
    m, segments = random_panoptic(rng, 9, 14, [3, 300, 70000, 12])
    cuda = torch.from_numpy(m).to(torch.int32).cuda()
    rgb, ann = pf.to_coco_panoptic(cuda, segments)
    assert (rgb, ann)[1] == pf.to_coco_panoptic(m, segments)[1]
    np.testing.assert_array_equal(rgb, pf.to_coco_panoptic(m, segments)[0])
    back, _ = pf.from_coco_panoptic(torch.from_numpy(rgb).cuda(), ann)
    assert back.is_cuda and torch.equal(back.cpu(), torch.from_numpy(m).to(torch.int32))
    cs = pf.to_cityscapes_ids(cuda, segments)
    assert cs.is_cuda and torch.equal(cs.cpu(), pf.to_cityscapes_ids(m, segments))
    p, _ = pf.from_cityscapes_ids(cs, {s["category_id"] for s in segments if s["isthing"]})
    assert p.is_cuda
    np.testing.assert_array_equal(pf.colorize_panoptic(cuda, segments), pf.colorize_panoptic(m, segments))
