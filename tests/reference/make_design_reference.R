## lme4's designs for the formula cases of tests/design/test_reference_designs.py.
##
## Run from the project root:  Rscript tests/reference/make_design_reference.R
## Writes tests/reference/design_cases_data.csv (the data, generated here) and
## tests/reference/design_cases.json (lme4's lFormula / glFormula output per
## formula). The data are read back from the CSV before any design is built,
## so R and the tests see exactly the same numbers.

suppressPackageStartupMessages({
  library(lme4)
  library(jsonlite)
})

out_dir <- "tests/reference"
csv_path <- file.path(out_dir, "design_cases_data.csv")
json_path <- file.path(out_dir, "design_cases.json")

## ---- data -------------------------------------------------------------
set.seed(20240611)
n <- 96
g_values <- c(3L, 7L, 10L, 25L, 100L, 2L, 11L, 64L)  # numeric order differs from string order
h_values <- c("kiwi", "fig", "plum", "apple", "lime", "date",
              "pear", "yuzu", "nut", "cherry", "melon", "grape")
g <- rep(g_values, each = n / length(g_values))
h <- rep(h_values, each = 2, times = n / (2 * length(h_values)))  # partly crossed with g
site <- rep(c("D", "A", "C", "B"), each = n / 4)
unit <- rep(rep(c("u1", "u2", "u3"), each = 8), times = 4)  # labels reused across sites
x <- round(rnorm(n), 6)
z <- round(runif(n, 0.5, 3), 6)
f <- sample(c("beta", "alpha", "gamma"), n, replace = TRUE)
o <- sample(c("low", "med", "high", "top"), n, replace = TRUE)
b <- sample(5:20, n, replace = TRUE)
a <- rbinom(n, b, 0.4)
w <- round(runif(n, 0.5, 2), 6)
y <- round(1 + 0.5 * x + rnorm(n), 6)
xm <- x
xm[c(4, 17, 55)] <- NA
fm <- f
fm[c(17, 30, 81)] <- NA
## a response that is not numeric, for the error tests
ychr <- sample(c("yes", "no"), n, replace = TRUE)
flag <- x > 0  # logical: a factor with levels FALSE, TRUE to R's model.matrix
write.csv(data.frame(y, x, z, f, o, g, h, site, unit, a, b, w, xm, fm, ychr, flag),
          csv_path, row.names = FALSE, na = "")

d <- read.csv(csv_path, stringsAsFactors = FALSE, na.strings = "")
o_levels <- c("low", "med", "high", "top")
d$o <- factor(d$o, levels = o_levels, ordered = TRUE)
d$o2 <- factor(ifelse(d$z > 1.5, "hi", "lo"), levels = c("lo", "hi"), ordered = TRUE)
stopifnot(is.logical(d$flag), is.integer(d$g), is.character(d$h), is.character(d$f))

