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
