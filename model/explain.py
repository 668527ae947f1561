"""Where the network looked: Grad-CAM on the last stage and SA's own spatial gate.

Both run on the network as the authors define it (``model/sanet.py``, unfolded, fp32): it is
differentiable and gives the same logits as the folded graph the service serves.

- ``gradcam``: the gradient of the target's logit with respect to the last stage's output
  (B, C, 7, 7); each channel weighted by its gradient's spatial mean, summed, ReLU, divided
  by the map's maximum (an all-zero map stays zero).
- ``sa``: the spatial gate of the last SA layer, ``sigmoid(sweight * GroupNorm(x) + sbias)``
  on the spatial half of every group, averaged over groups and channels and stretched to
  [0, 1]. It is what the network itself chose to weight, before any class is picked.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from model.errors import ExplainError
from model.postprocess import probabilities
from model.sa_layer import ShuffleAttention
from model.sanet import SANet

METHODS = ("gradcam", "sa")


@dataclass(frozen=True)
class Explanation:
    """One image's explanation: its probabilities, the class explained and the map."""

    probabilities: torch.Tensor  # (classes,)
    target: int
    heatmap: torch.Tensor  # (h, w) float32 in [0, 1], the last stage's grid (7 x 7 at 224)


class Explainer:
    """Explanations of one fp32 SA-ResNet (kept apart from the compiled engine)."""

    def __init__(self, net: torch.nn.Module) -> None:
        if not isinstance(net, SANet):
            raise ExplainError("explanations need the SA-ResNet itself (model/sanet.py)")
        self.net = net.float().eval()
        for p in self.net.parameters():
            p.requires_grad_(False)
        sa = getattr(self.net.layer4[-1], "sa", None)
        self._sa = sa if isinstance(sa, ShuffleAttention) else None

    @property
    def num_classes(self) -> int:
        return int(self.net.fc.out_features)

    def explain(
        self, batch: torch.Tensor, method: str = "gradcam", targets: list[int | None] | None = None
    ) -> list[Explanation]:
        """Explain a normalised float32 (B, 3, H, W) batch; ``targets[i]`` None: the top-1."""
        if method not in METHODS:
            raise ExplainError(f"unknown method {method!r}; one of {', '.join(METHODS)}")
        wanted = targets if targets is not None else [None] * batch.shape[0]
        for t in wanted:
            if t is not None and not 0 <= t < self.num_classes:
                raise ExplainError(f"target {t} is not a class index (0..{self.num_classes - 1})")
        with torch.enable_grad():
            features, logits, gate = self._forward(batch.float())
            probs = probabilities(logits.detach())
            chosen = [
                int(p.argmax()) if t is None else t for p, t in zip(probs, wanted, strict=True)
            ]
            if method == "gradcam":
                maps = _gradcam(features, logits, chosen)
            else:
                maps = _sa_map(self._sa, gate)
        return [Explanation(p, t, m) for p, t, m in zip(probs, chosen, maps.detach(), strict=True)]

    def _forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """The last stage's output (with grad), the logits, and the last SA layer's input."""
        captured: list[torch.Tensor] = []
        hook = None
        if self._sa is not None:
            hook = self._sa.register_forward_pre_hook(lambda _m, args: captured.append(args[0]))
        try:
            net = self.net
            x = net.maxpool(net.relu(net.bn1(net.conv1(x))))
            x = net.layer3(net.layer2(net.layer1(x)))
            features = net.layer4(x.detach().requires_grad_(True))
            logits = net.fc(torch.flatten(net.avgpool(features), 1))
        finally:
            if hook is not None:
                hook.remove()
        return features, logits, captured[-1] if captured else None


def _gradcam(features: torch.Tensor, logits: torch.Tensor, targets: list[int]) -> torch.Tensor:
    index = torch.tensor(targets, device=logits.device)
    picked = logits.gather(1, index[:, None]).sum()
    (grads,) = torch.autograd.grad(picked, features)
    weights = grads.mean(dim=(2, 3), keepdim=True)
    cam = torch.relu((weights * features).sum(dim=1))
    peak = cam.amax(dim=(1, 2), keepdim=True)
    return torch.where(peak > 0, cam / peak.clamp_min(1e-12), torch.zeros_like(cam))


def _sa_map(sa: ShuffleAttention | None, x: torch.Tensor | None) -> torch.Tensor:
    """The last SA layer's spatial gate for its input ``x``, averaged, stretched to [0, 1]."""
    if sa is None or x is None:
        raise ExplainError("the network has no SA layer to read a spatial gate from")
    b, c, h, w = x.shape
    groups = sa.groups
    spatial = x.detach().reshape(b * groups, c // groups, h, w).chunk(2, dim=1)[1]
    gate = torch.sigmoid(sa.sweight * sa.gn(spatial) + sa.sbias)
    mean = gate.reshape(b, -1, h, w).mean(dim=1)
    low = mean.amin(dim=(1, 2), keepdim=True)
    span = mean.amax(dim=(1, 2), keepdim=True) - low
    return torch.where(span > 0, (mean - low) / span.clamp_min(1e-12), torch.zeros_like(mean))


def overlay_png(crop: np.ndarray, heatmap: torch.Tensor, alpha: float = 0.5) -> bytes:
    """A PNG of ``heatmap`` (h, w in [0, 1]) coloured and blended over ``crop`` (uint8 HWC)."""
    height, width = crop.shape[:2]
    up = torch.nn.functional.interpolate(
        heatmap[None, None].float(), size=(height, width), mode="bilinear", align_corners=False
    )[0, 0].clamp(0, 1)
    colour = _colormap(up.numpy())
    blended = (1 - alpha) * crop.astype(np.float32) + alpha * colour
    out = io.BytesIO()
    Image.fromarray(np.clip(blended, 0, 255).astype(np.uint8)).save(out, format="PNG")
    return out.getvalue()


def _colormap(v: np.ndarray) -> np.ndarray:
    """Blue (0) through green to red (1), as RGB floats in [0, 255] (a jet-like ramp)."""
    ramp = [np.clip(1.5 - np.abs(4 * v - k), 0, 1) for k in (3, 2, 1)]
    return np.stack(ramp, axis=-1) * 255
