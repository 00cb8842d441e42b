"""Panoptic format helpers: COCO panoptic and Cityscapes encodings, a colour picture, PNG I/O.

fastseg's panoptic format (what the panoptic fusion ops produce):
- `panoptic`: an integer map [H, W] (int32 from the ops; any integer dtype, a CPU or CUDA tensor
  or a NumPy array is accepted here). 0 is void, segment ids are >= 1.
- `segments_info`: a list of dicts `{"id", "category_id", "isthing", "area"}`, plus `"score"` for
  things. Extra keys read or written here: `"iscrowd"` (COCO/Cityscapes crowd regions).

Conventions shared by every function:
- Areas and boxes always come from the map, never from `segments_info` (the map is the truth).
- A segment id in the map that is missing from `segments_info` is a ValueError naming the ids:
  silently inventing a category would corrupt evaluation.
- Tensors returned live on the device of the map argument when that is a tensor, else on the CPU.
- Errors name the function and the argument: `fastseg.to_coco_panoptic: panoptic must be ...`.

This module is NumPy + PyTorch; only `save_png` / `load_png` need Pillow (an optional dependency,
imported when they are called: `pip install pillow`). Arrays in, arrays out.
"""
from __future__ import annotations

import colorsys
import io
import os
from typing import Any, BinaryIO, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch

__all__ = [
    "to_coco_panoptic", "from_coco_panoptic", "to_cityscapes_ids", "from_cityscapes_ids",
    "colorize_panoptic", "category_color", "save_png", "load_png", "COCO_MAX_ID",
]

ArrayLike = Union[torch.Tensor, np.ndarray]
Segment = Dict[str, Any]

COCO_MAX_ID = 256 ** 3 - 1  # id = R + 256 G + 256^2 B in an 8-bit RGB PNG
CITYSCAPES_DIVISOR = 1000   # Cityscapes instanceIds: category_id * 1000 + instance index

# ----------------------------------------------------------------------------- argument checks


def _as_id_map(panoptic: Any, op: str, name: str) -> np.ndarray:
    """`panoptic` as an int64 NumPy [H, W] array of ids >= 0, or a ValueError naming `name`."""
    if isinstance(panoptic, torch.Tensor):
        panoptic = panoptic.detach().cpu().numpy()
    array = np.asarray(panoptic)
    if array.dtype.kind not in "iu":
        raise ValueError(f"fastseg.{op}: {name} must have an integer dtype, got {array.dtype}")
    if array.ndim != 2:
        raise ValueError(f"fastseg.{op}: {name} must be [H, W], got shape {tuple(array.shape)}")
    if array.dtype == np.uint64 and array.size and array.max() > np.iinfo(np.int64).max:
        raise ValueError(f"fastseg.{op}: {name} has ids beyond int64")
    array = array.astype(np.int64, copy=False)
    if array.size and array.min() < 0:
        raise ValueError(f"fastseg.{op}: {name} must hold ids >= 0 (0 = void), got {int(array.min())}")
    return array


def _device_of(x: Any) -> torch.device:
    return x.device if isinstance(x, torch.Tensor) else torch.device("cpu")


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _segments_by_id(segments: Any, op: str, name: str) -> Dict[int, Mapping[str, Any]]:
    """{id: segment} for a list of segment dicts with unique int ids >= 1 and int category ids."""
    if isinstance(segments, Mapping) or not isinstance(segments, Sequence):
        raise ValueError(f"fastseg.{op}: {name} must be a list of segment dicts, got {type(segments).__name__}")
    by_id: Dict[int, Mapping[str, Any]] = {}
    for i, seg in enumerate(segments):
        if not isinstance(seg, Mapping) or not _is_int(seg.get("id")) or not _is_int(seg.get("category_id")):
            raise ValueError(f"fastseg.{op}: {name}[{i}] must be a dict with int 'id' and 'category_id', got {seg!r}")
        sid = int(seg["id"])
        if sid < 1:
            raise ValueError(f"fastseg.{op}: {name}[{i}] has id {sid}; segment ids must be >= 1 (0 is void)")
        if sid in by_id:
            raise ValueError(f"fastseg.{op}: {name} lists segment id {sid} twice")
        by_id[sid] = seg
    return by_id


