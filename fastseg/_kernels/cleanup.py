"""Which background regions a label encloses, decided on the region adjacency graph.

Nodes are connected regions of one value (background regions included); a hole of label
``L`` is a connected set of regions other than ``L`` that touches no border of the volume.
Working on the graph instead of the voxels makes the test for every label cost
``O(regions + contacts)`` rather than a pass over the volume.
"""

from __future__ import annotations

import numpy as np

from fastseg._jit import kernel


@kernel()
def enclosing_labels(
    node_value: np.ndarray,
    node_size: np.ndarray,
    is_background: np.ndarray,
    on_border: np.ndarray,
    first_edge: np.ndarray,
    neighbour: np.ndarray,
    candidates: np.ndarray,
    first_node: np.ndarray,
    nodes_by_candidate: np.ndarray,
    choice: np.ndarray,
    best_size: np.ndarray,
    visited_by: np.ndarray,
    queue: np.ndarray,
) -> None:
    """Set ``choice`` of every node to the index in ``candidates`` of the label whose hole
    holds it, or leave it at -1.

    Only background nodes are assigned. A background node inside holes of several
    labels (a label nested in another's hole) goes to the label whose hole is smallest in
    voxels, the innermost one; equal sizes go to the earlier candidate.

    ``first_edge`` / ``neighbour`` is the graph in compressed rows: the neighbours of node
    ``n`` are ``neighbour[first_edge[n]:first_edge[n + 1]]``. The nodes of
    ``candidates[c]`` are ``nodes_by_candidate[first_node[c]:first_node[c + 1]]``.

    Every hole of a label touches one of its nodes, so the search for a label starts
    from their neighbours only, and a search stops as soon as it meets the border (or a
    region an earlier search of the same label found open): away from enclosures it
    visits a handful of nodes.

    The caller allocates the work arrays, one int64 entry per node each (numpy calls
    in a kernel cost compile time): ``choice`` filled with -1, ``best_size`` with the
    largest int64, ``visited_by`` (the number of the search that visited a node;
    searches are numbered across labels, so no reset is needed between labels) with 0,
    and ``queue``, uninitialised.
    """
    search = 0
    for c in range(candidates.size):
        enclosing = candidates[c]
        first_search_of_label = search + 1
        for k in range(first_node[c], first_node[c + 1]):
            node = nodes_by_candidate[k]
            for edge in range(first_edge[node], first_edge[node + 1]):
                seed = neighbour[edge]
                if node_value[seed] == enclosing or visited_by[seed] >= first_search_of_label:
                    continue
                search += 1
                visited_by[seed] = search
                queue[0] = seed
                head = 0
                tail = 1
                is_open = on_border[seed]
                size = 0
                while head < tail and not is_open:
                    current = queue[head]
                    head += 1
                    size += node_size[current]
                    for e in range(first_edge[current], first_edge[current + 1]):
                        other = neighbour[e]
                        if node_value[other] == enclosing or visited_by[other] == search:
                            continue
                        if visited_by[other] >= first_search_of_label or on_border[other]:
                            # Reached the border, directly or through an open region.
                            is_open = True
                            break
                        visited_by[other] = search
                        queue[tail] = other
                        tail += 1
                if is_open:
                    continue
                for i in range(tail):
                    member = queue[i]
                    if is_background[member] and size < best_size[member]:
                        best_size[member] = size
                        choice[member] = c
