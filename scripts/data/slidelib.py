"""slidelib — what the slide generators of scripts/data/ share: writing a
PPM for libvips, running the vips and tiffset tools, saving a JPEG/deflate
tiled pyramid, the Aperio ImageDescription OpenSlide reads MPP and AppMag
from, and the mosaic generators' Aperio slide and elliptic regions.

Imported (`import slidelib`) by make-sample-slide, make-mosaic-slide,
make-ihc-slide and make-lbc-slide, which find it beside themselves (Python
puts a script's own folder first on sys.path); scripts/device/device-bundle
copies it into the bundle with them. Not a command.
"""
import os
import re
import subprocess

import numpy as np


def write_ppm(path, img):
    h, w, _ = img.shape
    with open(path, "wb") as f:
        f.write(b"P6\n%d %d\n255\n" % (w, h))
        f.write(np.ascontiguousarray(img, dtype=np.uint8).tobytes())


def run(*cmd):
    subprocess.run(cmd, check=True)


def tiff_levels(path):
    """(width, height) of every directory of a TIFF, from tiffinfo."""
    out = subprocess.run(["tiffinfo", path], check=True, capture_output=True, text=True).stdout
    return [(int(a), int(b)) for a, b in re.findall(r"Image Width: (\d+) Image Length: (\d+)", out)]


def save_pyramid(src, out, mpp, compression, bigtiff=False):
    res = 1000.0 / mpp  # libvips wants pixels per millimetre
    opts = ["--tile", "--tile-width", "256", "--tile-height", "256", "--pyramid",
            "--compression", compression, "--xres", f"{res}", "--yres", f"{res}",
            "--resunit", "cm"]
    if compression == "jpeg":
        opts += ["--Q", "90"]
    if bigtiff:
        opts.append("--bigtiff")
    run("vips", "tiffsave", src, out, *opts)


def aperio_description(w, h, mpp, compression, name="eosin-synthetic"):
    """An Aperio ImageDescription: OpenSlide's aperio reader takes MPP and AppMag from it."""
    return (f"Aperio Image Library v12.0.15 \r\n{w}x{h} [0,0 {w}x{h}] "
            f"(256x256) {compression.upper()}/RGB|AppMag = {round(10 / mpp)}"
            f"|MPP = {mpp}|Filename = {name}|ScanScope ID = EOSIN")


def save_aperio(src, out, mpp, name):
    """A JPEG Aperio slide of image file `src` at `out` (via out.tmp, renamed
    when complete); returns its level-0 (width, height)."""
    tmp = out + ".tmp"
    save_pyramid(src, tmp, mpp, "jpeg", bigtiff=False)
    w, h = tiff_levels(tmp)[0]
    run("tiffset", "-s", "270", aperio_description(w, h, mpp, "jpeg", name), tmp)
    os.replace(tmp, out)
    return w, h


def ellipse_mask(n, cx, cy, rx, ry, angle):
    """Cells whose centre lies in the ellipse (grid units)."""
    yy, xx = np.mgrid[0:n, 0:n] + 0.5
    c, s = np.cos(angle), np.sin(angle)
    u = (xx - cx) * c + (yy - cy) * s
    v = -(xx - cx) * s + (yy - cy) * c
    return (u / rx) ** 2 + (v / ry) ** 2 <= 1
