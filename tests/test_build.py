"""The compiled library is built and registers every op (CPU always; CUDA when expected).

In CI the extension is always built, so these tests do not skip: a broken build fails here
instead of silently skipping every kernel test (they are marked `needs_ops`). Set
FASTSEG_EXPECT_CUDA=1 where the CUDA kernels must be present (CI's CUDA build, the GPU machine).
"""
import os

import pytest
import torch

import fastseg

import helpers

EXPECT_CUDA = os.environ.get("FASTSEG_EXPECT_CUDA", "0").strip().lower() in ("1", "true", "yes", "on")

#: Every op of the unpooling family: (name, number of returned tensors).
UNPOOL_OPS = (
    "max_unpool2d", "max_unpool2d_backward",
    "max_pool2d_compact", "max_pool2d_compact_backward",
    "max_unpool2d_compact", "max_unpool2d_compact_backward",
    "unpool_nearest2d", "unpool_nearest2d_backward",
    "unpool_bed_of_nails2d", "unpool_bed_of_nails2d_backward",
)

#: The public schemas (docs/design.md §2, §5; argument names and types are part of the public API).
SCHEMAS = {
    "max_unpool2d": "fastseg::max_unpool2d(Tensor input, Tensor indices, int[2] kernel_size, int[2] stride, "
                    "int[2] padding, SymInt[2] output_size) -> Tensor",
    "max_unpool2d_backward": "fastseg::max_unpool2d_backward(Tensor grad_output, Tensor indices) -> Tensor",
    "max_pool2d_compact": "fastseg::max_pool2d_compact(Tensor input, int[2] kernel_size, int[2] stride, "
                          "int[2] padding, bool ceil_mode) -> (Tensor, Tensor)",
    "max_pool2d_compact_backward": "fastseg::max_pool2d_compact_backward(Tensor grad_values, Tensor offsets, "
                                   "SymInt[2] input_size, int[2] kernel_size, int[2] stride, int[2] padding) -> Tensor",
    "max_unpool2d_compact": "fastseg::max_unpool2d_compact(Tensor values, Tensor offsets, int[2] kernel_size, "
                            "int[2] stride, int[2] padding, SymInt[2] output_size) -> Tensor",
    "max_unpool2d_compact_backward": "fastseg::max_unpool2d_compact_backward(Tensor grad_output, Tensor offsets, "
                                     "int[2] kernel_size, int[2] stride, int[2] padding) -> Tensor",
    "unpool_nearest2d": "fastseg::unpool_nearest2d(Tensor input, int[2] scale_factor) -> Tensor",
    "unpool_nearest2d_backward": "fastseg::unpool_nearest2d_backward(Tensor grad_output, "
                                 "int[2] scale_factor) -> Tensor",
    "unpool_bed_of_nails2d": "fastseg::unpool_bed_of_nails2d(Tensor input, int[2] scale_factor) -> Tensor",
    "unpool_bed_of_nails2d_backward": "fastseg::unpool_bed_of_nails2d_backward(Tensor grad_output, "
                                      "int[2] scale_factor) -> Tensor",
    "conv_transpose2d_crop": "fastseg::conv_transpose2d_crop(Tensor input, Tensor weight, Tensor? bias, "
                             "int[2] stride, int[2] padding, int[2] dilation, int groups, SymInt[2] crop, "
                             "SymInt[2] output_size) -> Tensor",
    "conv_transpose2d_crop_out": "fastseg::conv_transpose2d_crop_out(Tensor input, Tensor weight, Tensor? bias, "
                                 "int[2] stride, int[2] padding, int[2] dilation, int groups, SymInt[2] crop, "
                                 "Tensor(a!) out) -> ()",
    "conv_transpose2d_crop_cat": "fastseg::conv_transpose2d_crop_cat(Tensor input, Tensor weight, Tensor? bias, "
                                 "Tensor skip, int[2] stride, int[2] padding, int[2] dilation, int groups, "
                                 "SymInt[2] crop, SymInt[2] output_size, SymInt[2] skip_crop) -> Tensor",
    "nms": "fastseg::nms(Tensor boxes, Tensor scores, float iou_threshold) -> Tensor",
    "batched_nms": "fastseg::batched_nms(Tensor boxes, Tensor scores, Tensor idxs, float iou_threshold) -> Tensor",
    "paste_masks": "fastseg::paste_masks(Tensor masks, Tensor boxes, SymInt height, SymInt width, "
                   "float? threshold) -> Tensor",
    "paste_masks_into": "fastseg::paste_masks_into(Tensor masks, Tensor boxes, float threshold, Tensor(a!) into) -> ()",
    "paste_masks_in_image": "fastseg::paste_masks_in_image(Tensor masks, Tensor boxes, int padding, SymInt height, "
                            "SymInt width) -> Tensor",
    "multi_scale_roi_align": "fastseg::multi_scale_roi_align(Tensor[] features, Tensor rois, Tensor levels, "
                             "float[] scales, SymInt pooled_height, SymInt pooled_width, int sampling_ratio) -> Tensor",
    "roi_align": "fastseg::roi_align(Tensor input, Tensor rois, float spatial_scale, SymInt pooled_height, "
                 "SymInt pooled_width, int sampling_ratio, bool aligned) -> Tensor",
    "roi_align_backward": "fastseg::roi_align_backward(Tensor grad, Tensor rois, float spatial_scale, "
                          "SymInt pooled_height, SymInt pooled_width, SymInt batch_size, SymInt channels, "
                          "SymInt height, SymInt width, int sampling_ratio, bool aligned) -> Tensor",
    "panoptic_fusion_heuristic": "fastseg::panoptic_fusion_heuristic(Tensor semantic, Tensor masks, Tensor? boxes, "
                                 "Tensor scores, Tensor labels, float overlap_threshold, int stuff_area_threshold, "
                                 "float score_threshold, int[] thing_ids) -> (Tensor, Tensor)",
    "panoptic_fusion_efficientps": "fastseg::panoptic_fusion_efficientps(Tensor semantic_logits, Tensor mask_logits, "
                                   "Tensor boxes, Tensor scores, Tensor labels, int[] stuff_ids, "
                                   "float score_threshold, float overlap_threshold, int min_stuff_area, "
                                   "bool pasted) -> (Tensor, Tensor)",
}
#: Ops whose autograd is registered (the out= form is inference-only: its Python wrapper records
#: autograd through a copy, see fastseg/ops/conv_transpose.py; NMS returns indices; pasted masks
#: are thresholded images; panoptic fusion is inference-only: argmax and integer ids).
DIFFERENTIABLE_OPS = tuple(n for n in SCHEMAS if n not in ("conv_transpose2d_crop_out", "nms", "batched_nms",
                                                            "paste_masks", "paste_masks_into", "paste_masks_in_image",
                                                            "panoptic_fusion_heuristic",
                                                            "panoptic_fusion_efficientps"))