def _check_all_known(present: Iterable[int], by_id: Mapping[int, Any], op: str, map_name: str,
                     info_name: str) -> None:
    missing = sorted(i for i in present if i not in by_id)
    if missing:
        shown = ", ".join(map(str, missing[:10])) + (", ..." if len(missing) > 10 else "")
        raise ValueError(f"fastseg.{op}: {map_name} contains segment ids missing from {info_name}: {shown}")


# ----------------------------------------------------------------------------- per-segment statistics


def _label(ids: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """(sorted unique ids, label map [H, W] of indices into them). A lookup table when the ids
    are small (the usual 1..K from the fusion ops; much faster than sorting), else np.unique."""
    top = int(ids.max()) if ids.size else 0
    if top <= 4 * ids.size + 4096:
        present = np.zeros(top + 1, bool)
        present[ids] = True
        unique = np.flatnonzero(present)
        lut = np.zeros(top + 1, np.int64)
        lut[unique] = np.arange(len(unique))
        return unique, lut[ids]
    unique, inverse = np.unique(ids, return_inverse=True)
    return unique, inverse.reshape(ids.shape)


def _first_last(presence: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """For presence [N, K] (bool), the first and last index along N where each column is True."""
    n = presence.shape[0]
    return presence.argmax(axis=0), n - 1 - presence[::-1].argmax(axis=0)


def _segment_stats(ids: np.ndarray) -> Dict[int, Tuple[int, List[int]]]:
    """{id: (area, [x, y, w, h])} for every non-void id in the map (COCO box convention:
    top-left corner and size in pixels, so a single pixel at (x, y) is [x, y, 1, 1])."""
    h, w = ids.shape
    unique, labels = _label(ids)
    k = len(unique)
    if k == 0:
        return {}
    area = np.bincount(labels.ravel(), minlength=k)
    rows = np.bincount((labels + k * np.arange(h)[:, None]).ravel(), minlength=k * h).reshape(h, k) > 0
    cols = np.bincount((labels + k * np.arange(w)[None, :]).ravel(), minlength=k * w).reshape(w, k) > 0
    (y0, y1), (x0, x1) = _first_last(rows), _first_last(cols)
    return {int(i): (int(area[j]), [int(x0[j]), int(y0[j]), int(x1[j] - x0[j] + 1), int(y1[j] - y0[j] + 1)])
            for j, i in enumerate(unique) if i != 0}


# ----------------------------------------------------------------------------- COCO panoptic


def to_coco_panoptic(panoptic: ArrayLike, segments_info: Sequence[Segment], image_id: Any = 0,
                     file_name: Optional[str] = None) -> Tuple[np.ndarray, Dict[str, Any]]:
    """COCO panoptic encoding: (uint8 RGB [H, W, 3] with id = R + 256 G + 256^2 B, annotation).

    The annotation is `{"image_id", "file_name" (default f"{image_id}.png"), "segments_info":
    [{"id", "category_id", "iscrowd", "bbox": [x, y, w, h], "area"}]}`, segments in the order of
    `segments_info`, bbox and area computed from the map. `isthing` and `score` are kept as extra
    keys when present (COCO tools ignore unknown keys), so `from_coco_panoptic` inverts this exactly.

    Segments of `segments_info` absent from the map are dropped: panopticapi's pq_compute rejects
    a JSON segment that is not in the PNG. Ids must be < 256^3; ids in the map but not in
    `segments_info` are a ValueError.
    """
    op = "to_coco_panoptic"
    ids = _as_id_map(panoptic, op, "panoptic")
    by_id = _segments_by_id(segments_info, op, "segments_info")
    if ids.size and ids.max() > COCO_MAX_ID:
        raise ValueError(f"fastseg.{op}: panoptic ids must be < 256^3 = {COCO_MAX_ID + 1} for the COCO RGB "
                         f"encoding, got {int(ids.max())}")
    stats = _segment_stats(ids)
    _check_all_known(stats, by_id, op, "panoptic", "segments_info")
    rgb = np.stack([ids & 255, (ids >> 8) & 255, (ids >> 16) & 255], axis=-1).astype(np.uint8)
    segments = []
    for seg in segments_info:
        sid = int(seg["id"])
        if sid not in stats:
            continue
        area, bbox = stats[sid]
        out = {"id": sid, "category_id": int(seg["category_id"]), "iscrowd": int(seg.get("iscrowd", 0)),
               "bbox": bbox, "area": area}
        if seg.get("isthing") is not None:
            out["isthing"] = bool(seg["isthing"])
        if seg.get("score") is not None:
            out["score"] = float(seg["score"])
        segments.append(out)
    name = file_name if file_name is not None else f"{image_id}.png"
    return rgb, {"image_id": image_id, "file_name": name, "segments_info": segments}


def _isthing_table(categories: Any, op: str) -> Dict[int, bool]:
    """{category_id: isthing} from a COCO categories list, a dict id -> isthing, or None."""
    if categories is None:
        return {}
    if isinstance(categories, Mapping):
        return {int(k): bool(v) for k, v in categories.items()}
    table = {}
    for i, cat in enumerate(categories):
        if not isinstance(cat, Mapping) or "id" not in cat or "isthing" not in cat:
            raise ValueError(f"fastseg.{op}: categories[{i}] must be a dict with 'id' and 'isthing', got {cat!r}")
        table[int(cat["id"])] = bool(cat["isthing"])
    return table


def from_coco_panoptic(rgb: ArrayLike, annotation_or_segments: Union[Mapping[str, Any], Sequence[Segment]],
                       categories: Union[Sequence[Mapping[str, Any]], Mapping[int, Any], None] = None,
                       ) -> Tuple[torch.Tensor, List[Segment]]:
    """Inverse of `to_coco_panoptic`: (int32 panoptic [H, W], segments_info).

    `annotation_or_segments` is a COCO annotation dict (its "segments_info" is used) or that list.
    `isthing` comes from `categories` (COCO category dicts with "id" and "isthing", or a dict
    category_id -> isthing); for categories it does not know, from the segment's own "isthing"
    key if present, else None. `score` is kept when present, `iscrowd` when nonzero. Areas come
    from the map; segments absent from the map are kept with area 0 (reading is faithful).
    """
    op = "from_coco_panoptic"
    device = _device_of(rgb)
    if isinstance(rgb, torch.Tensor):
        rgb = rgb.detach().cpu().numpy()
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"fastseg.{op}: rgb must be uint8 [H, W, 3], got {rgb.dtype} of shape {tuple(rgb.shape)}")
    if isinstance(annotation_or_segments, Mapping):
        if "segments_info" not in annotation_or_segments:
            raise ValueError(f"fastseg.{op}: annotation_or_segments is a dict without 'segments_info'")
        segments = annotation_or_segments["segments_info"]
    else:
        segments = annotation_or_segments
    by_id = _segments_by_id(segments, op, "annotation_or_segments")
    isthing = _isthing_table(categories, op)
    rgb = rgb.astype(np.int32)
    ids = rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]
    stats = _segment_stats(ids)
    _check_all_known(stats, by_id, op, "rgb", "annotation_or_segments")
    out = []
    for seg in segments:
        sid, cat = int(seg["id"]), int(seg["category_id"])
        thing = isthing.get(cat, seg.get("isthing"))
        info = {"id": sid, "category_id": cat, "isthing": None if thing is None else bool(thing),
                "area": stats[sid][0] if sid in stats else 0}
        if seg.get("score") is not None:
            info["score"] = float(seg["score"])
        if seg.get("iscrowd"):
            info["iscrowd"] = int(seg["iscrowd"])
        out.append(info)
    return torch.from_numpy(ids).to(device), out


