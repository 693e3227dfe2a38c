"""Clustering support: the sparse k-reciprocal encoding and Jaccard distance (re-ranking now, DBSCAN later)."""
from .kreciprocal import (Neighbours, expanded_reciprocal_pairs, jaccard_distance, k_reciprocal_encoding,
                          nearest_neighbours, pair_similarity, re_ranking, reciprocal_mask)

__all__ = ["Neighbours", "expanded_reciprocal_pairs", "jaccard_distance", "k_reciprocal_encoding",
           "nearest_neighbours", "pair_similarity", "re_ranking", "reciprocal_mask"]
