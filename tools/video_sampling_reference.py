#!/usr/bin/python3
"""Expected frame sampling of the released MiniCPM-V `encode_video` functions, for
tests/video/test_sampling.cpp. Writes tests/data/video/sampling.json.

Run with Debian's python3 (python3-numpy): /usr/bin/python3 tools/video_sampling_reference.py
scipy is optional: when it is importable every 4.5 case is also checked against cKDTree, the
nearest-neighbour search the released code uses.

The two functions below are the released ones with decord replaced by (frame_count, fps), the
numbers decord's VideoReader gives (len(vr), vr.get_avg_fps()):
- 2.6 (docs/minicpm_v2dot6_en.md "Video understanding", MAX_NUM_FRAMES=64, 1 fps);
- 4.5 (model card encode_video: MAX_NUM_FRAMES=180, MAX_NUM_PACKING=3, TIME_SCALE=0.1).
Where the released code raises (a range() step of 0, uniform_sample(..., 0) dividing by zero)
the case records the exception's name and expects no frames.
"""
import bisect
import json
import math
import os
import sys

import numpy as np

TIME_SCALE = 0.1


def uniform_sample(l, n):
    gap = len(l) / n
    idxs = [int(i * gap + gap / 2) for i in range(n)]
    return [l[i] for i in idxs]


# The released code finds the nearest 0.1 s step with scipy's cKDTree (1-D, leafsize 16,
# balanced: each inner node splits at the median found by libstdc++'s std::nth_element). Its
# result is the nearest point by squared distance; on an EXACT tie (a frame time halfway between
# two steps, e.g. 1.05 s at 20, 40 or 60 fps) it is whichever tied point the search meets
# first: the search walks the leaf holding the query first, in the leaf's index order, and a
# later point replaces the best only when strictly closer. That order is the permutation
# nth_element leaves behind, so the lower step wins some ties and the upper one others (about
# 2:1 here). Reproduced by building the same tree: nth_element below is libstdc++'s
# __introselect (bits/stl_algo.h), step for step; daemon/video/sampling.cpp calls the real one.
def nth_element(a, first, nth, last, key):
    if first == last or nth == last:
        return
    depth = 2 * ((last - first).bit_length() - 1)
    while last - first > 3:
        if depth == 0:
            raise NotImplementedError("heap_select fallback of introselect")
        depth -= 1
        mid = first + (last - first) // 2
        x, y, z = first + 1, mid, last - 1  # __move_median_to_first(first, x, y, z)
        kx, ky, kz = key[a[x]], key[a[y]], key[a[z]]
        if kx < ky:
            m = y if ky < kz else (z if kx < kz else x)
        else:
            m = x if kx < kz else (z if ky < kz else y)
        a[first], a[m] = a[m], a[first]
        pivot = key[a[first]]
        lo, hi = first + 1, last  # __unguarded_partition(first + 1, last, first)
        while True:
            while key[a[lo]] < pivot:
                lo += 1
            hi -= 1
            while pivot < key[a[hi]]:
                hi -= 1
            if not lo < hi:
                break
            a[lo], a[hi] = a[hi], a[lo]
            lo += 1
        cut = lo
        if cut <= nth:
            first = cut
        else:
            last = cut
    a[first:last] = sorted(a[first:last], key=lambda i: key[i])  # insertion sort, distinct keys


class KDTree1D:
    LEAFSIZE = 16

    def __init__(self, data):
        self.data = [float(v) for v in data]
        self.idx = list(range(len(self.data)))
        self.nodes = []  # (split, less, greater) or (None, start, end)
        self._build(0, len(self.data))

    def _build(self, start, end):
        me = len(self.nodes)
        self.nodes.append(None)
        if end - start <= self.LEAFSIZE:
            self.nodes[me] = (None, start, end)
            return me
        mid = start + (end - start) // 2
        nth_element(self.idx, start, mid, end, self.data)
        split = self.data[self.idx[mid]]
        # std::partition of [start, mid) on "< split" moves nothing: the values are distinct.
        assert all(self.data[i] < split for i in self.idx[start:mid])
        less = self._build(start, mid)
        greater = self._build(mid, end)
        self.nodes[me] = (split, less, greater)
        return me

    def query(self, x):
        node = self.nodes[0]
        while node[0] is not None:
            node = self.nodes[node[1] if x < node[0] else node[2]]
        best, best_d = -1, float("inf")
        for i in self.idx[node[1]:node[2]]:
            d = (self.data[i] - x) ** 2
            if d < best_d:
                best, best_d = i, d
        # A point outside that leaf replaces its best only when strictly closer; in 1-D only the
        # two steps around x can be (the data are sorted).
        j = bisect.bisect_right(self.data, x) - 1
        for i in (j, j + 1):
            if 0 <= i < len(self.data):
                d = (self.data[i] - x) ** 2
                if d < best_d:
                    best, best_d = i, d
        return best


def map_to_nearest_scale(values, scale):
    tree = KDTree1D(scale)
    out = np.array([tree.query(float(v)) for v in values], dtype=np.int64)
    return np.asarray(scale)[out], out


def v26(frame_count, fps, choose_fps=1, max_frames=64):
    sample_fps = round(fps / choose_fps)
    frame_idx = [i for i in range(0, frame_count, sample_fps)]
    if len(frame_idx) > max_frames:
        frame_idx = uniform_sample(frame_idx, max_frames)
    return {"indices": frame_idx}