# ----------------------------------------------------------------------------- Cityscapes


def _check_isthing(seg: Mapping[str, Any], op: str) -> bool:
    if seg.get("isthing") is None:
        raise ValueError(f"fastseg.{op}: segments_info segment {seg['id']} has no 'isthing'; "
                         "the Cityscapes encoding needs to tell things from stuff")
    return bool(seg["isthing"])


def to_cityscapes_ids(panoptic: ArrayLike, segments_info: Sequence[Segment]) -> torch.Tensor:
    """Cityscapes instanceIds encoding, int32 [H, W]: a thing pixel is category_id * 1000 +
    instance index, a stuff pixel is category_id, void is 0.

    Instance indices count from 0 per category, over that category's thing segments present in
    the map, in increasing segment id order. A thing segment with a truthy "iscrowd" is written
    as its bare category_id, as Cityscapes writes crowd ("group") regions. Category ids must be
    >= 1 (0 is void); stuff category ids must be < 1000 and there may be at most 1000 instances
    per category, else the encoding would be ambiguous. Stuff segments of one category (and
    crowd segments of one category) share one value, so they merge: the encoding has no way to
    keep them apart.
    """
    op = "to_cityscapes_ids"
    device = _device_of(panoptic)
    ids = _as_id_map(panoptic, op, "panoptic")
    by_id = _segments_by_id(segments_info, op, "segments_info")
    unique, labels = _label(ids)
    _check_all_known((int(i) for i in unique if i != 0), by_id, op, "panoptic", "segments_info")
    next_index: Dict[int, int] = {}
    values = np.zeros(len(unique), np.int64)
    for j, sid in enumerate(unique):  # unique is sorted: instance indices follow segment ids
        if sid == 0:
            continue
        seg = by_id[int(sid)]
        cat, thing = int(seg["category_id"]), _check_isthing(seg, op)
        if cat < 1:
            raise ValueError(f"fastseg.{op}: segments_info segment {int(sid)} has category_id {cat}; must be >= 1")
        if thing and not seg.get("iscrowd"):
            index = next_index.get(cat, 0)
            if index >= CITYSCAPES_DIVISOR:
                raise ValueError(f"fastseg.{op}: category {cat} has more than {CITYSCAPES_DIVISOR} instances")
            next_index[cat] = index + 1
            values[j] = cat * CITYSCAPES_DIVISOR + index
        elif not thing and cat >= CITYSCAPES_DIVISOR:
            raise ValueError(f"fastseg.{op}: stuff category_id {cat} (segment {int(sid)}) must be < "
                             f"{CITYSCAPES_DIVISOR} to be told apart from thing instances")
        else:
            values[j] = cat
    if values.size and values.max() > np.iinfo(np.int32).max:
        raise ValueError(f"fastseg.{op}: category ids too large for int32 Cityscapes ids")
    return torch.from_numpy(values[labels].astype(np.int32)).to(device)


