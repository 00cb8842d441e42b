"""Checkpoints: everything `--resume` needs to continue exactly (model, optimizer, scheduler,
scaler, completed epochs, RNG states, history), plus what `evaluate` / `predict` need to rebuild
the model (its name, builder keywords and class count)."""
import os
import random
from typing import Any, Dict

import torch

from .config import UsageError


def rng_state() -> Dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save(path: str, payload: Dict[str, Any]) -> None:
    """Written to a temporary file first, so that an interrupted save never leaves half a file."""
    tmp = path + ".tmp"
    torch.save(payload, tmp)
    os.replace(tmp, path)


def load(path: str) -> Dict[str, Any]:
    if not os.path.isfile(path):
        raise UsageError(f"checkpoint {path!r} does not exist")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # not a torch file, truncated, ...
        raise UsageError(f"checkpoint {path!r} could not be read: {e}") from None
    missing = [k for k in ("model", "model_name", "model_args", "num_classes") if k not in (ckpt if isinstance(ckpt, dict)
                                                                                           else {})]
    if missing:
        raise UsageError(f"checkpoint {path!r} is not a fastseg training checkpoint (no {', '.join(missing)})")
    return ckpt


def build_model(ckpt: Dict[str, Any]):
    """The checkpoint's network with its weights."""
    from .. import models

    # Panoptic models take num_stuff / num_things (saved as class_args), the others num_classes.
    classes = ckpt.get("class_args") or {"num_classes": ckpt["num_classes"]}
    model = models.get_model(ckpt["model_name"], **classes, **ckpt["model_args"])
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as e:
        raise UsageError(f"the checkpoint's weights do not fit {ckpt['model_name']}: {str(e).splitlines()[0]}") from None
    return model
