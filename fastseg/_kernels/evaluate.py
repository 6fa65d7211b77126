"""Kernels of :mod:`fastseg.evaluate`: pair tables, surfaces and surface distances.

Views are C-contiguous 3-D arrays (1-D and 2-D maps get leading axes of size 1) whose
last axis is contiguous in memory; reference and prediction share one layout.

Surface distances are exact Euclidean distances between voxel (or surfel) centres,
found with a separable feature transform restricted to one class's bounding box: the
first two passes keep, per grid point, the nearest feature of its plane (an int32 index),
the last pass looks up only the grid points that are queries. Distances are computed
from the integer offsets to the winning feature, ``sqrt((d0 s0)^2 + (d1 s1)^2 +
(d2 s2)^2)`` in that order, as scipy's distance transform and a KD-tree compute them.
"""

from __future__ import annotations

import numpy as np

from fastseg._jit import kernel, run_chunks

_G1 = np.uint64(0x9E3779B97F4A7C15)
_G2 = np.uint64(0xC2B2AE3D27D4EB4F)
_BIG = np.iinfo(np.int64).max

# Columns of a pair's box: first index per view axis, then stop (exclusive) per axis.
N_BOX = 6


@kernel(helper=True)
def _pair_slot(
    keys_r: np.ndarray, keys_p: np.ndarray, used: np.ndarray, bits: int, r: np.uint64, p: np.uint64
) -> np.int64:
    mask = (np.int64(1) << bits) - 1
    h = (r * _G1) ^ (p * _G2)
    slot = np.int64((h * _G1) >> np.uint64(64 - bits))
    while used[slot] and (keys_r[slot] != r or keys_p[slot] != p):
        slot = (slot + 1) & mask
    return slot


@kernel()
def _pair_chunk(
    flat_r: np.ndarray,
    flat_p: np.ndarray,
    n1: int,
    bits: int,
    keys_r: np.ndarray,
    keys_p: np.ndarray,
    counts: np.ndarray,
    boxes: np.ndarray,
    used: np.ndarray,
    filled: np.ndarray,
    overflow: np.ndarray,
    c: int,
    chunks: int,
) -> None:
    rows, n2 = flat_r.shape
    limit = (1 << bits) // 2
    first, last = (c * rows) // chunks, ((c + 1) * rows) // chunks
    chunk_r = keys_r[c]
    chunk_p = keys_p[c]
    chunk_used = used[c]
    chunk_counts = counts[c]
    chunk_boxes = boxes[c]
    for row in range(first, last):
        if overflow[c]:
            break
        z = row // n1
        y = row % n1
        row_r = flat_r[row]
        row_p = flat_p[row]
        x = 0
        while x < n2:
            a = row_r[x]
            b = row_p[x]
            stop = x + 1
            while stop < n2 and row_r[stop] == a and row_p[stop] == b:
                stop += 1
            r = np.uint64(a)
            p = np.uint64(b)
            slot = _pair_slot(chunk_r, chunk_p, chunk_used, bits, r, p)
            box = chunk_boxes[slot]
            if not chunk_used[slot]:
                if filled[c] >= limit:
                    overflow[c] = True
                    break
                chunk_used[slot] = True
                chunk_r[slot] = r
                chunk_p[slot] = p
                filled[c] += 1
                box[0] = z
                box[1] = y
                box[2] = x
                box[3] = z + 1
                box[4] = y + 1
                box[5] = stop
            else:
                # Rows come in order, so z only grows within a chunk.
                box[1] = min(box[1], y)
                box[2] = min(box[2], x)
                box[3] = z + 1
                box[4] = max(box[4], y + 1)
                box[5] = max(box[5], stop)
            chunk_counts[slot] += stop - x
            x = stop


def pair_table(
    ref: np.ndarray, pred: np.ndarray, bits: int, chunks: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.bool_]:
    """Every (reference, prediction) value pair, its voxel count and bounding box.

    One walk over both maps, run by run (a run: both values constant). Returns unsorted
    ``(ref_value, pred_value, count, box)`` with one entry per chunk a pair occurs in,
    and an overflow flag: when a chunk meets more pairs than half its ``2**bits`` table
    holds the result is incomplete and the caller retries with more bits.
    """
    n0, n1, n2 = ref.shape
    rows = n0 * n1
    capacity = 1 << bits
    keys_r = np.zeros((chunks, capacity), np.uint64)
    keys_p = np.zeros((chunks, capacity), np.uint64)
    counts = np.zeros((chunks, capacity), np.int64)
    boxes = np.zeros((chunks, capacity, N_BOX), np.int64)
    used = np.zeros((chunks, capacity), np.bool_)
    filled = np.zeros(chunks, np.int64)
    overflow = np.zeros(chunks, np.bool_)
    run_chunks(
        _pair_chunk, chunks, ref.reshape(rows, n2), pred.reshape(rows, n2), n1, bits,
        keys_r, keys_p, counts, boxes, used, filled, overflow,
    )  # fmt: skip
    # Chunk by chunk, slot by slot, as the tables were filled.
    return keys_r[used], keys_p[used], counts[used], boxes[used], overflow.any()