def from_cityscapes_ids(ids_map: ArrayLike, thing_ids: Iterable[int], keep_ids: bool = False,
                        ) -> Tuple[torch.Tensor, List[Segment]]:
    """Inverse of `to_cityscapes_ids`: (int32 panoptic [H, W], segments_info).

    A value v >= 1000 is instance v % 1000 of thing category v // 1000 (which must be in
    `thing_ids`); v < 1000 is category v, a stuff segment, or a crowd thing segment
    ("iscrowd": 1) when v is in `thing_ids`; 0 is void. Segment ids are renumbered 1..K in
    increasing order of v (so instances keep their order), unless `keep_ids`, which uses v itself
    as the segment id, as cityscapesScripts' createPanopticImgs does. The round trip is therefore
    exact up to that renumbering, and to_cityscapes_ids(from_cityscapes_ids(m)) == m when each
    category's instance indices in m are 0, 1, 2, ... .
    """
    op = "from_cityscapes_ids"
    device = _device_of(ids_map)
    ids = _as_id_map(ids_map, op, "ids_map")
    try:
        things = {int(t) for t in thing_ids}
    except (TypeError, ValueError):
        raise ValueError(f"fastseg.{op}: thing_ids must be an iterable of ints, got {thing_ids!r}") from None
    unique, labels = _label(ids)
    area = np.bincount(labels.ravel(), minlength=len(unique))
    new_ids = np.zeros(len(unique), np.int64)
    segments: List[Segment] = []
    for j, v in enumerate(int(v) for v in unique):
        if v == 0:
            continue
        cat = v // CITYSCAPES_DIVISOR if v >= CITYSCAPES_DIVISOR else v
        if v >= CITYSCAPES_DIVISOR and cat not in things:
            raise ValueError(f"fastseg.{op}: ids_map value {v} is an instance of category {cat}, "
                             "which is not in thing_ids")
        new_ids[j] = v if keep_ids else len(segments) + 1
        seg = {"id": int(new_ids[j]), "category_id": cat, "isthing": cat in things, "area": int(area[j])}
        if cat in things and v < CITYSCAPES_DIVISOR:
            seg["iscrowd"] = 1
        segments.append(seg)
    if new_ids.size and new_ids.max() > np.iinfo(np.int32).max:
        raise ValueError(f"fastseg.{op}: ids_map values too large for int32 segment ids")
    return torch.from_numpy(new_ids[labels].astype(np.int32)).to(device), segments


