"""Detection building blocks shared by Mask R-CNN and EfficientPS: box coding, matching, losses,
the image transform."""
from .matching import BalancedPositiveNegativeSampler, Matcher, box_area, box_iou  # noqa: F401
from .losses import fastrcnn_loss, maskrcnn_loss, project_masks_on_boxes, rpn_losses  # noqa: F401