@kernel()
def _crop_masks(
    ref: np.ndarray,
    pred: np.ndarray,
    in_ref: np.ndarray,
    in_pred: np.ndarray,
    start: np.ndarray,
    shape: np.ndarray,
    pad: np.ndarray,
    masks: np.ndarray,
) -> None:
    """Fill the zeros ``masks`` (the box ``start``, ``shape`` with a border of ``pad``
    per axis) inside the border; bit 0: the voxel belongs to the class in the
    reference, bit 1: in the prediction."""
    for i in range(shape[0]):
        for j in range(shape[1]):
            row_r = ref[start[0] + i, start[1] + j, start[2] : start[2] + shape[2]]
            row_p = pred[start[0] + i, start[1] + j, start[2] : start[2] + shape[2]]
            out = masks[i + pad[0], j + pad[1], pad[2] : pad[2] + shape[2]]
            for k in range(shape[2]):
                out[k] = np.uint8(in_ref[np.int64(row_r[k])]) | (
                    np.uint8(in_pred[np.int64(row_p[k])]) << np.uint8(1)
                )


@kernel()
def _voxel_edges(masks: np.ndarray, pad: np.ndarray) -> np.ndarray:
    """Edges as scipy's binary erosion XOR the mask finds them (MONAI): voxels of a mask
    with a face neighbour outside it, the crop's zero border counting as outside. Axes
    without a border (the leading axes of 1-D and 2-D maps) have no neighbours."""
    n0, n1, n2 = masks.shape
    edges = np.zeros((n0, n1, n2), np.uint8)
    full = np.uint8(3)
    for i in range(pad[0], n0 - pad[0]):
        for j in range(pad[1], n1 - pad[1]):
            row = masks[i, j]
            up = masks[i, j - 1] if pad[1] else row
            down = masks[i, j + 1] if pad[1] else row
            before = masks[i - 1, j] if pad[0] else row
            after = masks[i + 1, j] if pad[0] else row
            out = edges[i, j]
            for k in range(pad[2], n2 - pad[2]):
                m = row[k]
                if m == 0:
                    continue
                inside = m & row[k - 1] & row[k + 1] & up[k] & down[k] & before[k] & after[k]
                out[k] = m & (full ^ inside)
    return edges


@kernel()
def _surfel_edges(
    masks: np.ndarray, flat0: bool, code_of: np.ndarray, canonical_full: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Surfels as DeepMind's surface-distance finds them: the neighbourhood code of the
    2 x 2 x 2 voxels around each grid corner, an edge where the code is neither empty
    nor full. ``masks`` has a zero border on every axis but the first when ``flat0``
    (a 2-D map), where a corner sees one plane only. Grid point (i, j, k) sees the
    padded voxels (i + o0, j + o1, k + o2); ``code_of`` turns the canonical code (bit
    4 o0 + 2 o1 + o2) into DeepMind's. Returns the edge bits (1: reference, 2:
    prediction) and both maps' codes."""
    p0, p1, p2 = masks.shape
    g0 = p0 if flat0 else p0 - 1
    g1 = p1 - 1
    g2 = p2 - 1
    edges = np.zeros((g0, g1, g2), np.uint8)
    code_r = np.zeros((g0, g1, g2), np.uint8)
    code_p = np.zeros((g0, g1, g2), np.uint8)
    for i in range(g0):
        low = i
        high = i if flat0 else i + 1
        for j in range(g1):
            a0 = masks[low, j]
            a1 = masks[low, j + 1]
            b0 = masks[high, j]
            b1 = masks[high, j + 1]
            for k in range(g2):
                # Both maps at once: bit 0 of each voxel is the reference, bit 1 the
                # prediction; canonical bit 4 o0 + 2 o1 + o2.
                upper = (
                    np.uint32(b0[k]) | (np.uint32(b0[k + 1]) << 2)
                    | (np.uint32(b1[k]) << 4) | (np.uint32(b1[k + 1]) << 6)
                )  # fmt: skip
                if flat0:
                    lower = np.uint32(0)
                else:
                    lower = (
                        np.uint32(a0[k]) | (np.uint32(a0[k + 1]) << 2)
                        | (np.uint32(a1[k]) << 4) | (np.uint32(a1[k + 1]) << 6)
                    )  # fmt: skip
                # Deinterleave: even bits are the reference's corners, odd the prediction's.
                cr = 0
                cp = 0
                for corner in range(4):
                    cr |= ((lower >> (2 * corner)) & 1) << corner
                    cp |= ((lower >> (2 * corner + 1)) & 1) << corner
                    cr |= ((upper >> (2 * corner)) & 1) << (corner + 4)
                    cp |= ((upper >> (2 * corner + 1)) & 1) << (corner + 4)
                e = 0
                if cr != 0 and cr != canonical_full:
                    e |= 1
                if cp != 0 and cp != canonical_full:
                    e |= 2
                edges[i, j, k] = e
                code_r[i, j, k] = code_of[cr]
                code_p[i, j, k] = code_of[cp]
    return edges, code_r, code_p