# ----------------------------------------------------------------------------- colour picture

_GOLDEN = 0.6180339887498949
_STUFF_SV = (0.45, 0.80)   # stuff: soft colours, so things stand out
_THING_SV = (0.85, 0.95)   # things: saturated; instances vary value and hue around this
_THING_JITTER = [(dh, dv) for dh in (0.0, 0.05, -0.05, 0.10) for dv in (0.0, -0.30, -0.50)]
_BOUNDARY = (255, 255, 255)


def _is_stuff(isthing: Any) -> bool:
    """Stuff only when isthing is known and false (None, unknown, is drawn as a thing)."""
    return isthing is not None and not isthing


def category_color(category_id: int, isthing: Optional[bool] = False, variant: int = 0) -> Tuple[int, int, int]:
    """The colour `colorize_panoptic` gives a category: hue = frac(category_id * golden ratio),
    which spreads consecutive ids far apart around the colour wheel; soft for stuff, saturated
    for things (and for isthing=None). `variant` picks one of 12 per-instance jitters (hue
    +-0.05/0.1, darker by 0.3/0.5) of a thing colour. Never black: black is void."""
    hue = (category_id * _GOLDEN) % 1.0
    if _is_stuff(isthing):
        s, v = _STUFF_SV
    else:
        dh, dv = _THING_JITTER[variant % len(_THING_JITTER)]
        (s, v), hue = (_THING_SV[0], _THING_SV[1] + dv), (hue + dh) % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, s, v)
    return int(round(r * 255)), int(round(g * 255)), int(round(b * 255))


def _adjacent_pairs(labels: np.ndarray) -> np.ndarray:
    """Unique unordered pairs [P, 2] of labels that touch (4-connectivity)."""
    a = np.concatenate([labels[:, :-1].ravel(), labels[:-1, :].ravel()])
    b = np.concatenate([labels[:, 1:].ravel(), labels[1:, :].ravel()])
    keep = a != b
    pairs = np.stack([np.minimum(a[keep], b[keep]), np.maximum(a[keep], b[keep])], axis=1)
    return np.unique(pairs, axis=0) if len(pairs) else pairs.reshape(0, 2)