## ---- cases --------------------------------------------------------------
cases <- list(
  list(case = "slope_int_group", formula = "y ~ x + (1 + x | g)"),
  list(case = "slope_implicit", formula = "y ~ x + (x | h)"),
  list(case = "slope_no_int_0", formula = "y ~ x + (0 + x | g)"),
  list(case = "slope_no_int_m1", formula = "y ~ x + (-1 + x | g)"),
  list(case = "double_bar", formula = "y ~ x + (x || g)"),
  list(case = "double_bar_two", formula = "y ~ x + (x + z || h)"),
  list(case = "double_bar_factor", formula = "y ~ x + (f || g)"),
  list(case = "nested", formula = "y ~ 1 + (1 | site/unit)"),
  list(case = "interaction_group", formula = "y ~ 1 + (1 | site:unit)"),
  list(case = "crossed", formula = "y ~ x + (1 | g) + (1 | h)"),
  list(case = "crossed_three", formula = "y ~ x + (1 | g) + (x | site) + (1 | h)"),
  list(case = "nested_and_slope", formula = "y ~ x + (1 | site/unit) + (x | g)"),
  list(case = "factor_lhs", formula = "y ~ x + (0 + f | g)"),
  list(case = "ordered_lhs", formula = "y ~ x + (o | h)"),
  list(case = "int_by_str_group", formula = "y ~ x + (1 | g:h)"),
  list(case = "contrasts", formula = "y ~ f + o + (1 | g)"),
  list(case = "no_intercept_factor", formula = "y ~ 0 + f + x + (1 | g)"),
  list(case = "interactions", formula = "y ~ x * f + o:z + (1 | h)"),
  list(case = "factor_by_numeric", formula = "y ~ f:x + (1 | g)"),
  list(case = "crossing_power", formula = "y ~ (x + f + z)^2 + (1 | g)"),
  list(case = "transforms", formula = "y ~ I(x^2) + scale(x) + log(z) + I(z^-1) + (1 | g)"),
  list(case = "offset", formula = "y ~ x + offset(log(z)) + (1 | g)"),
  list(case = "weights", formula = "y ~ x + (1 | g)", weights = "w"),
  list(case = "missing", formula = "y ~ xm + fm + (1 | h)"),
  list(case = "ties_reversed", formula = "y ~ x + (1 | g) + (1 | site:unit) + (1 | h)"),
  list(case = "double_bar_crossed", formula = "y ~ x + (x || g) + (1 | h)"),
  list(case = "nested_three", formula = "y ~ x + (1 | site/unit/g)"),
  list(case = "nested_paren", formula = "y ~ x + (1 | site/(unit:g))"),
  list(case = "interaction_three", formula = "y ~ x + (1 | site:unit:g)"),
  list(case = "term_var_order", formula = "y ~ x:f + f + (1 | g)"),
  list(case = "term_var_order2", formula = "y ~ f + x:f + (1 | g)"),
  list(case = "ordered_by_factor", formula = "y ~ f * o + (1 | g)"),
  list(case = "ordered_by_numeric", formula = "y ~ o * x + (1 | g)"),
  list(case = "ordered_two_levels", formula = "y ~ o2 + (1 | g)"),
  list(case = "factor_by_factor", formula = "y ~ o:f + x + (1 | g)"),
  list(case = "three_way_numeric", formula = "y ~ x:z:f + (1 | g)"),
  list(case = "factor_call", formula = "y ~ factor(g) + (1 | h)"),
  list(case = "as_factor_call", formula = "y ~ x + as.factor(g):x + (1 | h)"),
  list(case = "poly", formula = "y ~ poly(x, 2) + (1 | g)"),
  list(case = "logical", formula = "y ~ flag + (1 | g) + (1 | flag)"),
  list(case = "logical_I", formula = "y ~ I(x > 0) + (1 | g)"),
  list(case = "transforms_lhs", formula = "y ~ x + (log(z) + I(x^2) | site)"),
  list(case = "scale_lhs", formula = "y ~ x + (scale(x) | g)"),
  list(case = "ordered_lhs_no_int", formula = "y ~ x + (0 + o | site)"),
  list(case = "response_transform", formula = "log(z) ~ x - 1 + (1 | g)"),
  list(case = "offset_missing", formula = "y ~ x + offset(xm) + (1 | g)"),
  list(case = "interaction_lhs", formula = "y ~ x + (x * f | site)"),
  list(case = "double_bar_interaction", formula = "y ~ x + (x * f || site)"),
  list(case = "offset_argument", formula = "y ~ x + (1 | g)", offset = "z"),
  list(case = "offset_both", formula = "y ~ x + offset(log(z)) + (1 | g)", offset = "x"),
  list(case = "missing_group", formula = "y ~ x + (1 | fm)"),
  list(case = "missing_scale", formula = "y ~ scale(x) + poly(z, 2) + fm + (1 | g)"),
  list(case = "double_bar_nested", formula = "y ~ x + (x * f || site/unit)"),
  list(case = "ties_across_bars", formula = "y ~ 1 + (x | h) + (log(z) || site/unit) + (log(z) | unit)"),
  list(case = "transformed_response_offset", formula = "scale(y) ~ x + offset(scale(z)) + fm + (1 | g)"),
  list(case = "cbind_binomial", formula = "cbind(a, b - a) ~ x + f + (1 | g)", family = "binomial")
)