ALL_OPS = tuple(SCHEMAS)


def test_extension_is_built():
    assert fastseg.HAS_OPS, f"fastseg._C failed to load: {fastseg.load_error!r}"
    assert fastseg.load_error is None


def test_cuda_kernels_when_expected():
    if not EXPECT_CUDA:
        pytest.skip("FASTSEG_EXPECT_CUDA is not set")
    assert fastseg.HAS_CUDA_KERNELS, "FASTSEG_EXPECT_CUDA=1 but fastseg._C has no CUDA kernels"


@helpers.needs_ops
@pytest.mark.parametrize("name", ALL_OPS)
def test_op_registered_with_cpu_kernel(name):
    packet = getattr(torch.ops.fastseg, name)
    assert hasattr(packet, "default"), f"torch.ops.fastseg.{name} has no .default overload"
    assert torch._C._dispatch_has_kernel_for_dispatch_key(f"fastseg::{name}", "CPU"), (
        f"fastseg::{name} has no CPU kernel")


@helpers.needs_ops
@pytest.mark.parametrize("name", ALL_OPS)
def test_op_schema(name):
    assert str(getattr(torch.ops.fastseg, name).default._schema) == SCHEMAS[name]


@helpers.needs_ops
@pytest.mark.parametrize("name", ALL_OPS)
def test_op_has_fake_and_autograd(name):
    """Fake (Meta) kernels for torch.compile/export, and an Autograd kernel (register_autograd)."""
    qual = f"fastseg::{name}"
    assert torch._C._dispatch_has_kernel_for_dispatch_key(qual, "Meta"), f"{qual}: no fake (Meta) kernel"
    if name in DIFFERENTIABLE_OPS:
        assert torch._C._dispatch_has_kernel_for_dispatch_key(qual, "Autograd"), f"{qual}: no autograd kernel"


@helpers.needs_ops
@pytest.mark.parametrize("name", ALL_OPS)
def test_op_cuda_kernel_when_expected(name):
    if not EXPECT_CUDA:
        pytest.skip("FASTSEG_EXPECT_CUDA is not set")
    assert torch._C._dispatch_has_kernel_for_dispatch_key(f"fastseg::{name}", "CUDA"), (
        f"fastseg::{name} has no CUDA kernel")


def test_public_api():
    for fn in ("max_unpool2d", "max_pool2d_compact", "max_unpool2d_compact", "unpool_nearest2d",
               "unpool_bed_of_nails2d"):
        assert callable(getattr(fastseg.ops, fn)), fn
        assert callable(getattr(fastseg.reference, fn)), fn
    for fn in ("conv_transpose2d_crop", "conv_transpose2d_crop_cat"):
        assert callable(getattr(fastseg.ops, fn)), fn
        assert callable(getattr(fastseg.reference, fn)), fn
    assert callable(fastseg.ops.bilinear_upsample_weight)
    for fn in ("nms", "batched_nms", "roi_align", "paste_masks", "paste_masks_in_image"):
        assert callable(getattr(fastseg.ops, fn)), fn
        assert callable(getattr(fastseg.reference, fn)), fn
    for fn in ("multi_scale_roi_align", "panoptic_fusion_heuristic", "panoptic_fusion_efficientps"):
        assert callable(getattr(fastseg.ops, fn)), fn
        assert callable(getattr(fastseg.reference, fn)), fn
    for layer in ("MaxUnpool2d", "MaxPool2dCompact", "MaxUnpool2dCompact", "UnpoolNearest2d", "UnpoolBedOfNails2d",
                  "ConvTranspose2dCrop", "BilinearUpsample2d", "UpConcat", "RoIAlign",
                  "MultiScaleRoIAlign"):
        assert issubclass(getattr(fastseg.nn, layer), torch.nn.Module), layer


def test_fresh_import_without_torchvision_import():
    """Importing fastseg must not import torchvision (it does not load on the CPU-only leg)."""
    helpers.raises_in_subprocess(
        "import sys, fastseg\n"
        "assert sys.modules.get('torchvision') is None, 'fastseg imported torchvision'\n"
        "raise SystemExit('ok')\n",
        "SystemExit", "^ok$")
