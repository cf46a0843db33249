"""DesignBlocks -> CrossProducts: the additive sufficient statistics of Gaussian fits
(lmer); GamDesign -> CrossStats, the working cross products of a GAM (gam, bam)."""

from ._crossprod import (
    ClusterCrossProducts,
    CrossProducts,
    cluster_cross_products,
    cross_products,
    offset_cross_products,
    response_cross_products,
    term_z,
)
from ._gam import ChunkEngine, CrossStats, DiscreteEngine
from ._stream import StreamStats, stream_cross_products

__all__ = ["ChunkEngine", "ClusterCrossProducts", "CrossProducts", "CrossStats", "DiscreteEngine", "StreamStats",
           "cluster_cross_products", "cross_products", "offset_cross_products", "response_cross_products",
           "stream_cross_products", "term_z"]
