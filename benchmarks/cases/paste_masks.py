"""Mask pasting on Mask R-CNN's output: 100 masks of 28x28 pasted into a 1024x2048 image
(Cityscapes size). Baseline in the same run: torchvision's paste_masks_in_image (what its
Mask R-CNN post-processing calls; it returns float [K,1,H,W]) when importable, else
fastseg.reference.paste_masks (grid_sample over the whole image). Forward only.

Bytes charged: reads the masks and boxes, writes the K*H*W output (bool for fastseg, float for
torchvision: the baselines' own output size).
"""
import torch

from ..harness import Case, State, Variant, register

FAMILY = "paste_masks"


def _setup(k: int, m: int, hw):
    def setup(device: torch.device, size: str) -> State:
        k_ = 10 if size == "small" else k
        g = torch.Generator().manual_seed(0)
        masks = torch.rand(k_, 1, m, m, generator=g).to(device)
        xy = torch.rand(k_, 2, generator=g) * torch.tensor([float(hw[1]), float(hw[0])])
        wh = torch.exp(torch.rand(k_, 2, generator=g) * 5) * 4  # 4 to 600 pixels
        boxes = torch.cat([xy, xy + wh], 1).to(device)
        return State(masks=masks, boxes=boxes, hw=hw, shapes={"masks": list(masks.shape), "image": list(hw)}, notes={})
    return setup


def _bytes(state: State, mode: str, variant: str) -> int:
    k = state.masks.shape[0]
    out = k * state.hw[0] * state.hw[1] * (1 if variant == "fastseg" else 4)
    return state.masks.numel() * 4 + k * 16 + out


def _fastseg(s: State):
    import fastseg.ops
    return fastseg.ops.paste_masks(s.masks, s.boxes, s.hw)


def _baseline(s: State):
    try:
        from torchvision.models.detection.roi_heads import paste_masks_in_image
    except Exception:
        import fastseg.reference
        return fastseg.reference.paste_masks(s.masks, s.boxes, s.hw)
    return paste_masks_in_image(s.masks, s.boxes, s.hw) >= 0.5


register(Case("maskrcnn_paste_masks", FAMILY,
              "Mask R-CNN post-processing: 100 masks 28x28 pasted into 1024x2048, threshold 0.5 (bool); baseline "
              "torchvision paste_masks_in_image (+ >= 0.5)", _setup(100, 28, (1024, 2048)),
              [Variant("fastseg", _fastseg, kind="fastseg", modes=("fwd",), description="fastseg.ops.paste_masks"),
               Variant("torchvision", _baseline, modes=("fwd",), checked=False,
                       description="torchvision paste_masks_in_image(...) >= 0.5: not compared, torchvision resamples "
                                   "differently (expanded mask, integer box, F.interpolate); tests check fastseg "
                                   "against detectron2's grid_sample paste")],
              _bytes, modes=("fwd",)))


def _fastseg_in_image(s: State):
    import fastseg.ops
    return fastseg.ops.paste_masks_in_image(s.masks, s.boxes, s.hw)


def _torchvision_in_image(s: State):
    try:
        from torchvision.models.detection.roi_heads import paste_masks_in_image
    except Exception:  # no torchvision: its algorithm written out
        from fastseg.reference import paste_masks_in_image
    return paste_masks_in_image(s.masks, s.boxes, s.hw)


def _bytes_in_image(state: State, mode: str, variant: str) -> int:
    k = state.masks.shape[0]
    return state.masks.numel() * 4 + k * 16 + k * state.hw[0] * state.hw[1] * 4


register(Case("maskrcnn_paste_masks_in_image", FAMILY,
              "torchvision drop-in: paste_masks_in_image, 100 masks 28x28 into 1024x2048, float [K,1,H,W] "
              "(same algorithm: padded mask, integer box, bilinear resize); baseline torchvision",
              _setup(100, 28, (1024, 2048)),
              [Variant("fastseg", _fastseg_in_image, kind="fastseg", modes=("fwd",),
                       description="fastseg.ops.paste_masks_in_image"),
               Variant("torchvision", _torchvision_in_image, modes=("fwd",),
                       description="torchvision.models.detection.roi_heads.paste_masks_in_image")],
              _bytes_in_image, modes=("fwd",), atol=4e-6, rtol=0))