def v45(frame_count, fps, choose_fps=3, max_frames=180, max_packing=3, force_packing=None):
    video_duration = frame_count / fps
    if choose_fps * int(video_duration) <= max_frames:
        packing_nums = 1
        choose_frames = round(min(choose_fps, round(fps)) * min(max_frames, video_duration))
    else:
        packing_nums = math.ceil(video_duration * choose_fps / max_frames)
        if packing_nums <= max_packing:
            choose_frames = round(video_duration * choose_fps)
        else:
            choose_frames = round(max_frames * max_packing)
            packing_nums = max_packing

    frame_idx = [i for i in range(0, frame_count)]
    frame_idx = np.array(uniform_sample(frame_idx, choose_frames))
    if force_packing:
        packing_nums = min(force_packing, max_packing)

    frame_idx_ts = frame_idx / fps
    scale = np.arange(0, video_duration, TIME_SCALE)
    nearest, nearest_idx = map_to_nearest_scale(frame_idx_ts, scale)
    frame_ts_id = (nearest / TIME_SCALE).astype(np.int32)
    check_kdtree(frame_idx_ts, scale, nearest_idx)
    return {"indices": [int(i) for i in frame_idx], "temporal_ids": [int(t) for t in frame_ts_id],
            "packing": packing_nums}


KDTREE_CHECKS = {"points": 0, "ties": 0}


def check_kdtree(values, scale, nearest_idx):
    try:
        from scipy.spatial import cKDTree
    except ImportError:
        return
    _, idx = cKDTree(np.asarray(scale)[:, None]).query(np.asarray(values)[:, None])
    if not np.array_equal(idx, nearest_idx):
        bad = np.nonzero(idx != nearest_idx)[0][0]
        sys.exit(f"cKDTree disagrees at value {values[bad]!r}: {idx[bad]} vs {nearest_idx[bad]}")
    KDTREE_CHECKS["points"] += len(values)
    for v, i in zip(values, idx):  # count the exact ties the rule decided
        d = (scale - v) ** 2
        if np.count_nonzero(d == d[i]) > 1:
            KDTREE_CHECKS["ties"] += 1


def case(model, frame_count, num, den, **opts):
    fps = num / den
    c = {"model": model, "frame_count": frame_count, "fps_num": num, "fps_den": den, "fps": fps}
    c.update(opts)
    fn = v26 if model == "v26" else v45
    try:
        c.update(fn(frame_count, fps, **opts))
        c["python_error"] = None
    except (ValueError, ZeroDivisionError) as e:
        c.update({"indices": [], "python_error": type(e).__name__})
        if model == "v45":
            c.update({"temporal_ids": [], "packing": 1})
    return c


def main():
    rates = [(24000, 1001), (25, 1), (30000, 1001), (30, 1), (60, 1), (1, 1), (5, 2)]
    seconds = [1, 10, 64, 65, 100, 200, 1000, 3 * 3600]
    cases = []
    for num, den in rates:
        for s in seconds:
            n = s * num // den
            for extra in (0, 1):  # a frame more: durations just past the round numbers
                cases.append(case("v26", n + extra, num, den))
                cases.append(case("v45", n + extra, num, den))
    # Other options on a subset of lengths.
    for num, den in [(30000, 1001), (25, 1), (60, 1), (5, 2)]:
        for s in [10, 65, 200, 1000]:
            n = s * num // den
            cases.append(case("v26", n, num, den, choose_fps=2, max_frames=64))
            cases.append(case("v26", n, num, den, choose_fps=1, max_frames=32))
            cases.append(case("v45", n, num, den, choose_fps=5))
            cases.append(case("v45", n, num, den, choose_fps=10, max_packing=6))
            cases.append(case("v45", n, num, den, force_packing=2))
            cases.append(case("v45", n, num, den, force_packing=6))
            cases.append(case("v45", n, num, den, choose_fps=3, max_frames=64, max_packing=6))
    # Ties between two 0.1 s steps (frame times at x.x5 s: 20, 40, 60 fps), short clips,
    # clips with fewer frames than sampled (repeated indices), rates that round to 0, no frames.
    for num, den in [(20, 1), (40, 1), (60, 1), (10, 1), (2, 1)]:
        for n in [7, 60, 61, 119, 601, 2000]:
            cases.append(case("v45", n, num, den))
            cases.append(case("v45", n, num, den, choose_fps=10, max_packing=6))
    for n in [0, 1, 2, 3, 5, 29, 30, 31]:
        cases.append(case("v26", n, 30, 1))
        cases.append(case("v45", n, 30, 1))
    # 0.4 fps rounds to 0, 0.5 to 0 too (half to even); 1/100000 fps: a day-long 1-frame clip.
    for num, den, lengths in [(2, 5, [1, 5, 40]), (1, 2, [1, 5, 40]), (3, 5, [1, 5, 40]), (1, 100000, [1])]:
        for n in lengths:
            cases.append(case("v26", n, num, den))
            cases.append(case("v45", n, num, den))
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "video", "sampling.json")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as f:
        json.dump({"generator": "tools/video_sampling_reference.py", "numpy": np.__version__,
                   "cases": cases}, f, separators=(",", ":"))
        f.write("\n")
    print(f"{len(cases)} cases -> {os.path.normpath(out)}; cKDTree checked {KDTREE_CHECKS['points']} points, "
          f"{KDTREE_CHECKS['ties']} exact ties")


if __name__ == "__main__":
    main()