@kernel(helper=True)
def _envelope(
    sites: np.ndarray,
    values: np.ndarray,
    n_sites: int,
    weight: float,
    n: int,
    winner: np.ndarray,
    v: np.ndarray,
    z: np.ndarray,
) -> None:
    """For every q in 0..n-1 the site p minimising ``weight * (q - p)^2 + values[p]``
    (Felzenszwalb and Huttenlocher's lower envelope of parabolas), into ``winner``;
    ``v`` and ``z`` are work space of ``n_sites`` and ``n_sites + 1`` entries."""
    k = 0
    v[0] = 0
    z[0] = -np.inf
    z[1] = np.inf
    for idx in range(1, n_sites):
        q = sites[idx]
        fq = values[idx] + weight * q * q
        while True:
            p = sites[v[k]]
            # Where the parabolas of q and of the envelope's last site p cross.
            s = (fq - (values[v[k]] + weight * p * p)) / (2.0 * weight * (q - p))
            if s > z[k]:
                break
            k -= 1  # z[0] is -inf, so k never drops below 0
        k += 1
        v[k] = idx
        z[k] = s
        z[k + 1] = np.inf
    k = 0
    for q in range(n):
        while z[k + 1] < q:
            k += 1
        winner[q] = sites[v[k]]


@kernel()
def _distances_to(
    edges: np.ndarray, feature_bit: int, query_bit: int, spacing: np.ndarray
) -> np.ndarray:
    """Distance from every grid point carrying ``query_bit`` to the nearest one carrying
    ``feature_bit``, in (j, k, i) order of the queries (column by column along the first
    axis); inf when there is no feature."""
    n0, n1, n2 = edges.shape
    n_queries = 0
    n_features = 0
    for i in range(n0):
        for j in range(n1):
            for k in range(n2):
                e = edges[i, j, k]
                if e & query_bit:
                    n_queries += 1
                if e & feature_bit:
                    n_features += 1
    out = np.empty(n_queries, np.float64)
    if n_queries == 0:
        return out
    if n_features == 0:
        out[:] = np.inf
        return out
    s0 = spacing[0]
    s1 = spacing[1]
    s2 = spacing[2]
    w1 = s1 * s1
    w0 = s0 * s0
    # nearest[i, j, k]: flat index y * n2 + x of the feature of plane i nearest to (j, k).
    nearest = np.full((n0, n1, n2), -1, np.int32)
    row_nearest = np.empty((n1, n2), np.int64)
    longest = max(n0, n1, n2)
    sites = np.empty(longest, np.int64)
    values = np.empty(longest, np.float64)
    winner = np.empty(longest, np.int64)
    v = np.empty(longest, np.int64)
    z = np.empty(longest + 1, np.float64)
    # Only columns (j, k) holding a query are read by the last pass; the second pass
    # skips every k whose columns hold none.
    wanted_k = np.zeros(n2, np.bool_)
    for i in range(n0):
        for j in range(n1):
            for k in range(n2):
                if edges[i, j, k] & query_bit:
                    wanted_k[k] = True
    for i in range(n0):
        any_feature = False
        for j in range(n1):
            last = -1
            for k in range(n2):
                if edges[i, j, k] & feature_bit:
                    last = k
                row_nearest[j, k] = last
            nxt = -1
            for k in range(n2 - 1, -1, -1):
                if edges[i, j, k] & feature_bit:
                    nxt = k
                prev = row_nearest[j, k]
                if prev < 0 or (nxt >= 0 and nxt - k < k - prev):
                    row_nearest[j, k] = nxt
            if row_nearest[j, 0] >= 0:
                any_feature = True
        if not any_feature:
            continue
        for k in range(n2):
            if not wanted_k[k]:
                continue
            n_sites = 0
            for j in range(n1):
                f = row_nearest[j, k]
                if f >= 0:
                    sites[n_sites] = j
                    d = (k - f) * s2
                    values[n_sites] = d * d
                    n_sites += 1
            _envelope(sites, values, n_sites, w1, n1, winner, v, z)
            for j in range(n1):
                y = winner[j]
                nearest[i, j, k] = y * n2 + row_nearest[y, k]
    # The last pass runs along axis 0; slabs of fixed j are copied into contiguous
    # (k, i) buffers first, so that each column is read from consecutive memory.
    slab = np.empty((n2, n0), np.int32)
    slab_queries = np.empty((n2, n0), np.bool_)
    t = 0
    for j in range(n1):
        has_query = False
        for i in range(n0):
            for k in range(n2):
                slab[k, i] = nearest[i, j, k]
                q = (edges[i, j, k] & query_bit) != 0
                slab_queries[k, i] = q
                has_query |= q
        if not has_query:
            continue
        for k in range(n2):
            column = slab[k]
            queries = slab_queries[k]
            has_query = False
            for i in range(n0):
                if queries[i]:
                    has_query = True
                    break
            if not has_query:
                continue
            n_sites = 0
            for i in range(n0):
                f = column[i]
                if f >= 0:
                    sites[n_sites] = i
                    dy = (j - f // n2) * s1
                    dx = (k - f % n2) * s2
                    values[n_sites] = dy * dy + dx * dx
                    n_sites += 1
            _envelope(sites, values, n_sites, w0, n0, winner, v, z)
            for i in range(n0):
                if queries[i]:
                    zz = winner[i]
                    f = column[zz]
                    dz = (i - zz) * s0
                    dy = (j - f // n2) * s1
                    dx = (k - f % n2) * s2
                    out[t] = np.sqrt(dz * dz + dy * dy + dx * dx)
                    t += 1
    return out


@kernel()
def _surfel_areas(
    edges: np.ndarray,
    code_r: np.ndarray,
    code_p: np.ndarray,
    code_area: np.ndarray,
    n_pred: int,
    n_ref: int,
) -> tuple[np.ndarray, np.ndarray]:
    """The area of every prediction surfel and of every reference surfel, in the order
    of :func:`_distances_to`."""
    area_p = np.empty(n_pred, np.float64)
    area_r = np.empty(n_ref, np.float64)
    a = 0
    b = 0
    n0, n1, n2 = edges.shape
    for j in range(n1):
        for k in range(n2):
            for i in range(n0):
                e = edges[i, j, k]
                if e & 2:
                    area_p[a] = code_area[code_p[i, j, k]]
                    a += 1
                if e & 1:
                    area_r[b] = code_area[code_r[i, j, k]]
                    b += 1
    return area_p, area_r


def class_surfaces(
    ref: np.ndarray,
    pred: np.ndarray,
    in_ref: np.ndarray,
    in_pred: np.ndarray,
    start: np.ndarray,
    shape: np.ndarray,
    pad: np.ndarray,
    spacing: np.ndarray,
    surfels: bool,
    code_of: np.ndarray,
    canonical_full: int,
    code_area: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Surface distances of one class inside its box (``start``, ``shape``).

    Returns ``(pred_to_ref, ref_to_pred, pred_areas, ref_areas)``: the distance from
    every prediction edge to the reference's edges and the reverse, in (j, k, i) order
    of the edges, and (with ``surfels``) each surfel's area from ``code_area``; without
    ``surfels`` edges are voxels and the area arrays are empty.
    """
    # Each step is a kernel of its own, called from here: numba compiles a kernel
    # together with everything it calls, so one kernel calling the others would compile
    # the surface code once more per label dtype (only the crop depends on it), and
    # both edge kernels where a call needs one.
    masks = np.zeros(tuple((shape + 2 * pad).tolist()), np.uint8)
    _crop_masks(ref, pred, in_ref, in_pred, start, shape, pad, masks)
    if surfels:
        edges, code_r, code_p = _surfel_edges(masks, bool(pad[0] == 0), code_of, canonical_full)
    else:
        edges = _voxel_edges(masks, pad)
    pred_to_ref = _distances_to(edges, 1, 2, spacing)
    ref_to_pred = _distances_to(edges, 2, 1, spacing)
    if not surfels:
        return pred_to_ref, ref_to_pred, np.empty(0, np.float64), np.empty(0, np.float64)
    area_p, area_r = _surfel_areas(
        edges, code_r, code_p, code_area, pred_to_ref.size, ref_to_pred.size
    )
    return pred_to_ref, ref_to_pred, area_p, area_r


@kernel()
def greedy_match(
    order: np.ndarray, ref_index: np.ndarray, pred_index: np.ndarray, n_ref: int, n_pred: int
) -> np.ndarray:
    """One-to-one matching: walk the candidate pairs in ``order`` (best first) and keep a
    pair when neither side is matched yet. Returns a flag per candidate."""
    ref_taken = np.zeros(n_ref, np.bool_)
    pred_taken = np.zeros(n_pred, np.bool_)
    matched = np.zeros(ref_index.size, np.bool_)
    for t in range(order.size):
        c = order[t]
        r = ref_index[c]
        p = pred_index[c]
        if ref_taken[r] or pred_taken[p]:
            continue
        ref_taken[r] = True
        pred_taken[p] = True
        matched[c] = True
    return matched
