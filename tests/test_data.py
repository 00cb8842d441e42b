"""fastseg.data: SyntheticScenes (deterministic, consistent targets), joint transforms,
SegmentationFolder (VOC / Cityscapes layouts through Pillow), collation."""
import hashlib
import os
import subprocess
import sys

import pytest
import torch

import helpers

from fastseg.data import SegmentationFolder, SyntheticScenes, collate, semantic_batch, transforms
from fastseg.data.transforms import boxes_from_masks


def digest(sample) -> str:
    image, t = sample
    h = hashlib.sha256()
    for x in (image, t["semantic"], t["boxes"], t["labels"], t["masks"], t["panoptic"]):
        h.update(x.contiguous().numpy().tobytes())
    h.update(repr(t["segments_info"]).encode())
    return h.hexdigest()


def test_deterministic_in_process_and_across_processes():
    ds = SyntheticScenes(5, (48, 64), seed=3)
    here = [digest(ds[i]) for i in range(5)]
    assert here == [digest(SyntheticScenes(5, (48, 64), seed=3)[i]) for i in range(5)]
    assert len(set(here)) == 5
    assert digest(SyntheticScenes(5, (48, 64), seed=4)[0]) != here[0]
    assert digest(SyntheticScenes(5, (48, 64), "val", seed=3)[0]) != here[0]
    code = ("import sys; sys.path.insert(0, 'tests'); import torch; torch.set_num_threads(1); "
            "from test_data import digest; from fastseg.data import SyntheticScenes; "
            "ds = SyntheticScenes(5, (48, 64), seed=3); print(','.join(digest(ds[i]) for i in range(5)))")
    out = subprocess.run([sys.executable, "-c", code], cwd=helpers.REPO_ROOT, capture_output=True, text=True,
                         timeout=120, check=True).stdout.strip().splitlines()[-1]
    assert out.split(",") == here  # another process, another thread count


@pytest.mark.parametrize("index", range(12))
def test_targets_consistent(index):
    ds = SyntheticScenes(12, (64, 80), seed=1)
    image, t = ds[index]
    H, W = 64, 80
    assert image.shape == (3, H, W) and image.dtype == torch.float32 and 0 <= image.min() and image.max() <= 1
    sem, pan, masks, boxes, labels = t["semantic"], t["panoptic"], t["masks"], t["boxes"], t["labels"]
    assert sem.dtype == torch.int64 and pan.dtype == torch.int32 and masks.dtype == torch.bool
    K = masks.shape[0]
    assert boxes.shape == (K, 4) and labels.shape == (K,) and masks.shape == (K, H, W)
    assert set(sem.unique().tolist()) <= set(range(ds.num_classes)) | {255}
    # masks are disjoint, inside their boxes, tight boxes, thing labels
    assert (masks.sum(0) <= 1).all()
    torch.testing.assert_close(boxes, boxes_from_masks(masks))
    assert set(labels.tolist()) <= set(ds.thing_ids)
    # panoptic ids match segments_info; semantic agrees with segments and masks
    ids = {s["id"]: s for s in t["segments_info"]}
    assert set(pan.unique().tolist()) - {0} == set(ids)
    for s in t["segments_info"]:
        region = pan == s["id"]
        assert int(region.sum()) == s["area"] > 0
        assert (sem[region] == s["category_id"]).all()
        assert s["isthing"] == (s["category_id"] in ds.thing_ids)
    things = [s for s in t["segments_info"] if s["isthing"]]
    assert len(things) == K
    for k, s in enumerate(things):
        assert torch.equal(pan == s["id"], masks[k]) and s["category_id"] == int(labels[k])
    assert ((pan == 0) == (sem == 255)).all()  # void exactly where ignored


def test_scenes_have_things_and_stuff():
    ds = SyntheticScenes(20, (96, 96))
    counts = torch.zeros(ds.num_classes)
    for i in range(20):
        sem = ds[i][1]["semantic"]
        counts += torch.bincount(sem[sem != 255], minlength=ds.num_classes)
    assert (counts > 0).all(), counts  # every class appears
    assert len(ds.classes) == len(ds.colors) == ds.num_classes
    assert set(ds.stuff_ids) | set(ds.thing_ids) == set(range(ds.num_classes))


def test_color_alone_does_not_give_the_class():
    """A nearest-mean-colour classifier is far from perfect on the scenes."""
    ds = SyntheticScenes(16, (64, 64))
    pix, lab = [], []
    for i in range(16):
        image, t = ds[i]
        keep = t["semantic"] != 255
        pix.append(image.permute(1, 2, 0)[keep])
        lab.append(t["semantic"][keep])
    pix, lab = torch.cat(pix), torch.cat(lab)
    means = torch.stack([pix[lab == c].mean(0) for c in range(ds.num_classes)])
    acc = ((pix[:, None] - means[None]).square().sum(-1).argmin(1) == lab).float().mean()
    assert acc < 0.8, acc


def test_bad_arguments():
    with pytest.raises(ValueError, match="image_size"):
        SyntheticScenes(4, (8, 8))
    with pytest.raises(ValueError, match="num_samples"):
        SyntheticScenes(-1)
    with pytest.raises(IndexError, match="out of range"):
        SyntheticScenes(2)[2]


