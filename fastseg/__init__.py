"""fastseg: hand-written C++/CUDA kernels for segmentation networks.

Importing the package loads the compiled library `fastseg._C`, which registers every op with the
PyTorch dispatcher as `torch.ops.fastseg.*`. The Python side (`fastseg.ops`) adds argument checks,
fake (meta) kernels for torch.compile/export, and autograd.
"""
from ._loader import HAS_CUDA_KERNELS, HAS_OPS, load_error
from . import ops, nn, reference  # noqa: E402  (ops registers fake/autograd kernels at import)
from . import memory, metrics, panoptic_format  # noqa: E402
from . import models  # noqa: E402

__version__ = "0.1.0"
__all__ = ["ops", "nn", "reference", "memory", "metrics", "panoptic_format", "models", "HAS_OPS", "HAS_CUDA_KERNELS", "load_error", "__version__"]
