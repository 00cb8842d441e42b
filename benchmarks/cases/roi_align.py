"""RoIAlign on Mask R-CNN R50-FPN shapes (N=2, 800x1088 image, C=256): the box head's 512
sampled rois at 7x7 and the mask head's 128 positive rois at 14x14, on the P2 level (200x272,
spatial_scale 1/4, sampling_ratio 2), in NCHW and channels-last. Baseline in the same run:
torchvision.ops.roi_align when importable, else fastseg.reference.

Bytes charged per call: fwd reads the bins' samples (K*C*ph*pw*samples*4 neighbours, counted
once per bin as K*C*ph*pw*e) and writes K*C*ph*pw*e; bwd reads the grad and writes grad_input
(N*C*H*W*e). A rough figure: the reads are gathers.
"""
import torch

from ..harness import Case, State, Variant, register

FAMILY = "roi_align"


def _setup(k: int, pooled: int, channels_last: bool):
    def setup(device: torch.device, size: str) -> State:
        c = 64 if size == "small" else 256
        g = torch.Generator().manual_seed(0)
        x = torch.randn(2, c, 200, 272, generator=g).to(device)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        x.requires_grad_()
        xy = torch.rand(k, 2, generator=g) * torch.tensor([1088.0, 800.0])
        wh = torch.exp(torch.rand(k, 2, generator=g) * 5) * 4  # 4 to 600 pixels
        rois = torch.cat([torch.randint(0, 2, (k, 1), generator=g).float(), xy, xy + wh], 1).to(device)
        grad_out = torch.randn(k, c, pooled, pooled, generator=g).to(device)
        return State(x=x, rois=rois, pooled=pooled, leaves=[x], grad_out=grad_out,
                     shapes={"input": list(x.shape), "rois": k, "output_size": pooled, "spatial_scale": 0.25,
                             "sampling_ratio": 2, "layout": "channels_last" if channels_last else "contiguous"},
                     notes={})
    return setup


def _bytes(state: State, mode: str, variant: str) -> int:
    e = state.x.element_size()
    out = state.grad_out.numel() * e
    fwd = 2 * out
    bwd = out + state.x.numel() * e
    return fwd if mode == "fwd" else fwd + bwd


def _fastseg(s: State):
    import fastseg.ops
    return fastseg.ops.roi_align(s.x, s.rois, s.pooled, 0.25, 2)


def _baseline(s: State):
    try:
        import torchvision.ops as tv
        return tv.roi_align(s.x, s.rois, s.pooled, 0.25, 2)
    except Exception:  # no torchvision (or one built for another torch): the reference
        import fastseg.reference
        return fastseg.reference.roi_align(s.x, s.rois, s.pooled, 0.25, 2)


for _name, _k, _pooled, _cl, _desc in (
        ("maskrcnn_box_roi_align", 512, 7, False, "box head: 512 rois -> 7x7"),
        ("maskrcnn_box_roi_align_cl", 512, 7, True, "box head: 512 rois -> 7x7, channels-last features"),
        ("maskrcnn_mask_roi_align", 128, 14, False, "mask head: 128 rois -> 14x14")):
    register(Case(_name, FAMILY, f"Mask R-CNN {_desc}, P2 [2,256,200x272], scale 1/4, sampling 2; "
                  "baseline torchvision.ops.roi_align", _setup(_k, _pooled, _cl),
                  [Variant("fastseg", _fastseg, kind="fastseg", description="fastseg.ops.roi_align"),
                   Variant("torchvision", _baseline, description="torchvision.ops.roi_align")],
                  _bytes, atol=1e-4, rtol=1e-4))


def _fpn_setup(k: int, pooled: int):
    def setup(device: torch.device, size: str) -> State:
        c = 64 if size == "small" else 256
        g = torch.Generator().manual_seed(0)
        feats = {f"p{i}": torch.randn(2, c, 800 // 2 ** i, 1088 // 2 ** i, generator=g).to(device).requires_grad_()
                 for i in range(2, 6)}
        boxes = []
        for _ in range(2):
            xy = torch.rand(k // 2, 2, generator=g) * torch.tensor([1088.0, 800.0])
            wh = torch.exp(torch.rand(k // 2, 2, generator=g) * 5) * 4
            boxes.append(torch.cat([xy, xy + wh], 1).to(device))
        grad_out = torch.randn(k, c, pooled, pooled, generator=g).to(device)
        return State(feats=feats, boxes=boxes, pooled=pooled, image_shapes=[(800, 1088)] * 2,
                     leaves=list(feats.values()), grad_out=grad_out, x=feats["p2"],
                     shapes={"features": {n: list(f.shape) for n, f in feats.items()}, "rois": k,
                             "output_size": pooled, "sampling_ratio": 2}, notes={})
    return setup


def _fastseg_ms(s: State):
    import fastseg.nn
    return fastseg.nn.MultiScaleRoIAlign(list(s.feats), s.pooled, 2)(s.feats, s.boxes, s.image_shapes)


def _baseline_ms(s: State):
    try:
        import torchvision.ops as tv
        return tv.MultiScaleRoIAlign(list(s.feats), s.pooled, 2)(s.feats, s.boxes, s.image_shapes)
    except Exception:
        import fastseg.reference
        return fastseg.reference.multi_scale_roi_align(list(s.feats.values()), s.boxes, s.image_shapes, s.pooled, 2)


register(Case("maskrcnn_box_multiscale", FAMILY,
              "Mask R-CNN box head on all FPN levels P2-P5 ([2,256,200x272] ... [2,256,25x34]): 512 rois -> 7x7, "
              "sampling 2, level per roi as torchvision; baseline torchvision.ops.MultiScaleRoIAlign",
              _fpn_setup(512, 7),
              [Variant("fastseg", _fastseg_ms, kind="fastseg", description="fastseg.nn.MultiScaleRoIAlign"),
               Variant("torchvision", _baseline_ms, description="torchvision.ops.MultiScaleRoIAlign")],
              _bytes, atol=1e-4, rtol=1e-4))