def test_transforms_keep_targets_aligned():
    torch.manual_seed(0)
    ds = SyntheticScenes(4, (64, 80), seed=2)
    tf = transforms.Compose([transforms.RandomScale(0.6, 1.6), transforms.RandomCrop((48, 56)),
                             transforms.RandomHorizontalFlip(1.0)])
    for i in range(4):
        image, t = tf(*ds[i])
        assert image.shape == (3, 48, 56) and t["semantic"].shape == (48, 56) and t["panoptic"].shape == (48, 56)
        assert t["masks"].shape[1:] == (48, 56) and t["masks"].flatten(1).any(1).all()
        torch.testing.assert_close(t["boxes"], boxes_from_masks(t["masks"]))
        for s in t["segments_info"]:
            assert int((t["panoptic"] == s["id"]).sum()) == s["area"]
        things = [s for s in t["segments_info"] if s["isthing"]]
        for k, s in enumerate(things):
            assert torch.equal(t["panoptic"] == s["id"], t["masks"][k])


def test_flip_and_crop_exact():
    image = torch.arange(2 * 3 * 4, dtype=torch.float32).view(1, 2, 3, 4).expand(3, 2, 3, 4).reshape(3, 6, 4)
    sem = torch.arange(24).view(6, 4)
    im2, t2 = transforms.RandomHorizontalFlip(1.0)(image, {"semantic": sem})
    assert torch.equal(im2, image.flip(-1)) and torch.equal(t2["semantic"], sem.flip(-1))
    im3, t3 = transforms.RandomCrop((8, 5))(image, {"semantic": sem})  # padding needed
    assert im3.shape == (3, 8, 5) and (t3["semantic"] == 255).sum() == 8 * 5 - 24


def _write_voc(root, n=2):
    from fastseg.data import write_image, write_label_map

    os.makedirs(os.path.join(root, "JPEGImages"))
    os.makedirs(os.path.join(root, "SegmentationClass"))
    os.makedirs(os.path.join(root, "ImageSets", "Segmentation"))
    ds = SyntheticScenes(n, (32, 40))
    names = []
    for i in range(n):
        image, t = ds[i]
        name = f"2007_00000{i}"
        write_image(os.path.join(root, "JPEGImages", name + ".png"), image)
        write_label_map(os.path.join(root, "SegmentationClass", name + ".png"), t["semantic"], palette=ds.colors)
        names.append(name)
    for split in ("train", "val"):
        with open(os.path.join(root, "ImageSets", "Segmentation", split + ".txt"), "w") as f:
            f.write("\n".join(names) + "\n")
    return ds


def test_segmentation_folder_voc(tmp_path):
    pytest.importorskip("PIL")
    ds = _write_voc(str(tmp_path))
    folder = SegmentationFolder(str(tmp_path), "voc", "train")
    assert len(folder) == 2 and folder.num_classes == 21
    for i in range(2):
        image, t = folder[i]
        ref_image, ref = ds[i]
        assert torch.equal(t["semantic"], ref["semantic"])
        assert (image - ref_image).abs().max() <= 1 / 255 + 1e-6  # 8-bit PNG
    os.remove(os.path.join(tmp_path, "SegmentationClass", "2007_000001.png"))
    with pytest.raises(FileNotFoundError, match="SegmentationClass/2007_000001.png"):
        SegmentationFolder(str(tmp_path), "voc", "train")
    with pytest.raises(FileNotFoundError, match="ImageSets/Segmentation/test.txt"):
        SegmentationFolder(str(tmp_path), "voc", "test")


def test_segmentation_folder_cityscapes(tmp_path):
    pytest.importorskip("PIL")
    from fastseg.data import write_image, write_label_map

    ds = SyntheticScenes(2, (32, 40))
    for i in range(2):
        city = tmp_path / "leftImg8bit" / "val" / "aachen"
        gt = tmp_path / "gtFine" / "val" / "aachen"
        city.mkdir(parents=True, exist_ok=True)
        gt.mkdir(parents=True, exist_ok=True)
        write_image(str(city / f"aachen_00000{i}_000019_leftImg8bit.png"), ds[i][0])
        write_label_map(str(gt / f"aachen_00000{i}_000019_gtFine_labelTrainIds.png"), ds[i][1]["semantic"])
    folder = SegmentationFolder(str(tmp_path), "cityscapes", "val")
    assert len(folder) == 2 and folder.num_classes == 19
    assert torch.equal(folder[1][1]["semantic"], ds[1][1]["semantic"])
    with pytest.raises(FileNotFoundError, match="leftImg8bit/train"):
        SegmentationFolder(str(tmp_path), "cityscapes", "train")


def test_bad_transform_and_label_arguments(tmp_path):
    with pytest.raises(ValueError, match="RandomHorizontalFlip: p must be a probability"):
        transforms.RandomHorizontalFlip(1.5)
    with pytest.raises(ValueError, match="RandomScale: need 0 < min_scale <= max_scale"):
        transforms.RandomScale(2.0, 1.0)
    with pytest.raises(ValueError, match="RandomCrop: size"):
        transforms.RandomCrop((0, 4))
    pytest.importorskip("PIL")
    from fastseg.data import write_label_map

    with pytest.raises(ValueError, match="values in 0..255"):
        write_label_map(str(tmp_path / "x.png"), torch.full((2, 2), 300))


def test_collate_pads():
    a = (torch.ones(3, 4, 5), {"semantic": torch.zeros(4, 5, dtype=torch.int64)})
    b = (torch.ones(3, 6, 3), {"semantic": torch.ones(6, 3, dtype=torch.int64)})
    images, targets = collate([a, b])
    assert images.shape == (2, 3, 6, 5) and images[0, :, 4:].abs().sum() == 0
    sem = semantic_batch(targets, images.shape[-2:])
    assert sem.shape == (2, 6, 5) and (sem[0, 4:] == 255).all() and (sem[1, :, 3:] == 255).all()
