"""The training configuration (one dataclass; the CLI fills it from its flags) and the data /
model specs it names."""
import dataclasses
from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Tuple


class UsageError(ValueError):
    """Bad use of the command line tools: reported as one message, without a traceback."""


@dataclass
class TrainConfig:
    model: str = "segnet"
    model_args: Dict[str, Any] = field(default_factory=dict)   # builder keywords, e.g. {"width": 16}
    data: str = "synthetic"                                     # synthetic | voc:PATH | cityscapes:PATH
    num_samples: int = 256                                      # synthetic: training samples
    val_samples: Optional[int] = None                           # synthetic: default num_samples // 4 (>= 8)
    image_size: Tuple[int, int] = (128, 128)                    # synthetic size; crop size for folders
    epochs: int = 10
    stop_after: Optional[int] = None                            # stop after this epoch (resume later)
    batch_size: int = 8                                         # per process
    lr: float = 0.01
    optimizer: str = "sgd"                                      # sgd (momentum 0.9) | adamw
    weight_decay: float = 1e-4
    amp: bool = False
    amp_dtype: Optional[str] = None                             # bfloat16 (CPU default) | float16 (CUDA default)
    workers: int = 0
    out: str = "runs/fastseg"
    resume: Optional[str] = None
    seed: int = 0
    device: str = "cpu"
    sync_bn: bool = False
    augment: Optional[bool] = None                              # default: on for folders, off for synthetic

    def to_dict(self) -> Dict[str, Any]:
        d = dataclasses.asdict(self)
        d["image_size"] = list(self.image_size)
        return d


def parse_data_spec(spec: str) -> Tuple[str, Optional[str]]:
    """"synthetic" | "voc:PATH" | "cityscapes:PATH" -> (kind, path)."""
    if spec == "synthetic":
        return "synthetic", None
    kind, sep, path = spec.partition(":")
    if sep and kind in ("voc", "cityscapes") and path:
        return kind, path
    raise UsageError(f"unknown --data {spec!r}: use synthetic, voc:PATH or cityscapes:PATH")


def parse_model_arg(text: str) -> Tuple[str, Any]:
    """KEY=VALUE with VALUE an int, float, true/false or a string."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise UsageError(f"--model-arg must be KEY=VALUE, got {text!r}")
    for cast in (int, float):
        try:
            return key, cast(value)
        except ValueError:
            pass
    if value.lower() in ("true", "false"):
        return key, value.lower() == "true"
    return key, value
