"""Transpose convolution + crop, on the real shapes of FCN (500x500 VOC images, Caffe crops),
U-Net (572x572 input, original channel counts, up-convolution + copy-and-crop concat) and
DeconvNet (3x3 deconvolutions), plus a general 3x3/s2/p1 layer and a depthwise bilinear
upsampling. Batch 1 (as FCN and U-Net were trained), float32.

Baselines (in the same run): `F.conv_transpose2d` + slice (a view: the cheapest thing a user
can write), and for U-Net `torch.cat([skip_crop, F.conv_transpose2d(...)], 1)`.

Bytes charged per call (e = element size; X input, Wt weight, Y cropped output, S the copied
skip crop, all in elements):
    fwd      reads X*e + Wt*e (+ S*e), writes Y*e (+ S*e)
    bwd      reads grad Y*e (+ S*e), X*e, Wt*e, writes grad X*e + grad Wt*e (+ grad skip S*e)
`fwd+bwd` is charged fwd + bwd.
"""
from typing import Optional, Tuple

import torch
import torch.nn.functional as F

from ..harness import Case, State, Variant, register

FAMILY = "conv_transpose"
DTYPE = torch.float32


def _ops():
    import fastseg.ops
    return fastseg.ops


def _setup(cin: int, cout: int, hw: Tuple[int, int], k: int, s: int, p: int, crop: Tuple[int, int],
           size: Optional[Tuple[int, int]], groups: int = 1, skip: Optional[Tuple[int, Tuple[int, int]]] = None,
           bias: bool = True):
    """skip: (channels, (H, W)) of the U-Net skip tensor whose centre is concatenated."""
    def setup(device: torch.device, size_name: str) -> State:
        ci, co = (max(4, cin // 4), max(4, cout // 4)) if size_name == "small" else (cin, cout)
        g = groups
        if g > 1:
            ci = co = g = min(g, ci)
        x = torch.randn(1, ci, *hw, device=device, dtype=DTYPE).requires_grad_()
        w = (torch.randn(ci, co // g, k, k, device=device, dtype=DTYPE) / (ci // g * k * k / s / s) ** 0.5
             ).requires_grad_()
        b = torch.randn(co, device=device, dtype=DTYPE).requires_grad_() if bias else None
        full = ((hw[0] - 1) * s - 2 * p + k, (hw[1] - 1) * s - 2 * p + k)
        out_hw = size or (full[0] - crop[0], full[1] - crop[1])
        leaves = [t for t in (x, w, b) if t is not None]
        st = State(x=x, w=w, b=b, s=s, p=p, g=g, crop=crop, size=out_hw, leaves=leaves,
                   shapes={"input": list(x.shape), "weight": list(w.shape), "stride": s, "padding": p,
                           "groups": g, "crop": list(crop), "output_size": list(out_hw),
                           "dtype": str(DTYPE).replace("torch.", "")},
                   notes={"full_output": list(full)})
        cout_total = co
        if skip is not None:
            cs = max(4, skip[0] // 4) if size_name == "small" else skip[0]
            st.skip = torch.randn(1, cs, *skip[1], device=device, dtype=DTYPE).requires_grad_()
            st.skip_crop = ((skip[1][0] - out_hw[0]) // 2, (skip[1][1] - out_hw[1]) // 2)
            st.leaves.append(st.skip)
            st.shapes["skip"] = list(st.skip.shape)
            cout_total += cs
        st.grad_out = torch.randn(1, cout_total, *out_hw, device=device, dtype=DTYPE)
        return st
    return setup


def _bytes(state: State, mode: str, variant: str) -> int:
    e = state.x.element_size()
    X, Wt = state.x.numel(), state.w.numel()
    Y = state.grad_out.numel()
    S = 0
    if hasattr(state, "skip"):
        S = state.skip.shape[1] * state.size[0] * state.size[1]
        Y -= S
    fwd = (X + Wt + S + Y + S) * e
    bwd = (Y + S + X + Wt + X + Wt + S) * e
    return fwd if mode == "fwd" else fwd + bwd


def _fastseg(s: State):
    return _ops().conv_transpose2d_crop(s.x, s.w, s.b, s.s, s.p, 1, s.g, s.crop, s.size)


def _torch(s: State):
    t, l = s.crop
    return F.conv_transpose2d(s.x, s.w, s.b, s.s, s.p, 0, s.g)[:, :, t:t + s.size[0], l:l + s.size[1]]


def _fastseg_cat(s: State):
    return _ops().conv_transpose2d_crop_cat(s.x, s.w, s.b, s.skip, s.s, s.p, 1, s.g, s.crop, s.size, s.skip_crop)


def _torch_cat(s: State):
    t, l = s.skip_crop
    return torch.cat([s.skip[:, :, t:t + s.size[0], l:l + s.size[1]], _torch(s)], 1)


def case(name: str, description: str, setup, concat: bool = False, tags=()) -> Case:
    if concat:
        variants = [Variant("fastseg", _fastseg_cat, kind="fastseg", description="fastseg.ops.conv_transpose2d_crop_cat"),
                    Variant("torch", _torch_cat, description="torch.cat([skip crop, F.conv_transpose2d(...)], 1)")]
    else:
        variants = [Variant("fastseg", _fastseg, kind="fastseg", description="fastseg.ops.conv_transpose2d_crop"),
                    Variant("torch", _torch, description="F.conv_transpose2d(...) + slice")]
    return Case(name, FAMILY, description, setup, variants, _bytes, atol=2e-3, rtol=1e-3, tags=tags)


# FCN (Long et al.), VOC 500x500 with the pad-100 input: score maps and Caffe crop offsets.
FCN = [
    # name, score map, kernel, stride, crop offset
    ("fcn32s_upscore", 16, 64, 32, 19),
    ("fcn16s_upscore16", 34, 32, 16, 27),
    ("fcn8s_upscore8", 70, 16, 8, 31),
]
for _name, _hw, _k, _s, _crop in FCN:
    register(case(_name, f"FCN score upsampling, 21 classes: [1,21,{_hw}x{_hw}] k={_k} s={_s}, Caffe crop "
                  f"offset {_crop} -> 500x500, no bias; baseline F.conv_transpose2d + slice",
                  _setup(21, 21, (_hw, _hw), _k, _s, 0, (_crop, _crop), (500, 500), bias=False),
                  tags=("main",) if _name == "fcn8s_upscore8" else ()))

register(case("fcn8s_upscore2", "FCN-8s upscore2: [1,21,16x16] k=4 s=2 -> 34x34 (no crop); baseline "
              "F.conv_transpose2d", _setup(21, 21, (16, 16), 4, 2, 0, (0, 0), None, bias=False)))

register(case("bilinear_x8_depthwise", "Fixed bilinear x8 upsampling (BilinearUpsample2d), depthwise over 21 "
              "classes: [1,21,64x64] k=16 s=8 groups=21, crop 4 -> 512x512; baseline F.conv_transpose2d + slice",
              _setup(21, 21, (64, 64), 16, 8, 0, (4, 4), (512, 512), groups=21, bias=False)))

# U-Net (Ronneberger et al.), 572x572 input: up-conv 2x2 + copy-and-crop concat, each decoder stage.
UNET = [
    # name, in channels, input hw, skip hw
    ("unet_up1", 1024, 28, 64),
    ("unet_up2", 512, 52, 136),
    ("unet_up3", 256, 100, 280),
    ("unet_up4", 128, 196, 568),
]
for _name, _c, _hw, _skip in UNET:
    register(case(_name, f"U-Net up-conv {_c}->{_c // 2} 2x2 s2 at {_hw}x{_hw} + concat with the centre "
                  f"{2 * _hw}x{2 * _hw} of the [{_c // 2},{_skip}x{_skip}] skip; baseline torch.cat + "
                  "F.conv_transpose2d",
                  _setup(_c, _c // 2, (_hw, _hw), 2, 2, 0, (0, 0), None, skip=(_c // 2, (_skip, _skip))),
                  concat=True, tags=("main",) if _name == "unet_up1" else ()))

# DeconvNet (Noh et al.), VGG16 224x224: 3x3 stride-1 deconvolutions, deepest and shallowest.
register(case("deconvnet_deconv5", "DeconvNet deconv5: [1,512,14x14] 3x3 s1 p1; baseline F.conv_transpose2d",
              _setup(512, 512, (14, 14), 3, 1, 1, (0, 0), None)))
register(case("deconvnet_deconv1", "DeconvNet deconv1: [1,64,224x224] 3x3 s1 p1; baseline F.conv_transpose2d",
              _setup(64, 64, (224, 224), 3, 1, 1, (0, 0), None)))

register(Case(
    "general_3x3_s2", FAMILY, "General 3x3 s2 'made exactly 2x': [1,64,56x56] -> 112x112 as padding 0 + crop "
    "(1, 1); baseline F.conv_transpose2d(padding=1, output_padding=1), the same numbers",
    _setup(64, 64, (56, 56), 3, 2, 0, (1, 1), (112, 112)),
    [Variant("fastseg", _fastseg, kind="fastseg", description="fastseg.ops.conv_transpose2d_crop"),
     Variant("torch", lambda s: F.conv_transpose2d(s.x, s.w, s.b, 2, 1, 1),
             description="F.conv_transpose2d(stride=2, padding=1, output_padding=1)")],
    _bytes, atol=2e-3, rtol=1e-3))
