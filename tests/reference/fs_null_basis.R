## mgcv's "fs" smooth with the null-space basis fixed by the function space, as pymlm does.
##
## Source this file (it defines functions only). s(x, g, bs = "fsnull") is
## mgcv 1.8-41's own "fs" constructor (smooth.construct.fs.smooth.spec, then
## nat.param(type = 1)); only afterwards are the null-space columns of its
## base basis (and the matching columns of P) rotated within the null space:
## the reference functions 1, x, x^2, ... of the centred covariate are
## projected onto that space and orthonormalized in the data inner product
## (Gram-Schmidt, each direction signed to correlate positively with its
## reference function). The penalties (one per null-space column), the
## prediction method and the fitting are mgcv's, unchanged. Without the
## rotation the null-space basis is whatever orthonormal rotation LAPACK
## returns for the eigenvalue 0 of multiplicity 2, and the fit moves with it.

fs_gs_rotation <- function(C, tol = 1e-8) {
  ## the rotation W (M x M) with N W the Gram-Schmidt basis of the references,
  ## C[, j] the coordinates of reference j in an orthonormal null basis N
  M <- nrow(C)
  cand <- cbind(C, diag(M))
  W <- matrix(0, M, M)
  got <- 0
  for (j in seq_len(ncol(cand))) {
    if (got == M) break
    cj <- cand[, j]
    v <- cj
    if (got > 0) {
      Wg <- W[, seq_len(got), drop = FALSE]
      v <- v - Wg %*% crossprod(Wg, v)
      v <- v - Wg %*% crossprod(Wg, v)
    }
    nv <- sqrt(sum(v^2))
    if (nv > tol * max(sqrt(sum(cj^2)), .Machine$double.xmin)) {
      got <- got + 1
      W[, got] <- v / nv
    }
  }
  W
}

smooth.construct.fsnull.smooth.spec <- function(object, data, knots) {
  class(object) <- "fs.smooth.spec"
  sm <- smooth.construct(object, data, knots)
  if (!inherits(sm, "fs.interaction")) return(sm)
  if (length(sm$base$term) != 1) stop("fsnull: one metric covariate only")
  if (!is.null(sm$margin)) stop("fsnull: not for discretized fits")
  r <- sm$base$rank
  kb <- ncol(sm$Xb)
  if (r >= kb) return(sm)
  ind <- (r + 1):kb
  M <- length(ind)
  x <- data[[sm$base$term]]
  xc <- x - mean(x)
  ## monomials of degree < q, with q the smallest giving more than M of them
  Fr <- outer(xc, 0:M, "^")
  Xn <- sm$Xb[, ind, drop = FALSE]
  ## nat.param's null columns are orthogonal with equal norms: an orthonormal basis up to scale
  C <- crossprod(Xn, Fr) / sqrt(sum(Xn[, 1]^2))
  W <- fs_gs_rotation(C)
  sm$Xb[, ind] <- Xn %*% W
  sm$P[, ind] <- sm$P[, ind, drop = FALSE] %*% W
  nf <- length(sm$flev)
  cols <- seq_len(kb)
  for (i in seq_len(nf)) {
    sm$X[, cols] <- sm$Xb * as.numeric(sm$fac == sm$flev[i])
    cols <- cols + kb
  }
  sm
}

## The formula with every bs = "fs" term going through the fixed null space
fs_fixed_formula <- function(formula) {
  txt <- paste(deparse(formula), collapse = "")
  as.formula(gsub("bs = \"fs\"", "bs = \"fsnull\"", txt, fixed = TRUE), env = globalenv())
}
