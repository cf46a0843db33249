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

__all__ = ["ClusterCrossProducts", "CrossProducts", "cluster_cross_products", "cross_products",
           "offset_cross_products", "response_cross_products", "term_z"]
