"""SyntheticScenes: a deterministic, download-free data set of street-like scenes with semantic,
instance and panoptic targets that agree with one another.

Each scene has textured stuff regions (sky, building, vegetation, sidewalk, road, laid out like a
street with random boundaries) and thing instances (people, cars, traffic signs: ellipses,
rounded boxes and triangles of many sizes, standing on the ground, drawn far to near so that
nearer ones occlude farther ones). Colours are jittered per region and per instance, and every
class has its own texture (stripes, grids, blotches, noise), so colour alone does not give the
class. An instance whose visible part is smaller than `min_instance_area` pixels is ignored:
its pixels are 255 in `semantic` and void (0) in `panoptic`, and it has no box or mask.

Determinism: a sample depends only on (seed, split, index), through a torch.Generator seeded
from them, and is made with integer arithmetic and exactly rounded float operations (no
transcendental functions, no interpolation), so the same sample comes out bit for bit in any
process and on any machine.
"""
import hashlib
from typing import Dict, List, Sequence, Tuple

import torch

# Classes are numbered stuff first, then things (EfficientPS's convention).
CLASS_NAMES = ("road", "sidewalk", "building", "vegetation", "sky", "person", "car", "sign")
STUFF_IDS = (0, 1, 2, 3, 4)
THING_IDS = (5, 6, 7)
IGNORE_INDEX = 255
# Base colours (RGB in [0, 1]); per-region jitter of +-JITTER makes neighbouring classes overlap.
COLORS = ((0.35, 0.35, 0.38), (0.55, 0.5, 0.45), (0.5, 0.35, 0.3), (0.25, 0.5, 0.25), (0.45, 0.65, 0.85),
          (0.7, 0.45, 0.35), (0.3, 0.35, 0.6), (0.75, 0.7, 0.2))
JITTER = 0.12
_ROAD, _SIDEWALK, _BUILDING, _VEGETATION, _SKY = STUFF_IDS
_PERSON, _CAR, _SIGN = THING_IDS