## Doubles with 17 significant digits, so that they read back bit for bit
## (toJSON itself stops at 15); written verbatim into the JSON.
num <- function(v) {
  v <- unname(as.numeric(v))
  stopifnot(all(is.finite(v)))
  structure(paste0("[", paste(sprintf("%.17g", v), collapse = ","), "]"), class = "json")
}
lower_json <- function(v) lapply(v, function(t) if (is.infinite(t)) "-Inf" else t)

run_case <- function(cs) {
  form <- as.formula(cs$formula)
  args <- list(formula = form, data = d)
  if (!is.null(cs$weights)) args$weights <- d[[cs$weights]]
  if (!is.null(cs$offset)) args$offset <- d[[cs$offset]]
  if (is.null(cs$family)) {
    lf <- do.call(lFormula, args)
  } else {
    args$family <- get(cs$family)
    lf <- do.call(glFormula, args)
  }
  X <- lf$X
  Z <- as(t(lf$reTrms$Zt), "TsparseMatrix")
  flist <- lf$reTrms$flist
  terms <- lf$reTrms$cnms
  fr <- lf$fr
  resp <- model.response(fr)
  off <- model.offset(fr)
  wts <- model.weights(fr)
  kept <- as.integer(rownames(fr))  # 1-based rows of d that survive NA removal
  list(
    case = cs$case,
    formula = cs$formula,
    family = if (is.null(cs$family)) NULL else cs$family,
    weights = if (is.null(cs$weights)) NULL else cs$weights,
    offset_argument = if (is.null(cs$offset)) NULL else cs$offset,
    n = nrow(X),
    n_dropped = nrow(d) - nrow(X),
    kept_rows = kept - 1L,
    X_colnames = colnames(X),
    dropped_columns = as.list(names(attr(X, "col.dropped"))),  # lme4's rank-deficiency drops
    X_dim = dim(X),
    X = unname(lapply(seq_len(ncol(X)), function(j) num(X[, j]))),  # column by column
    Z_dim = dim(Z),
    Z_nnz = length(Z@x),
    Z_i = Z@i, Z_j = Z@j, Z_x = num(Z@x),  # 0-based triplets
    theta = num(lf$reTrms$theta),
    lower = lower_json(lf$reTrms$lower),
    term_groups = names(terms),
    cnms = unname(lapply(terms, as.list)),
    term_nlevels = num(diff(lf$reTrms$Gp) / lengths(terms)),
    flist_names = names(flist),
    nlevels = num(vapply(flist, nlevels, 1L)),
    levels = unname(lapply(flist, function(ff) as.list(levels(ff)))),
    Gp = num(lf$reTrms$Gp),
    response = if (is.matrix(resp)) unname(lapply(seq_len(ncol(resp)), function(j) num(resp[, j]))) else num(resp),
    offset = if (is.null(off)) NULL else num(off),
    prior_weights = if (is.null(wts)) NULL else num(wts)
  )
}

## lme4's own messages for the bad-input cases (for reference only).
err_msg <- function(expr) tryCatch({ force(expr); NA_character_ }, error = function(e) conditionMessage(e))
d_obs <- d
d_obs$obs <- seq_len(nrow(d))
d_obs$pair <- (seq_len(nrow(d)) + 1L) %/% 2L
d_one <- d
d_one$one <- "k"
lme4_errors <- list(
  one_level = err_msg(lFormula(y ~ x + (1 | one), data = d_one)),
  levels_equal_rows = err_msg(lFormula(y ~ x + (1 | obs), data = d_obs)),
  too_many_re = err_msg(lFormula(y ~ x + (x | pair), data = d_obs))
)

