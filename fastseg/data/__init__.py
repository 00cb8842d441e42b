"""Data: `SyntheticScenes` (deterministic, download-free street scenes with semantic, instance and
panoptic targets), `SegmentationFolder` (VOC / Cityscapes layouts), joint transforms and
collation."""
from . import transforms  # noqa: F401
from .collate import collate, semantic_batch  # noqa: F401
from .folders import SegmentationFolder, read_image, read_label_map, write_image, write_label_map  # noqa: F401
from .synthetic import SyntheticScenes  # noqa: F401

__all__ = ["SyntheticScenes", "SegmentationFolder", "transforms", "collate", "semantic_batch", "read_image",
           "read_label_map", "write_image", "write_label_map"]