def _seed_of(seed: int, split: str, index: int) -> int:
    digest = hashlib.sha256(f"fastseg.SyntheticScenes/{seed}/{split}/{index}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


class SyntheticScenes(torch.utils.data.Dataset):
    """`SyntheticScenes(num_samples, image_size=(H, W), split="train", seed=0)`.

    `dataset[i]` is `(image, target)`: image float32 `[3, H, W]` in [0, 1]; target a dict with
    `semantic` `[H, W]` int64 (255 = ignore), `boxes` `[K, 4]` float32 (x1, y1, x2, y2 in pixels,
    torchvision's convention: the tight box of the visible part, x2/y2 exclusive), `labels` `[K]`
    int64, `masks` `[K, H, W]` bool (the visible part of each instance), `panoptic` `[H, W]` int32
    (0 = void, segments from 1) and `segments_info` (one dict per segment: id, category_id,
    isthing, iscrowd, area; fastseg's panoptic conventions), plus `image_id` (the index).

    Attributes: `classes` (names), `colors` (RGB 0-255 per class, for pictures), `stuff_ids`,
    `thing_ids`, `num_classes`, `ignore_index`.
    """

    classes = CLASS_NAMES
    stuff_ids = STUFF_IDS
    thing_ids = THING_IDS
    num_classes = len(CLASS_NAMES)
    ignore_index = IGNORE_INDEX
    colors = tuple(tuple(int(round(255 * c)) for c in rgb) for rgb in COLORS)

    def __init__(self, num_samples: int, image_size: Sequence[int] = (128, 128), split: str = "train",
                 seed: int = 0, *, max_instances: int = 8, min_instance_area: int = 16, noise: float = 0.04):
        for name, v, lo in (("num_samples", num_samples, 0), ("seed", seed, 0), ("max_instances", max_instances, 0),
                            ("min_instance_area", min_instance_area, 1)):
            if not isinstance(v, int) or isinstance(v, bool) or v < lo:
                raise ValueError(f"fastseg.data.SyntheticScenes: {name} must be an int >= {lo}, got {v!r}")
        size = tuple(image_size) if isinstance(image_size, (tuple, list)) else None
        if size is None or len(size) != 2 or not all(isinstance(s, int) and s >= 16 for s in size):
            raise ValueError(f"fastseg.data.SyntheticScenes: image_size must be (H, W) ints >= 16, got {image_size!r}")
        if not isinstance(split, str) or not split:
            raise ValueError(f"fastseg.data.SyntheticScenes: split must be a non-empty string, got {split!r}")
        if not isinstance(noise, (int, float)) or not 0 <= noise <= 1:
            raise ValueError(f"fastseg.data.SyntheticScenes: noise must be in [0, 1], got {noise!r}")
        self.num_samples, self.image_size, self.split, self.seed = num_samples, size, split, seed
        self.max_instances, self.min_instance_area, self.noise = max_instances, min_instance_area, float(noise)

    def __len__(self) -> int:
        return self.num_samples

    def __repr__(self) -> str:
        return (f"SyntheticScenes(num_samples={self.num_samples}, image_size={self.image_size}, "
                f"split={self.split!r}, seed={self.seed})")

    def __getitem__(self, index: int) -> Tuple[torch.Tensor, Dict]:
        if not isinstance(index, int) or isinstance(index, bool):
            index = int(index)
        if index < 0:
            index += self.num_samples
        if not 0 <= index < self.num_samples:
            raise IndexError(f"fastseg.data.SyntheticScenes: index {index} out of range for {self.num_samples} samples")
        g = torch.Generator().manual_seed(_seed_of(self.seed, self.split, index))
        H, W = self.image_size
        stuff = _stuff_layout(H, W, g)
        instances = _instances(H, W, self.max_instances, g)
        image, semantic, owner = _render(stuff, instances, g, self.noise)
        target = _targets(semantic, owner, [c for c, _ in instances], self.min_instance_area)
        target["image_id"] = index
        return image, target


# ----------------------------------------------------------------------------- layout

def _randint(g, lo: int, hi: int) -> int:
    """Uniform int in [lo, hi]."""
    return int(torch.randint(lo, hi + 1, (1,), generator=g))


def _steps(length: int, lo: int, hi: int, step: int, g) -> torch.Tensor:
    """A piecewise-constant random profile of `length` values in [lo, hi] (blocks of ~step)."""
    blocks = -(-length // step)
    vals = torch.randint(lo, hi + 1, (blocks,), generator=g)
    return vals.repeat_interleave(step)[:length]


def _stuff_layout(H: int, W: int, g) -> torch.Tensor:
    """[H, W] stuff classes: sky above a skyline of buildings, vegetation patches, a sidewalk
    band and the road at the bottom, with random boundaries."""
    y = torch.arange(H).view(H, 1)
    skyline = _steps(W, H // 8, (2 * H) // 5, max(4, W // 10), g).view(1, W)
    horizon = _randint(g, (H * 9) // 20, (H * 11) // 20)
    road_top = _randint(g, horizon + H // 12, horizon + H // 5)
    sem = torch.full((H, W), _BUILDING, dtype=torch.int64)
    sem[(y < skyline).expand(H, W)] = _SKY
    # vegetation: a few blocks standing on the horizon
    for _ in range(_randint(g, 1, 3)):
        x0, w = _randint(g, 0, W - 1), _randint(g, W // 10, W // 3)
        top = _randint(g, H // 4, horizon - 1)
        sem[top:horizon, x0:x0 + w] = _VEGETATION
    sem[horizon:] = _SIDEWALK
    edge = (road_top + _steps(W, -H // 40, H // 40, max(4, W // 8), g)).view(1, W)
    sem[(y >= edge).expand(H, W)] = _ROAD
    return sem


def _instances(H: int, W: int, max_instances: int, g) -> List[Tuple[int, torch.Tensor]]:
    """(class, [H, W] bool shape) per instance, far to near (drawing order)."""
    y = torch.arange(H).view(H, 1)
    x = torch.arange(W).view(1, W)
    out = []
    for _ in range(_randint(g, 1, max_instances) if max_instances else 0):
        cls = THING_IDS[_randint(g, 0, len(THING_IDS) - 1)]
        bottom = _randint(g, H // 2, H - 1)  # nearer objects stand lower and are larger
        scale = 1 + 3 * (bottom - H // 2) / max(1, H // 2)
        base = max(3, min(H, W) // 16)
        if cls == _PERSON:
            w, h = int(base * scale * 0.6) + 2, int(base * scale * 1.8) + 4
        elif cls == _CAR:
            w, h = int(base * scale * 2.2) + 4, int(base * scale * 1.1) + 3
        else:
            w = h = int(base * scale) + 4
        cx = _randint(g, 0, W - 1)
        x0, y0 = cx - w // 2, bottom - h + 1
        # shapes in exact integer arithmetic (scaled by 4 to keep the half-pixel centres)
        dx, dy = 4 * (x - x0) + 2 - 2 * w, 4 * (y - y0) + 2 - 2 * h
        inside_box = (dx.abs() < 2 * w) & (dy.abs() < 2 * h)
        if cls == _PERSON:  # ellipse
            shape = dx * dx * h * h + dy * dy * w * w < 4 * w * w * h * h
        elif cls == _CAR:  # a body and a narrower cabin on top
            shape = inside_box & ~((dy < -h // 2) & (dx.abs() > (3 * w) // 2))
        else:  # triangle, apex up
            shape = inside_box & (dx.abs() * h <= w * (dy + 2 * h) // 2)
        out.append((cls, shape))
    out.sort(key=lambda item: int(item[1].nonzero()[:, 0].max()) if item[1].any() else -1)
    return out


# ----------------------------------------------------------------------------- rendering

def _texture(cls: int, H: int, W: int, g) -> torch.Tensor:
    """[H, W] zero-mean-ish texture in about [-1, 1], different in kind per class."""
    y = torch.arange(H).view(H, 1)
    x = torch.arange(W).view(1, W)
    period = _randint(g, 3, 7)
    if cls == _ROAD:
        t = torch.rand(H, W, generator=g) * 2 - 1
    elif cls == _SIDEWALK:
        t = (((y % (2 * period)) < 2) | ((x % (2 * period)) < 2)).float() * 2 - 1
    elif cls == _BUILDING:
        t = (((y % (3 * period)) < period) & ((x % (2 * period)) < period)).float() * 2 - 1
    elif cls == _VEGETATION:
        cell = period
        t = (torch.rand(-(-H // cell), -(-W // cell), generator=g) * 2 - 1)
        t = t.repeat_interleave(cell, 0).repeat_interleave(cell, 1)[:H, :W]
    elif cls == _SKY:
        t = (y.float() / H - 0.5).expand(H, W) * 0.5
    elif cls == _PERSON:
        t = ((x % period) < period // 2 + 1).float().expand(H, W) * 2 - 1
    elif cls == _CAR:
        t = ((y % (2 * period)) < period).float().expand(H, W) * 1.2 - 0.6
    else:
        t = (((x // period) + (y // period)) % 2).float() * 2 - 1
    return t.float()


def _jittered(cls: int, g) -> torch.Tensor:
    return (torch.tensor(COLORS[cls]) + (torch.rand(3, generator=g) * 2 - 1) * JITTER).view(3, 1, 1)


def _render(stuff: torch.Tensor, instances, g, noise: float):
    """(image [3, H, W], semantic before ignoring [H, W], owner [H, W]: instance index + 1 or 0)."""
    H, W = stuff.shape
    image = torch.zeros(3, H, W)
    for cls in STUFF_IDS:
        region = stuff == cls
        amp = 0.06 + 0.08 * float(torch.rand(1, generator=g))
        image = torch.where(region, _jittered(cls, g) + amp * _texture(cls, H, W, g), image)
    semantic = stuff.clone()
    owner = torch.zeros(H, W, dtype=torch.int64)
    for k, (cls, shape) in enumerate(instances):
        amp = 0.06 + 0.08 * float(torch.rand(1, generator=g))
        image = torch.where(shape, _jittered(cls, g) + amp * _texture(cls, H, W, g), image)
        semantic[shape] = cls
        owner[shape] = k + 1
    if noise > 0:
        image = image + noise * (torch.rand(3, H, W, generator=g) * 2 - 1)
    return image.clamp_(0, 1), semantic, owner


def _targets(semantic: torch.Tensor, owner: torch.Tensor, classes: List[int], min_area: int) -> Dict:
    H, W = semantic.shape
    boxes, labels, masks = [], [], []
    panoptic = torch.zeros(H, W, dtype=torch.int32)
    segments = []
    for cls in STUFF_IDS:
        region = (semantic == cls) & (owner == 0)
        area = int(region.sum())
        if area:
            segments.append({"id": len(segments) + 1, "category_id": cls, "isthing": False, "iscrowd": 0,
                             "area": area})
            panoptic[region] = segments[-1]["id"]
    for k, cls in enumerate(classes):
        visible = owner == k + 1
        area = int(visible.sum())
        if area == 0:
            continue
        if area < min_area:  # too little shows: neither a segment nor background
            semantic[visible] = IGNORE_INDEX
            continue
        ys, xs = visible.nonzero(as_tuple=True)
        boxes.append([float(xs.min()), float(ys.min()), float(xs.max()) + 1, float(ys.max()) + 1])
        labels.append(cls)
        masks.append(visible)
        segments.append({"id": len(segments) + 1, "category_id": cls, "isthing": True, "iscrowd": 0, "area": area})
        panoptic[visible] = segments[-1]["id"]
    return {
        "semantic": semantic,
        "boxes": torch.tensor(boxes, dtype=torch.float32).view(-1, 4),
        "labels": torch.tensor(labels, dtype=torch.int64),
        "masks": torch.stack(masks) if masks else torch.zeros(0, H, W, dtype=torch.bool),
        "panoptic": panoptic,
        "segments_info": segments,
    }
