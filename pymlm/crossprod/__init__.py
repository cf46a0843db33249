"""DesignBlocks -> CrossProducts: the additive sufficient statistics of Gaussian fits."""

from ._crossprod import (
    ClusterCrossProducts,
    CrossProducts,
    cluster_cross_products,
    cross_products,
    offset_cross_products,
    response_cross_products,
    term_z,
)
from ._stream import StreamStats, stream_cross_products

__all__ = ["ClusterCrossProducts", "CrossProducts", "cluster_cross_products", "cross_products",
           "offset_cross_products", "response_cross_products", "StreamStats", "stream_cross_products", "term_z"]
