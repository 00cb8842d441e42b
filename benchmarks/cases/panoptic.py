"""Panoptic fusion on a Cityscapes-sized scene: 1024x2048, 19 semantic classes (11 stuff, 8
things), 100 instances with 28x28 mask logits, boxes of 16 to ~600 pixels. Both fusions, both
instance-mask forms. Baseline in the same run: the plain-PyTorch reference loops
(fastseg.reference.panoptic_fusion) on pasted masks; for the per-box form the baseline pastes
first (fastseg.reference.paste_masks, grid_sample), so pasting is timed on both sides. Forward
only (inference). The quick run uses 512x1024 and 30 instances.

Bytes charged: the semantic input (int64 map or Cs float logits), the masks as given (pasted:
K*H*W floats, per box: K*28*28) and the int32 panoptic map written.
"""
import math

import torch
import torch.nn.functional as F

from ..harness import Case, State, Variant, register

FAMILY = "panoptic"
NUM_CLASSES, THING_IDS = 19, tuple(range(11, 19))  # Cityscapes train ids: 11..18 are things
STUFF_IDS = tuple(range(11))


def synthetic_scene(height: int, width: int, num_instances: int, mask_size: int = 28, seed: int = 0,
                    device="cpu"):
    """A seeded scene with the statistics of a real one: blocky semantic logits (regions tens of
    pixels wide), elliptical instance masks (logit 4 at the centre, 0 at the ellipse, < 0 outside),
    log-uniform box sizes, scores in [0.3, 1)."""
    g = torch.Generator().manual_seed(seed)
    low = torch.randn(1, NUM_CLASSES, max(1, height // 64), max(1, width // 64), generator=g) * 3
    sem_logits = F.interpolate(low, size=(height, width), mode="bilinear", align_corners=False)[0]
    K = num_instances
    wh = torch.exp(torch.rand(K, 2, generator=g) * math.log(600 / 16)) * 16
    centre = torch.rand(K, 2, generator=g) * torch.tensor([float(width), float(height)])
    boxes = torch.cat([centre - wh / 2, centre + wh / 2], 1)
    r = torch.linspace(-1, 1, mask_size)
    ellipse = 1 - (r[None, :] ** 2 + r[:, None] ** 2)
    mask_logits = 4 * ellipse[None] + 0.5 * torch.randn(K, mask_size, mask_size, generator=g)
    scores = 0.3 + 0.7 * torch.rand(K, generator=g)
    labels = torch.tensor(THING_IDS)[torch.randint(0, len(THING_IDS), (K,), generator=g)]
    return {k: v.to(device) for k, v in dict(sem_logits=sem_logits, semantic=sem_logits.argmax(0), boxes=boxes,
                                              mask_logits=mask_logits, scores=scores, labels=labels).items()}


def _setup(pasted: bool, logits: bool, binary: bool = False):
    def setup(device: torch.device, size: str) -> State:
        h, w, k = (1024, 2048, 100) if size == "full" else (512, 1024, 30) if size == "quick" else (64, 128, 8)
        sc = synthetic_scene(h, w, k, device=device)
        import fastseg.ops
        masks = sc["mask_logits"] if logits else sc["mask_logits"].sigmoid()
        if pasted:
            masks = fastseg.ops.paste_masks(masks, sc["boxes"], (h, w), threshold=0.5 if binary else None)
        shapes = {"image": [h, w], "masks": list(masks.shape), "semantic classes": NUM_CLASSES}
        return State(masks=masks, pasted=pasted, hw=(h, w), shapes=shapes, notes={}, **sc)
    return setup


def _bytes(state: State, mode: str, variant: str) -> int:
    h, w = state.hw
    return state.semantic.numel() * 8 + state.masks.numel() * state.masks.element_size() + h * w * 4


def _bytes_logits(state: State, mode: str, variant: str) -> int:
    h, w = state.hw
    return state.sem_logits.numel() * 4 + state.masks.numel() * 4 + h * w * 4


HEURISTIC = dict(score_threshold=0.5, overlap_threshold=0.5, stuff_area_threshold=4096, thing_ids=THING_IDS)
EFFICIENTPS = dict(stuff_ids=STUFF_IDS, score_threshold=0.5, overlap_threshold=0.5, stuff_area_threshold=2048)


def _heuristic_fastseg(s: State):
    import fastseg.ops
    # boxes with pasted masks too, as detectron2 passes them: pasted=True makes them change nothing
    return fastseg.ops.panoptic_fusion_heuristic(s.semantic, s.masks, s.boxes, s.scores, s.labels,
                                                 pasted=s.pasted, **HEURISTIC)[0]


def _heuristic_reference(s: State):
    import fastseg.reference as R
    masks = s.masks if s.pasted else R.paste_masks(s.masks, s.boxes, s.hw, threshold=None)
    return R.panoptic_fusion_heuristic(s.semantic, masks, None, s.scores, s.labels, **HEURISTIC)[0]


def _efficientps_fastseg(s: State):
    import fastseg.ops
    return fastseg.ops.panoptic_fusion_efficientps(s.sem_logits, s.masks, s.boxes, s.scores, s.labels,
                                                   pasted=s.pasted, **EFFICIENTPS)[0]


def _efficientps_reference(s: State):
    import fastseg.reference as R
    masks = s.masks if s.pasted else R.paste_masks(s.masks, s.boxes, s.hw, threshold=None)
    return R.panoptic_fusion_efficientps(s.sem_logits, masks, s.boxes, s.scores, s.labels, pasted=True,
                                         **EFFICIENTPS)[0]


for _form, _pasted, _binary, _what in (
        ("pasted", True, True, "pasted bool [K,H,W] masks (what detectron2 passes)"),
        ("pasted_prob", True, False, "pasted float [K,H,W] probabilities"),
        ("per_box", False, False, "per-box 28x28 probabilities pasted on the fly (reference: pastes first)")):
    register(Case(
        f"cityscapes_heuristic_{_form}", FAMILY,
        f"Panoptic FPN heuristic, 1024x2048, 100 instances, {_what}; baseline the reference loop",
        _setup(_pasted, logits=False, binary=_binary),
        [Variant("fastseg", _heuristic_fastseg, kind="fastseg", modes=("fwd",),
                 description="fastseg.ops.panoptic_fusion_heuristic"),
         Variant("reference", _heuristic_reference, modes=("fwd",),
                 description="fastseg.reference.panoptic_fusion_heuristic (detectron2's loop)")],
        _bytes, modes=("fwd",), atol=0, rtol=0, min_repeats=5))

for _pasted in (True, False):
    _form = "pasted" if _pasted else "per_box"
    _what = "pasted [K,H,W] mask logits" if _pasted else "per-box 28x28 logits pasted on the fly (reference: pastes first)"
    register(Case(
        f"cityscapes_efficientps_{_form}", FAMILY,
        f"EfficientPS fusion, 1024x2048, 19 classes, 100 instances, {_what}; baseline the reference loop",
        _setup(_pasted, logits=True),
        [Variant("fastseg", _efficientps_fastseg, kind="fastseg", modes=("fwd",),
                 description="fastseg.ops.panoptic_fusion_efficientps"),
         Variant("reference", _efficientps_reference, modes=("fwd",),
                 description="fastseg.reference.panoptic_fusion_efficientps")],
        _bytes_logits, modes=("fwd",), atol=0, rtol=0, min_repeats=5))