## R's term expansion (terms.formula) on right-hand sides alone.
term_formulas <- c(
  "~ a + b", "~ a * b", "~ a * b * c", "~ (a + b + c)^2", "~ (a + b + c)^3", "~ a / b",
  "~ (a + b) / c", "~ a %in% b", "~ a:b + b:a", "~ b:a + a:c + c:b:a + b", "~ a * b - a",
  "~ a * b - a:b", "~ 0 + a", "~ -1 + a", "~ a - 1", "~ a + 0", "~ a - 1 + 1", "~ a - 0",
  "~ log(z) + I(x^2) + log(z):a", "~ (a + b)^2 - 1", "~ a:b:c + a", "~ a * (b + c)",
  "~ a / (b + c)", "~ a + a + a:a", "~ poly(x, 2) * a", "~ 1", "~ 0",
  "~ 1 * x", "~ x * 1", "~ 1 / x", "~ (a - a) * b", "~ -a * b", "~ exp(x/10) + x %in% a"
)
term_cases <- lapply(term_formulas, function(f) {
  tt <- terms(as.formula(f))
  list(formula = f, labels = as.list(attr(tt, "term.labels")),
       intercept = as.logical(attr(tt, "intercept")))
})

## R's contr.poly for 2..8 levels (rows = levels).
poly_contrasts <- lapply(2:8, function(k) unname(lapply(seq_len(k - 1), function(j) num(contr.poly(k)[, j]))))

## Columns lme4 keeps in rank-deficient matrices (chkRank.drop.cols: qr(X, tol = 1e-7)).
rank_cases <- local({
  set.seed(7)
  u <- rnorm(20); v <- rnorm(20); w <- rnorm(20)
  mats <- list(
    dup = cbind(1, u, u, v),
    combo = cbind(1, u, v, u + 2 * v, w),
    zero = cbind(1, 0, u),
    const = cbind(1, u, 3),
    nearly = cbind(1, u, u + 1e-9 * v, v),
    tiny_but_ok = cbind(1, u, u + 1e-5 * v)
  )
  lapply(names(mats), function(nm) {
    X <- mats[[nm]]
    qx <- qr(X, tol = 1e-7, LAPACK = FALSE)
    list(name = nm, X = unname(lapply(seq_len(ncol(X)), function(j) num(X[, j]))),
         keep = sort(qx$pivot[seq_len(qx$rank)]) - 1L)
  })
})

result <- list(
  generated_by = "tests/reference/make_design_reference.R",
  R_version = R.version.string,
  packages = list(lme4 = as.character(packageVersion("lme4")),
                  Matrix = as.character(packageVersion("Matrix")),
                  jsonlite = as.character(packageVersion("jsonlite"))),
  data = basename(csv_path),
  n_rows = nrow(d),
  factor_levels = list(o = list(levels = o_levels, ordered = TRUE),
                       o2 = list(levels = c("lo", "hi"), ordered = TRUE, from = "z > 1.5 -> hi"),
                       f = list(levels = levels(factor(d$f)), ordered = FALSE),
                       g = list(levels = levels(factor(d$g)), ordered = FALSE),
                       h = list(levels = levels(factor(d$h)), ordered = FALSE)),
  lme4_errors = lme4_errors,
  term_cases = term_cases,
  poly_contrasts = poly_contrasts,
  rank_cases = rank_cases,
  cases = lapply(cases, run_case)
)
writeLines(toJSON(result, auto_unbox = TRUE, digits = NA, null = "null", pretty = FALSE,
                  json_verbatim = TRUE), json_path)
cat("wrote", csv_path, "and", json_path, "with", length(cases), "cases\n")
