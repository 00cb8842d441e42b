"""SegmentationFolder: real data in the usual layouts (images + PNG label maps), read with Pillow.

layout="voc" (PASCAL VOC 2012):
    root/JPEGImages/<id>.jpg            images (any Pillow format; .jpg or .png)
    root/SegmentationClass/<id>.png     label maps: class index per pixel (palette PNG), 255 = ignore
    root/ImageSets/Segmentation/<split>.txt   one <id> per line

layout="cityscapes":
    root/leftImg8bit/<split>/<city>/<name>_leftImg8bit.png
    root/gtFine/<split>/<city>/<name>_gtFine_labelTrainIds.png   train ids 0-18, 255 = ignore
    (made by cityscapesScripts' createTrainIdLabelImgs.py)

`dataset[i]` is `(image float [3, H, W] in [0, 1], {"semantic": int64 [H, W], "image_id": i})`.
A missing file raises FileNotFoundError naming it.
"""
import os
from typing import Callable, List, Optional, Tuple

import torch

VOC_CLASSES = ("background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
               "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
               "tvmonitor")
CITYSCAPES_CLASSES = ("road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign",
                      "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "train", "motorcycle",
                      "bicycle")


def _pil():
    try:
        from PIL import Image
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("fastseg.data.SegmentationFolder needs Pillow: pip install 'fastseg[train]' or pillow") from e
    return Image


def read_image(path: str) -> torch.Tensor:
    """An RGB image file as float [3, H, W] in [0, 1]."""
    Image = _pil()
    with Image.open(path) as im:
        rgb = im.convert("RGB")
        data = torch.frombuffer(bytearray(rgb.tobytes()), dtype=torch.uint8)
        return data.view(rgb.height, rgb.width, 3).permute(2, 0, 1).float().div_(255)


def read_label_map(path: str) -> torch.Tensor:
    """A single-channel (or palette) PNG of class indices as int64 [H, W]."""
    Image = _pil()
    with Image.open(path) as im:
        if im.mode not in ("L", "P", "I", "I;16"):
            raise ValueError(f"fastseg.data: {path} must be a single-channel or palette label PNG, got mode {im.mode}")
        arr = torch.tensor(list(im.getdata()) if im.mode in ("I", "I;16") else bytearray(im.tobytes()),
                           dtype=torch.int64)
        return arr.view(im.height, im.width)


def write_label_map(path: str, labels: torch.Tensor, palette: Optional[List[Tuple[int, int, int]]] = None) -> None:
    """int [H, W] labels in 0-255 as an 8-bit PNG (a palette PNG when `palette` is given)."""
    Image = _pil()
    if labels.dim() != 2 or labels.is_floating_point() or (labels.numel() and (labels.min() < 0 or labels.max() > 255)):
        raise ValueError(f"fastseg.data.write_label_map: labels must be an integer [H, W] map with values in 0..255, got "
                         f"{labels.dtype} {tuple(labels.shape)}")
    labels = labels.to(torch.uint8).cpu().contiguous()
    im = Image.frombytes("L", (labels.shape[1], labels.shape[0]), bytes(labels.numpy().tobytes()))
    if palette is not None:
        im = im.convert("P")
        flat = [v for rgb in palette for v in rgb]
        im.putpalette(flat + [0] * (768 - len(flat)))
    im.save(path)


def write_image(path: str, image: torch.Tensor) -> None:
    """float [3, H, W] in [0, 1] (or uint8) as an RGB image file."""
    Image = _pil()
    if image.is_floating_point():
        image = (image.clamp(0, 1) * 255).round()
    hwc = image.to(torch.uint8).permute(1, 2, 0).contiguous().cpu()
    Image.frombytes("RGB", (hwc.shape[1], hwc.shape[0]), bytes(hwc.numpy().tobytes())).save(path)


class SegmentationFolder(torch.utils.data.Dataset):
    """`SegmentationFolder(root, layout="voc" | "cityscapes", split="train", transforms=None)`;
    `transforms(image, target)` as in `fastseg.data.transforms`."""

    def __init__(self, root: str, layout: str = "voc", split: str = "train",
                 transforms: Optional[Callable] = None):
        if layout not in ("voc", "cityscapes"):
            raise ValueError(f"fastseg.data.SegmentationFolder: layout must be 'voc' or 'cityscapes', got {layout!r}")
        if not os.path.isdir(root):
            raise FileNotFoundError(f"fastseg.data.SegmentationFolder: root {root!r} is not a directory")
        self.root, self.layout, self.split, self.transforms = root, layout, split, transforms
        self.pairs = self._voc_pairs() if layout == "voc" else self._cityscapes_pairs()
        self.classes = VOC_CLASSES if layout == "voc" else CITYSCAPES_CLASSES
        self.num_classes = len(self.classes)
        self.ignore_index = 255

    def _voc_pairs(self) -> List[Tuple[str, str]]:
        listing = os.path.join(self.root, "ImageSets", "Segmentation", f"{self.split}.txt")
        if not os.path.isfile(listing):
            raise FileNotFoundError(f"fastseg.data.SegmentationFolder(voc): missing the split list {listing}")
        with open(listing) as f:
            ids = [line.strip() for line in f if line.strip()]
        pairs = []
        for i in ids:
            image = next((p for p in (os.path.join(self.root, "JPEGImages", i + ext) for ext in (".jpg", ".png"))
                          if os.path.isfile(p)), None)
            if image is None:
                raise FileNotFoundError(f"fastseg.data.SegmentationFolder(voc): missing the image "
                                        f"{os.path.join(self.root, 'JPEGImages', i + '.jpg')}")
            label = os.path.join(self.root, "SegmentationClass", i + ".png")
            if not os.path.isfile(label):
                raise FileNotFoundError(f"fastseg.data.SegmentationFolder(voc): missing the label map {label}")
            pairs.append((image, label))
        return pairs

    def _cityscapes_pairs(self) -> List[Tuple[str, str]]:
        images = os.path.join(self.root, "leftImg8bit", self.split)
        if not os.path.isdir(images):
            raise FileNotFoundError(f"fastseg.data.SegmentationFolder(cityscapes): missing the folder {images}")
        pairs = []
        for city in sorted(os.listdir(images)):
            for name in sorted(os.listdir(os.path.join(images, city))):
                if not name.endswith("_leftImg8bit.png"):
                    continue
                stem = name[: -len("_leftImg8bit.png")]
                label = os.path.join(self.root, "gtFine", self.split, city, stem + "_gtFine_labelTrainIds.png")
                if not os.path.isfile(label):
                    raise FileNotFoundError(f"fastseg.data.SegmentationFolder(cityscapes): missing the label map {label}")
                pairs.append((os.path.join(images, city, name), label))
        if not pairs:
            raise FileNotFoundError(f"fastseg.data.SegmentationFolder(cityscapes): no *_leftImg8bit.png under {images}")
        return pairs

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int):
        image_path, label_path = self.pairs[index]
        image, semantic = read_image(image_path), read_label_map(label_path)
        if image.shape[-2:] != semantic.shape:
            raise ValueError(f"fastseg.data.SegmentationFolder: {image_path} is {tuple(image.shape[-2:])} but "
                             f"{label_path} is {tuple(semantic.shape)}")
        target = {"semantic": semantic, "image_id": index}
        if self.transforms is not None:
            image, target = self.transforms(image, target)
        return image, target
