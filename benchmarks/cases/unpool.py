"""Unpooling family: max_unpool2d, the compact (uint8-offset) pool/unpool pair, nearest and
bed-of-nails unpooling, on the shapes of SegNet (CamVid 360x480) and DeconvNet (VGG16, 224x224).

Bytes charged per call (e = element size of the float dtype, n = elements of the pooled map,
X = elements of the full-resolution map; see harness.py for the convention):

* max_unpool2d
    fwd      reads input n*e and indices n*8, writes output X*e
    bwd      reads grad_output X*e and indices n*8, writes grad_input n*e
* compact pair (max_pool2d + max_unpool2d, ib = index bytes: 1 for fastseg's uint8 offsets,
  8 for PyTorch's int64 indices)
    fwd      pool: reads X*e, writes n*e + n*ib; unpool: reads n*e + n*ib, writes X*e
    bwd      unpool: reads X*e + n*ib, writes n*e; pool: reads n*e + n*ib, writes X*e
* unpool_nearest2d / unpool_bed_of_nails2d
    fwd      reads n*e, writes X*e
    bwd      reads X*e, writes n*e
* zero_fill (roofline row): writes X*e

`fwd+bwd` is charged fwd + bwd.
"""
from typing import Tuple

import torch
import torch.nn.functional as F

from ..harness import Case, State, Variant, register

FAMILY = "unpool"
DTYPE = torch.float32
INDEX_BYTES = {"int64": 8, "uint8": 1}


def _fastseg_ops():
    import fastseg.ops
    return fastseg.ops


def _fastseg_reference():
    import fastseg.reference
    return fastseg.reference