def _thing_variants(unique: np.ndarray, labels: np.ndarray, by_id: Mapping[int, Mapping[str, Any]]) -> Dict[int, int]:
    """{label: jitter variant} for thing segments: greedily, in increasing segment id order, the
    smallest variant no touching instance of the same category already has (a graph colouring,
    so two touching instances of one class never share a colour while <= 11 touch one)."""
    neighbours: Dict[int, set] = {}
    for p, q in _adjacent_pairs(labels).tolist():
        neighbours.setdefault(p, set()).add(q)
        neighbours.setdefault(q, set()).add(p)
    variant: Dict[int, int] = {}
    for j, sid in enumerate(unique.tolist()):
        seg = by_id.get(sid)
        if seg is None or _is_stuff(seg.get("isthing")):
            continue
        cat = seg["category_id"]
        taken = {variant[n] for n in neighbours.get(j, ()) if n in variant
                 and by_id[int(unique[n])]["category_id"] == cat}
        variant[j] = next(v for v in range(len(_THING_JITTER) + 1) if v not in taken) % len(_THING_JITTER)
    return variant


def _boundary_mask(ids: np.ndarray) -> np.ndarray:
    """Pixels drawn as boundary: of two 4-adjacent pixels with different ids, the one with the
    larger id. So each border is one pixel wide and void (id 0) is never drawn on."""
    mask = np.zeros(ids.shape, bool)
    for a, b, ma, mb in ((ids[:, :-1], ids[:, 1:], mask[:, :-1], mask[:, 1:]),
                         (ids[:-1, :], ids[1:, :], mask[:-1, :], mask[1:, :])):
        ma |= a > b
        mb |= b > a
    return mask


def colorize_panoptic(panoptic: ArrayLike, segments_info: Sequence[Segment], boundaries: bool = True) -> np.ndarray:
    """A picture of a panoptic map for people, uint8 RGB [H, W, 3], deterministic.

    Stuff gets its category's soft colour (`category_color`), things their category's saturated
    colour jittered per instance so touching instances of one class differ (segments with
    isthing=None are drawn as things), void is black. With `boundaries`, a 1-pixel white line
    marks every border between segments and between a segment and void (drawn on the segment
    side, so void stays black).
    """
    op = "colorize_panoptic"
    ids = _as_id_map(panoptic, op, "panoptic")
    by_id = _segments_by_id(segments_info, op, "segments_info")
    unique, labels = _label(ids)
    _check_all_known((int(i) for i in unique if i != 0), by_id, op, "panoptic", "segments_info")
    variants = _thing_variants(unique, labels, by_id)
    table = np.zeros((len(unique), 3), np.uint8)
    for j, sid in enumerate(unique.tolist()):
        if sid != 0:
            seg = by_id[sid]
            table[j] = category_color(int(seg["category_id"]), seg.get("isthing"), variants.get(j, 0))
    image = table[labels]
    if boundaries:
        image[_boundary_mask(ids)] = _BOUNDARY
    return image


# ----------------------------------------------------------------------------- PNG files (Pillow)

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_MODE_BY_CHANNELS = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}
_COLOR_TYPE_NAMES = {0: "greyscale", 2: "RGB", 3: "palette", 4: "greyscale+alpha", 6: "RGBA"}


def _pil(op: str):
    try:
        from PIL import Image
    except ImportError as e:
        raise ImportError(f"fastseg.{op} needs Pillow to read and write PNG files: pip install pillow") from e
    return Image


