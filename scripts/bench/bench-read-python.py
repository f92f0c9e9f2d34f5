#!/usr/bin/python3
"""bench-read-python.py SLIDE [TILE] — the openslide-python peer of
bench-read: the same level-0 tiles (Eosin's plan with no tissue mask: a grid
at TILE stride from the bounds origin covering the bounds), read one by one
with OpenSlide.read_region. Prints one JSON line like bench-read."""
import json
import math
import resource
import sys
import time

import openslide


def main():
    path = sys.argv[1]
    tile = int(sys.argv[2]) if len(sys.argv) > 2 else 256
    s = openslide.OpenSlide(path)
    p = s.properties
    bx, by = int(p.get("openslide.bounds-x", 0)), int(p.get("openslide.bounds-y", 0))
    bw = int(p.get("openslide.bounds-width", s.dimensions[0]))
    bh = int(p.get("openslide.bounds-height", s.dimensions[1]))
    cols = 1 if bw <= tile else math.ceil((bw - tile) / tile) + 1
    rows = 1 if bh <= tile else math.ceil((bh - tile) / tile) + 1
    t0 = time.monotonic()
    for r in range(rows):
        for c in range(cols):
            s.read_region((bx + c * tile, by + r * tile), 0, (tile, tile))
    sec = time.monotonic() - t0
    n = rows * cols
    print(json.dumps({"mode": "openslide-python", "readers": 1, "tiles": n,
                      "seconds": round(sec, 3), "tiles_per_s": round(n / sec, 1),
                      "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}))


if __name__ == "__main__":
    main()