def _scaled(n: int, c: int, size: str) -> Tuple[int, int]:
    """`small` (pytest-benchmark's default) keeps the spatial geometry but uses N=1 and C/4."""
    if size == "small":
        return 1, max(8, c // 4)
    return n, c


def _numel(shape) -> int:
    out = 1
    for s in shape:
        out *= int(s)
    return out


# ----------------------------------------------------------------------------- max_unpool2d

def _max_unpool_setup(n: int, c: int, out_hw: Tuple[int, int], ceil_mode: bool,
                      channels_last: bool = False):
    """Pooled map and indices from F.max_pool2d(2, 2) of a random [n, c, *out_hw] map (ceil
    mode for the odd SegNet stages, as in the Caffe original), unpooled back to out_hw."""
    def setup(device: torch.device, size: str) -> State:
        N, C = _scaled(n, c, size)
        x = torch.randn(N, C, *out_hw, device=device, dtype=DTYPE)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        values, indices = F.max_pool2d(x, 2, 2, ceil_mode=ceil_mode, return_indices=True)
        values = values.detach().requires_grad_()
        grad_out = torch.randn_like(x)  # output shape and layout
        out_shape = tuple(x.shape)
        del x
        output_size = tuple(out_hw) if ceil_mode else None
        return State(
            values=values, indices=indices, output_size=output_size, out_shape=out_shape,
            leaves=[values], grad_out=grad_out,
            shapes={"input": list(values.shape), "indices": list(indices.shape), "output": list(out_shape),
                    "kernel_size": 2, "stride": 2, "output_size": list(output_size) if output_size else None,
                    "dtype": str(DTYPE).replace("torch.", ""),
                    "layout": "channels_last" if channels_last else "contiguous"},
            notes={"indices_int64_bytes": indices.numel() * INDEX_BYTES["int64"]},
        )
    return setup


def _max_unpool_bytes(state: State, mode: str, variant: str) -> int:
    e = state.values.element_size()
    n, X = state.values.numel(), _numel(state.out_shape)
    if variant == "zero_fill":
        return X * e
    fwd = n * e + n * 8 + X * e
    bwd = X * e + n * 8 + n * e
    return fwd if mode == "fwd" else fwd + bwd


def _fastseg_max_unpool(s: State):
    return _fastseg_ops().max_unpool2d(s.values, s.indices, 2, 2, output_size=s.output_size)


def _torch_max_unpool(s: State):
    return F.max_unpool2d(s.values, s.indices, 2, 2, output_size=s.output_size)


def _zero_fill(s: State):
    return torch.zeros(s.out_shape, dtype=s.values.dtype, device=s.values.device)


def max_unpool_case(name: str, description: str, n: int, c: int, out_hw: Tuple[int, int],
                    ceil_mode: bool = False, channels_last: bool = False, zero_fill: bool = False,
                    tags: Tuple[str, ...] = ()) -> Case:
    variants = [
        Variant("fastseg", _fastseg_max_unpool, kind="fastseg", description="fastseg.ops.max_unpool2d"),
        Variant("torch", _torch_max_unpool, description="torch.nn.functional.max_unpool2d"),
    ]
    if zero_fill:
        variants.append(Variant("zero_fill", _zero_fill, kind="roofline", modes=("fwd",),
                                description="torch.zeros of the output shape (write-only roofline)"))
    return Case(name, FAMILY, description, _max_unpool_setup(n, c, out_hw, ceil_mode, channels_last),
                variants, _max_unpool_bytes, tags=tags)


# SegNet (Badrinarayanan et al.), CamVid 360x480, batch 4: the decoder's five unpooling stages.
SEGNET = [
    # name, C, pooled (h, w) -> output (H, W), ceil-mode pooling
    ("segnet_dec1", 64, (180, 240), (360, 480), False),
    ("segnet_dec2", 128, (90, 120), (180, 240), False),
    ("segnet_dec3", 256, (45, 60), (90, 120), False),
    ("segnet_dec4", 512, (23, 30), (45, 60), True),
    ("segnet_dec5", 512, (12, 15), (23, 30), True),
]
SEGNET_N = 4

# DeconvNet (Noh et al.), VGG16 on 224x224, batch 8: the unpooling layers, deepest first.
DECONVNET = [
    ("deconvnet_unpool5", 512, (7, 7), (14, 14)),
    ("deconvnet_unpool4", 512, (14, 14), (28, 28)),
    ("deconvnet_unpool3", 256, (28, 28), (56, 56)),
    ("deconvnet_unpool2", 128, (56, 56), (112, 112)),
    ("deconvnet_unpool1", 64, (112, 112), (224, 224)),
]
DECONVNET_N = 8


def _hw(t):
    return "x".join(str(v) for v in t)


for _name, _c, _in, _out, _ceil in SEGNET:
    register(max_unpool_case(
        _name,
        f"SegNet decoder unpooling, CamVid: [{SEGNET_N},{_c},{_hw(_in)}] -> {_hw(_out)}, 2x2 s2"
        + (", output_size (ceil-mode pooling)" if _ceil else "") + "; baseline F.max_unpool2d",
        SEGNET_N, _c, _out, ceil_mode=_ceil, zero_fill=(_name == "segnet_dec1"),
        tags=("main",) if _name == "segnet_dec1" else ()))

register(max_unpool_case(
    "segnet_dec1_cl",
    f"segnet_dec1 with channels-last input, indices and output: [{SEGNET_N},64,180x240] -> 360x480; "
    "baseline F.max_unpool2d on the same channels-last tensors",
    SEGNET_N, 64, (360, 480), channels_last=True))

for _name, _c, _in, _out in DECONVNET:
    register(max_unpool_case(
        _name,
        f"DeconvNet unpooling, VGG16 224x224: [{DECONVNET_N},{_c},{_hw(_in)}] -> {_hw(_out)}, 2x2 s2; "
        "baseline F.max_unpool2d",
        DECONVNET_N, _c, _out))


# ----------------------------------------------------------------------------- compact pair

def _compact_setup(n: int, c: int, hw: Tuple[int, int]):
    def setup(device: torch.device, size: str) -> State:
        N, C = _scaled(n, c, size)
        x = torch.randn(N, C, *hw, device=device, dtype=DTYPE).requires_grad_()
        grad_out = torch.randn_like(x)
        pooled = N * C * (hw[0] // 2) * (hw[1] // 2)  # 2x2 s2, floor mode
        return State(
            x=x, leaves=[x], grad_out=grad_out, pooled_numel=pooled,
            shapes={"input": list(x.shape), "pooled": [N, C, hw[0] // 2, hw[1] // 2], "output": list(x.shape),
                    "kernel_size": 2, "stride": 2, "dtype": str(DTYPE).replace("torch.", "")},
            notes={
                "indices_int64_bytes": pooled * INDEX_BYTES["int64"],
                "offsets_uint8_bytes": pooled * INDEX_BYTES["uint8"],
                "index_memory": (f"int64 indices {pooled * 8 / 2**20:.1f} MiB vs uint8 offsets "
                                 f"{pooled / 2**20:.1f} MiB (8x less)"),
            },
        )
    return setup


def _compact_bytes(state: State, mode: str, variant: str) -> int:
    e = state.x.element_size()
    X, n = state.x.numel(), state.pooled_numel
    ib = INDEX_BYTES["uint8"] if variant == "fastseg" else INDEX_BYTES["int64"]
    fwd = (X * e + n * e + n * ib) + (n * e + n * ib + X * e)
    bwd = (X * e + n * ib + n * e) + (n * e + n * ib + X * e)
    return fwd if mode == "fwd" else fwd + bwd


def _fastseg_compact_pair(s: State):
    ops = _fastseg_ops()
    values, offsets = ops.max_pool2d_compact(s.x, 2, 2)
    return ops.max_unpool2d_compact(values, offsets, 2, 2)


def _torch_pair(s: State):
    values, indices = F.max_pool2d(s.x, 2, 2, return_indices=True)
    return F.max_unpool2d(values, indices, 2, 2)


register(Case(
    "segnet_dec1_compact_pair", FAMILY,
    f"max_pool2d_compact + max_unpool2d_compact (uint8 offsets) on the SegNet enc1/dec1 shape: pool "
    f"[{SEGNET_N},64,360x480] -> 180x240 -> unpool 360x480; baseline F.max_pool2d(return_indices=True) "
    "+ F.max_unpool2d (int64 indices)",
    _compact_setup(SEGNET_N, 64, (360, 480)),
    [Variant("fastseg", _fastseg_compact_pair, kind="fastseg",
             description="fastseg.ops.max_pool2d_compact + max_unpool2d_compact"),
     Variant("torch", _torch_pair, description="F.max_pool2d(return_indices=True) + F.max_unpool2d")],
    _compact_bytes))


# ----------------------------------------------------------------------------- nearest, bed of nails

def _scale_setup(n: int, c: int, hw: Tuple[int, int], scale: int = 2):
    def setup(device: torch.device, size: str) -> State:
        N, C = _scaled(n, c, size)
        x = torch.randn(N, C, *hw, device=device, dtype=DTYPE).requires_grad_()
        out_shape = (N, C, hw[0] * scale, hw[1] * scale)
        grad_out = torch.randn(out_shape, device=device, dtype=DTYPE)
        return State(x=x, scale=scale, out_shape=out_shape, leaves=[x], grad_out=grad_out,
                     shapes={"input": list(x.shape), "output": list(out_shape), "scale_factor": scale,
                             "dtype": str(DTYPE).replace("torch.", "")},
                     notes={})
    return setup


def _scale_bytes(state: State, mode: str, variant: str) -> int:
    e = state.x.element_size()
    n, X = state.x.numel(), _numel(state.out_shape)
    fwd = n * e + X * e
    bwd = X * e + n * e
    return fwd if mode == "fwd" else fwd + bwd


register(Case(
    "segnet_dec1_nearest", FAMILY,
    f"unpool_nearest2d x2 at the segnet_dec1 size: [{SEGNET_N},64,180x240] -> 360x480; baseline "
    "F.interpolate(mode='nearest', scale_factor=2)",
    _scale_setup(SEGNET_N, 64, (180, 240)),
    [Variant("fastseg", lambda s: _fastseg_ops().unpool_nearest2d(s.x, s.scale), kind="fastseg",
             description="fastseg.ops.unpool_nearest2d"),
     Variant("torch", lambda s: F.interpolate(s.x, scale_factor=s.scale, mode="nearest"),
             description="F.interpolate(mode='nearest')")],
    _scale_bytes))

register(Case(
    "segnet_dec1_bed_of_nails", FAMILY,
    f"unpool_bed_of_nails2d x2 at the segnet_dec1 size: [{SEGNET_N},64,180x240] -> 360x480; baseline "
    "fastseg.reference (zeros + strided assignment)",
    _scale_setup(SEGNET_N, 64, (180, 240)),
    [Variant("fastseg", lambda s: _fastseg_ops().unpool_bed_of_nails2d(s.x, s.scale), kind="fastseg",
             description="fastseg.ops.unpool_bed_of_nails2d"),
     Variant("reference", lambda s: _fastseg_reference().unpool_bed_of_nails2d(s.x, s.scale),
             description="fastseg.reference.unpool_bed_of_nails2d: zeros + out[..., ::s, ::s] = x")],
    _scale_bytes))
