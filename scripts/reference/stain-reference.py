#!/usr/bin/python3
"""stain-reference.py IMAGE OUTDIR — scikit-image's colour deconvolution of
IMAGE as the reference Eosin's stain analyzer is tested against.

Writes, for the H&E-DAB (hed) and H-DAB (hdx) matrices:
  stain-ref-<m>-tiles.csv   per 128x128 tile (row-major from the top left):
                            tile,x,y and the mean of each separate_stains() channel
  stain-ref-<m>-pixels.csv  every 97th pixel: index,r,g,b and the three channels
Values are scikit-image's own units (optical density divided by
-log10(1e-6) = 6); Eosin reports log10 optical density, 6 times larger.
"""
import os
import sys

import numpy as np
from skimage import io
from skimage.color import hdx_from_rgb, hed_from_rgb, separate_stains

TILE = 128


def main():
    img_path, out = sys.argv[1], sys.argv[2]
    rgb = io.imread(img_path)[..., :3]
    h, w, _ = rgb.shape
    for name, m in (("hed", hed_from_rgb), ("hdx", hdx_from_rgb)):
        s = separate_stains(rgb, m)
        with open(os.path.join(out, f"stain-ref-{name}-tiles.csv"), "w") as f:
            f.write("tile,x,y,c0,c1,c2\n")
            t = 0
            for y in range(0, h - TILE + 1, TILE):
                for x in range(0, w - TILE + 1, TILE):
                    mean = s[y:y + TILE, x:x + TILE].reshape(-1, 3).mean(axis=0)
                    f.write(f"{t},{x},{y},{mean[0]:.12g},{mean[1]:.12g},{mean[2]:.12g}\n")
                    t += 1
        flat_rgb, flat_s = rgb.reshape(-1, 3), s.reshape(-1, 3)
        with open(os.path.join(out, f"stain-ref-{name}-pixels.csv"), "w") as f:
            f.write("index,r,g,b,c0,c1,c2\n")
            for i in range(0, len(flat_rgb), 97):
                r, g, b = flat_rgb[i]
                c = flat_s[i]
                f.write(f"{i},{r},{g},{b},{c[0]:.12g},{c[1]:.12g},{c[2]:.12g}\n")


if __name__ == "__main__":
    main()
