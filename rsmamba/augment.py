"""Augmentations applied identically to image, DSM and every label of a sample.

The DSM travels as the last image channel, so a geometric transform can never desynchronise it
from the image; labels use nearest-neighbour resampling and keep 255 (ignore) outside the data.
Randomness comes from a ``torch.Generator`` owned by the caller (seeded per epoch and worker), so a
resumed run draws the same augmentations as an uninterrupted one.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from rsmamba.classes import IGNORE_INDEX

IMAGE_KEYS = ("image", "image2")
LABEL_KEYS = ("mask", "mask2", "change", "targets")


class Augment:
    """Random flips, rot90, scale (zoom in/out with crop/pad), photometric and colour jitter.

    ``photometric`` jitters only the spectral channels (not the DSM: heights are physical), one
    gain and bias for all of them. ``colour`` draws a gain and a bias per spectral channel and
    ``channel_shuffle`` (a probability) permutes the spectral channels: a roof or a field in a
    colour the training scenes never had still looks like itself, so a model has to use shape,
    texture and shadow, not hue alone (issue #16). ``grayscale`` (a probability) replaces every
    spectral band by their mean: the same lesson without the unnatural colours a band shuffle makes.
    Every image of a sample (both epochs of a change pair) gets the same draw, so unchanged ground
    stays unchanged. ``date_swap`` (a probability) swaps a change pair's dates, each with its semantic
    label; the change mask stays, as unchanged ground is unchanged either way (Mamba-FCS's SECOND loader).
    """

    def __init__(self, flips: bool = True, rot90: bool = True, scale: tuple[float, float] | None = None,
                 photometric: float = 0.0, dsm_channels: int = 0, scale_set: tuple[float, ...] | None = None,
                 colour: float = 0.0, channel_shuffle: float = 0.0, grayscale: float = 0.0,
                 date_jitter: bool = False, image_norm: tuple[list[float], list[float]] | None = None,
                 date_swap: float = 0.0):
        self.flips = flips
        self.rot90 = rot90
        self.scale = tuple(scale) if scale else None
        self.scale_set = tuple(float(v) for v in scale_set) if scale_set else None  # e.g. GeoSeg's {0.5..1.5}
        self.photometric = photometric
        self.dsm_channels = dsm_channels
        self.colour = colour
        self.channel_shuffle = channel_shuffle
        self.grayscale = grayscale
        self.date_jitter = date_jitter
        if date_jitter and image_norm is None:
            raise ValueError("date_jitter works on pixel values: give image_norm (the images' mean and std)")
        self.image_norm = image_norm
        self.date_swap = date_swap
        self.generator = torch.Generator().manual_seed(0)

    def reseed(self, seed: int) -> None:
        self.generator.manual_seed(seed)

    def _rand(self) -> float:
        return float(torch.rand((), generator=self.generator))

    def __call__(self, sample: dict[str, Any]) -> dict[str, Any]:
        keys_img = [k for k in IMAGE_KEYS if k in sample]
        keys_lbl = [k for k in LABEL_KEYS if k in sample]
        if self.flips and self._rand() < 0.5:
            for k in keys_img + keys_lbl:
                sample[k] = sample[k].flip(-1)
        if self.flips and self._rand() < 0.5:
            for k in keys_img + keys_lbl:
                sample[k] = sample[k].flip(-2)
        if self.rot90:
            turns = int(torch.randint(0, 4, (), generator=self.generator))
            first = sample[(keys_img + keys_lbl)[0]] if keys_img + keys_lbl else None
            if first is not None and first.shape[-1] != first.shape[-2]:
                turns = 2 * (turns % 2)  # a chip of a raster narrower than --size (64 x 40): turned only by 180
                # degrees (a quarter turn made it 40 x 64, and its batch was refused as 'of different tilings')
            for k in keys_img + keys_lbl:
                sample[k] = torch.rot90(sample[k], turns, dims=(-2, -1))
        if self.scale or self.scale_set:
            if self.scale_set:
                factor = self.scale_set[int(torch.randint(0, len(self.scale_set), (), generator=self.generator))]
            else:
                lo, hi = self.scale
                factor = lo + (hi - lo) * self._rand()
            for k in keys_img:
                sample[k] = _rescale(sample[k], factor, "bilinear", 0.0)
            for k in keys_lbl:
                # at pixel centres, as the bilinear image is sampled ("nearest", floor(i * in / out), put the
                # labels up to half a pixel up-left of their image: 0.475 px on average at scale 0.75-1.25)
                sample[k] = _rescale(sample[k], factor, "nearest-exact", IGNORE_INDEX)
        if self.date_swap > 0 and "image2" in sample and self._rand() < self.date_swap:  # drawn only when asked
            sample["image"], sample["image2"] = sample["image2"], sample["image"]
            if "mask2" in sample:
                sample["mask"], sample["mask2"] = sample["mask2"], sample["mask"]
        # no-data pixels are 0 in every channel (rsmamba.raster.normalize.blank_invalid), as predict feeds them: the
        # spectral jitters below shifted them by their bias (photometric 0.2: up to +-0.2), which predict never shows
        blank = {k: (sample[k] == 0).all(0) for k in keys_img} if keys_img and (
            self.photometric > 0 or self.colour > 0 or self.date_jitter) else {}
        if self.photometric > 0:
            gain = 1 + self.photometric * (2 * self._rand() - 1)
            bias = self.photometric * (2 * self._rand() - 1)
            for k in keys_img:
                x = sample[k].clone()
                n = x.shape[0] - self.dsm_channels
                x[:n] = x[:n] * gain + bias
                sample[k] = x
        if keys_img and (self.colour > 0 or self.channel_shuffle > 0):  # drawn only when asked: older runs replay
            n = sample[keys_img[0]].shape[0] - self.dsm_channels
            gains = biases = perm = None
            if self.colour > 0:
                gains = 1 + self.colour * (2 * torch.rand(n, generator=self.generator) - 1)
                biases = self.colour * (2 * torch.rand(n, generator=self.generator) - 1)
            if self.channel_shuffle > 0 and self._rand() < self.channel_shuffle:
                perm = torch.randperm(n, generator=self.generator)
            for k in keys_img:
                x = sample[k].clone()
                if gains is not None:
                    x[:n] = x[:n] * gains[:, None, None].to(x.dtype) + biases[:, None, None].to(x.dtype)
                if perm is not None:
                    x[:n] = x[:n][perm]
                sample[k] = x
        if self.date_jitter:  # drawn only when asked: older runs replay
            for k in keys_img:
                sample[k] = self._jitter_date(sample[k])
        if keys_img and self.grayscale > 0 and self._rand() < self.grayscale:  # drawn only when asked
            for k in keys_img:
                x = sample[k].clone()
                n = x.shape[0] - self.dsm_channels
                x[:n] = x[:n].mean(0, keepdim=True)
                sample[k] = x
        for k, where in blank.items():
            if where.any():
                sample[k] = sample[k].masked_fill(where, 0.0)
        return sample


    def _jitter_date(self, x: torch.Tensor) -> torch.Tensor:
        """Mamba-FCS's per-date photometric jitter (``random_photometric_imgs``), on 0..255 pixel values:
        brightness N(1, 0.1) in [0.8, 1.2], then contrast N(1, 0.1) and saturation N(1, 0.05), each in
        [0.9, 1.1], as PIL's ImageEnhance blends them (towards black, the mean grey, the pixel's grey).
        Each date draws its own: a change of light between the dates is no change."""
        def draw(std: float, lo: float, hi: float) -> float:
            return min(max(1.0 + std * float(torch.randn((), generator=self.generator)), lo), hi)

        brightness, contrast, saturation = draw(0.1, 0.8, 1.2), draw(0.1, 0.9, 1.1), draw(0.05, 0.9, 1.1)
        mean, std = (torch.as_tensor(v, dtype=x.dtype)[:, None, None] for v in self.image_norm)
        n = mean.shape[0]
        raw = (x[:n] * std + mean) * brightness
        raw = raw.clamp(0, 255)
        raw = (_grey(raw).mean() + contrast * (raw - _grey(raw).mean())).clamp(0, 255)
        raw = (_grey(raw) + saturation * (raw - _grey(raw))).clamp(0, 255)
        out = x.clone()
        out[:n] = (raw - mean) / std
        return out


def _grey(rgb: torch.Tensor) -> torch.Tensor:
    """(1, h, w) luminance as PIL's ``convert("L")`` (ITU-R 601-2) of 3 bands; the band mean of others."""
    if rgb.shape[0] != 3:
        return rgb.mean(0, keepdim=True)
    return (0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2])[None]


def _rescale(t: torch.Tensor, factor: float, mode: str, fill: float) -> torch.Tensor:
    """Zoom by ``factor`` about the centre, keeping the size (crop when > 1, pad with ``fill`` when < 1)."""
    h, w = t.shape[-2:]
    nh, nw = max(1, round(h * factor)), max(1, round(w * factor))
    x = t[None].float() if t.dim() == 3 else t[None, None].float()
    x = F.interpolate(x, size=(nh, nw), mode=mode, **({"align_corners": False} if mode == "bilinear" else {}))
    out = torch.full((*x.shape[:2], h, w), float(fill))
    top, left = (nh - h) // 2, (nw - w) // 2
    sy, sx = max(top, 0), max(left, 0)
    dy, dx = max(-top, 0), max(-left, 0)
    ch, cw = min(h, nh) , min(w, nw)
    out[..., dy:dy + ch, dx:dx + cw] = x[..., sy:sy + ch, sx:sx + cw]
    out = out[0] if t.dim() == 3 else out[0, 0]
    return out.to(t.dtype)