def save_png(path: Union[str, "os.PathLike[str]", BinaryIO], array: ArrayLike, compress_level: int = 6) -> None:
    """Write an image array as a PNG (Pillow) to a path or a binary file object, losslessly:
    uint8 [H, W] (grey), [H, W, 2] (grey + alpha), [H, W, 3] (RGB, e.g. `to_coco_panoptic`'s id
    picture) or [H, W, 4] (RGBA); uint16 [H, W] as 16-bit grey (e.g. Cityscapes instanceIds).
    A tensor is accepted (copied to the CPU). `load_png` reads back the same array."""
    op = "save_png"
    if isinstance(array, torch.Tensor):
        array = array.detach().cpu().numpy()
    array = np.asarray(array)
    if array.dtype == np.uint16:
        if array.ndim != 2:
            raise ValueError(f"fastseg.{op}: a uint16 array must be [H, W] (16-bit greyscale), "
                             f"got shape {tuple(array.shape)}")
    elif array.dtype != np.uint8:
        raise ValueError(f"fastseg.{op}: array must be uint8 (or uint16 [H, W] for 16-bit greyscale), "
                         f"got {array.dtype}")
    elif array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in _MODE_BY_CHANNELS):
        raise ValueError(f"fastseg.{op}: array must be [H, W] (grey) or [H, W, C] with C in (2, 3, 4), "
                         f"got shape {tuple(array.shape)}")
    if array.shape[0] < 1 or array.shape[1] < 1:
        raise ValueError(f"fastseg.{op}: array must be at least 1x1, got shape {tuple(array.shape)}")
    Image = _pil(op)
    array = np.ascontiguousarray(array)
    h, w = array.shape[:2]
    if array.dtype == np.uint16:
        image = Image.frombytes("I;16", (w, h), array.astype("<u2", copy=False).tobytes())
    else:
        mode = _MODE_BY_CHANNELS[1 if array.ndim == 2 else array.shape[2]]
        image = Image.frombytes(mode, (w, h), array.tobytes())
    image.save(path, format="PNG", compress_level=compress_level)


def load_png(path: Union[str, "os.PathLike[str]", BinaryIO]) -> np.ndarray:
    """Read a PNG (Pillow) from a path or a binary file object as an array: uint8 [H, W] (grey,
    1-bit grey as 0/1), [H, W, 2] (grey + alpha), [H, W, 3] (RGB; palette images expanded to
    their colours) or [H, W, 4] (RGBA; palette images with transparency); 16-bit grey as uint16
    [H, W]. 16-bit colour PNGs are refused with a ValueError (Pillow would drop their low bytes),
    as are files that are not PNGs or are corrupt."""
    op = "load_png"
    if hasattr(path, "read"):
        data = path.read()
    else:
        with open(path, "rb") as f:
            data = f.read()
    data = bytes(data)
    if data[:8] != _PNG_SIGNATURE:
        raise ValueError(f"fastseg.{op}: not a PNG file (bad signature)")
    if len(data) >= 26 and data[12:16] == b"IHDR" and data[24] == 16 and data[25] != 0:
        raise ValueError(f"fastseg.{op}: unsupported 16-bit {_COLOR_TYPE_NAMES.get(data[25], 'colour')} PNG; "
                         "16-bit PNGs are read only as greyscale")
    Image = _pil(op)
    try:
        with Image.open(io.BytesIO(data), formats=["PNG"]) as image:
            image.load()
            if image.mode == "P":
                image = image.convert("RGBA" if "transparency" in image.info else "RGB")
            elif image.mode == "PA":
                image = image.convert("RGBA")
            mode = image.mode
            array = np.asarray(image)
    except (OSError, SyntaxError, ValueError) as e:  # UnidentifiedImageError is an OSError
        raise ValueError(f"fastseg.{op}: corrupt or unreadable PNG ({e})") from None
    if mode == "1":
        return array.astype(np.uint8)
    if mode.startswith("I"):  # "I;16", "I;16B", "I" (older Pillow): 16-bit grey
        return array.astype(np.uint16)
    if mode not in _MODE_BY_CHANNELS.values():
        raise ValueError(f"fastseg.{op}: unsupported PNG mode {mode!r}")
    return np.array(array, dtype=np.uint8)  # a writable copy
