"""DesignBlocks -> CrossProducts: the additive sufficient statistics of Gaussian fits."""

from ._crossprod import CrossProducts, cross_products, term_z

__all__ = ["CrossProducts", "cross_products", "term_z"]
