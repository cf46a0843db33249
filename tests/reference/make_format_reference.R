# R's number formatting and printing rules, for pymlm.results._format
# (tests/results/test_format.py): format(), format.pval(), formatC(),
# signif(), round(), zapsmall(), abbreviate(), printCoefmat(), print() of
# named vectors and character matrices, cat(fill = TRUE), strwrap() and
# deparse() of formulas.
#
# Run from the project root:  Rscript tests/reference/make_format_reference.R
# Writes tests/reference/format_reference.json (R version inside). Numbers
# are written as text with 17 significant digits ("NA", "NaN", "Inf",
# "-Inf" as such), so that the inputs are read back exactly. Vectors of
# length one are written as scalars (jsonlite's auto_unbox).

suppressPackageStartupMessages(library(jsonlite))
stopifnot(getOption("width") == 80, getOption("digits") == 7, l10n_info()[["UTF-8"]])

num <- function(x) ifelse(is.na(x) & !is.nan(x), "NA", sprintf("%.17g", x))

set.seed(20240611)
rand <- lapply(1:12, function(i) {
  n <- sample(2:7, 1)
  round(rnorm(n) * 10^sample(-7:7, n, TRUE), sample(0:12, 1))
})
vectors <- c(list(
  c(612.1002, 35.0717, 654.94), c(-2.07923, -0.6714, 0.06292, 0.58377, 2.97959),
  c(0, 1, -1), 0, -0, c(1e-10, 1), c(1e10, 1), c(123456789, 0.1), c(1e-300, 1e300), 1e5, 123456,
  1234567.1, c(0.1, 0.12, 0.123), c(9996, 1), 99999.6, 9.9996, 0.99996, -9.99996,
  c(NA, 1.5, NaN, Inf, -Inf), c(NA, NA), NaN, c(Inf, 1), c(0.15, 0.25, 0.35, 2.675, 1.005),
  c(pi, exp(1)), c(1 / 3, 2 / 3, 1), c(-0.0001, 123.456), c(17, 251.405, 6.825),
  c(0.001428, 0.000656, 0.000261), c(174, 1763.9), c(1e-5, 1e-4, 1e-3), 5e-324, 1.797e308,
  c(-1.234e-8, 5.6e-9), c(42799.6, 93.199), c(0.5, 1.5, 2.5), c(1e15, 1), c(123.456, 1e-15)
), rand)

fmt_cases <- list()
for (x in vectors) {
  for (d in c(1:7, 15)) {
    fmt_cases[[length(fmt_cases) + 1]] <- list(x = num(x), digits = d, nsmall = 0,
                                               out = format(x, digits = d))
  }
  for (ns in c(2, 3)) {
    fmt_cases[[length(fmt_cases) + 1]] <- list(x = num(x), digits = 7, nsmall = ns,
                                               out = format(x, nsmall = ns))
  }
}

pvals <- list(c(3.26e-06, 1e-20), c(0.21, 1e-20), c(6.69e-09, 0.001428, 0.000656, 0.000261),
              c(0.5, 0.05, 0.0001, 0.00001), 1e-17, c(NA, 0.3), c(0, 1), c(0.12345, 0.0012345),
              c(0.04, 0.00049, 1e-300), c(0.999999, 2e-16, 2.3e-16), c(1e-5, 0.2), 0.00012)
pval_cases <- list()
for (p in pvals) for (d in 1:5) {
  pval_cases[[length(pval_cases) + 1]] <- list(p = num(p), digits = d, out = format.pval(p, digits = d))
}

ties <- c(0.15, 0.25, 0.35, 0.45, 0.125, 0.375, 2.675, 1.005, 2.5, -2.5, 0.5, 1.5, 5.55, 5.555,
          1234.5678, -0.0001, 0.285, 1.0049999999999999, 123456.5, 0.000123456, 98765.4321,
          1e-20, 1e20, 7.25e-5, 0.95, -0.05)
round_x <- c(ties, unlist(rand))
round_cases <- lapply(-2:6, function(d) list(digits = d, x = num(round_x), out = num(round(round_x, d))))
round_cases <- c(round_cases, lapply(c(0.4, 1.6, 2.5, 3.5), function(d)
  list(digits = d, x = num(round_x), out = num(round(round_x, d)))))
signif_cases <- lapply(1:7, function(d) list(digits = d, x = num(round_x), out = num(signif(round_x, d))))
zap_cases <- lapply(list(c(1, 1e-20), c(-3.9536, -0.4634, 0.0231, 0.4634, 5.1793), c(123.456, 0.000123),
                         c(0, 0), c(NA, 1e-9, 2), c(2.979589, -2.07923, 0.06292)),
                    function(x) lapply(c(3, 5, 7), function(d) list(digits = d, x = num(x),
                                                                     out = num(zapsmall(x, d)))))
zap_cases <- unlist(zap_cases, recursive = FALSE)

formatc_cases <- list()
for (x in c(0.515, 0.746, 53, 74.9, 93.199, 42799.6, 1, 4.0801, 0.80833, -0.0123456, 1e-5, 123456789,
            100, 0.369, 40.3, 1e10)) {
  for (a in list(list(3, 5, ""), list(3, 4, ""), list(5, NULL, ""), list(5, 8, "-"))) {
    formatc_cases[[length(formatc_cases) + 1]] <- list(
      x = num(x), digits = a[[1]], width = a[[2]], flag = a[[3]],
      out = formatC(x, digits = a[[1]], width = a[[2]], flag = a[[3]]))
  }
}

abbr_names <- c("(Intercept)", "Days", "periodtwo", "x:fac", "log(x + 1)", "Subject", "batchB", "caskb",
                "I(Days^2)", "Days:Subjectb", "poly(x, 2)1", "factor(Days)1", "sample", "plateb",
                "cHEIGHT", "YEAR96", "service1", "studage4", "lectage6", "deptD", "serviceTRUE", "a b c",
                "The quick brown fox", "AAAAAAAAAAAA", "aeiouaeiou", "xyz:abc:def", "period2:herd15",
                "s(x0).1", "Reaction", "cHEIGHT:YEAR97", "x1", "ab cd ef gh ij kl", "Intercept2")
abbr_cases <- lapply(c(1, 4, 6, 11), function(ml) list(minlength = ml, names = abbr_names,
                                                      out = unname(abbreviate(abbr_names, ml, strict = TRUE))))
abbr_vector <- list(list(minlength = 6, names = c("abcdefgh1", "abcdefgh2", "Days"),
                         out = unname(abbreviate(c("abcdefgh1", "abcdefgh2", "Days"), 6))),
                    list(minlength = 6, names = c("periodone", "periodtwo", "periodthree"),
                         out = unname(abbreviate(c("periodone", "periodtwo", "periodthree"), 6))))

cap <- function(expr) capture.output(expr)
coefmats <- list(
  list(x = rbind(c(251.405, 6.825, 36.838), c(10.467, 1.546, 6.771)),
       rn = c("(Intercept)", "Days"), cn = c("Estimate", "Std. Error", "t value")),
  list(x = rbind(c(251.405, 6.825, 17, 36.838, 1e-20), c(10.467, 1.546, 17, 6.771, 3.26e-6)),
       rn = c("(Intercept)", "Days"), cn = c("Estimate", "Std. Error", "df", "t value", "Pr(>|t|)")),
  list(x = rbind(c(-1.367, 0.2358, -5.799, 6.69e-9), c(-0.9693, 0.304, -3.189, 0.001428),
                 c(-1.1045, 0.3241, -3.407, 0.000656), c(-1.5519, 0.4251, -3.651, 0.000261)),
       rn = c("(Intercept)", "period2", "period3", "period4"),
       cn = c("Estimate", "Std. Error", "z value", "Pr(>|z|)")),
  list(x = rbind(c(1e-6, 0.5, 2e-6, 0.999), c(100, 2, 50, 1e-10), c(NA, NA, NA, NA)),
       rn = c("a", "bb", "ccc"), cn = c("Estimate", "Std. Error", "t value", "Pr(>|t|)")),
  list(x = rbind(c(0.5, 0.1, 5, 0.3), c(0.2, 0.1, 2, 0.5)),
       rn = c("x", "z"), cn = c("Estimate", "Std. Error", "t value", "Pr(>|t|)")),
  list(x = rbind(c(0, 1, 0, 1), c(1234567, 0.001, 1234567000, 0.05)),
       rn = c("zero", "big"), cn = c("Estimate", "Std. Error", "t value", "Pr(>|t|)")),
  list(x = rbind(c(6.75, 7.851, 249.997, 1e-20), c(189.558, 199, 20.436, 1e-20), c(2.056, 2.563, 1.434, 0.21)),
       rn = c("s(x0)", "s(g)", "s(x3)"), cn = c("edf", "Ref.df", "F", "p-value"), cs = 1),
  list(x = rbind(c(9.66, 14, 32.028, 3.21e-5)), rn = "s(herd)", cn = c("edf", "Ref.df", "Chi.sq", "p-value"),
       cs = 1),
  list(x = rbind(c(1.001, 0.12, 0.05), c(2.5, 1.5, 0.001), c(3, 0.2, 0.01), c(1, 1, 0.1), c(0.5, 0.5, 1)),
       rn = paste0("v", 1:5), cn = c("Estimate", "t value", "Pr(>|t|)"))
)
coefmat_cases <- lapply(coefmats, function(cm) {
  x <- cm$x
  dimnames(x) <- list(cm$rn, cm$cn)
  lines <- if (is.null(cm$cs)) cap(printCoefmat(x, digits = 4)) else
    cap(printCoefmat(x, digits = 4, has.Pvalue = TRUE, cs.ind = cm$cs))
  list(x = lapply(seq_len(nrow(x)), function(i) num(x[i, ])), rownames = cm$rn, colnames = cm$cn,
       cs_ind = if (is.null(cm$cs)) NULL else cm$cs - 1, lines = lines)
})

named_cases <- lapply(list(
  list(x = c(-3.9536, -0.4634, 0.0231, 0.4634, 5.1793), n = c("Min", "1Q", "Median", "3Q", "Max"), d = 4),
  list(x = c(1.5, 2, 3), n = c("a", "bbbbbbbbbb", "c"), d = 7),
  list(x = seq(0.5, 20, by = 1.25) * 1000, n = paste0("name", 1:16), d = 4)
), function(v) list(x = num(v$x), names = v$n, digits = v$d, lines = cap(print(setNames(v$x, v$n), digits = v$d))))

matrix_cases <- lapply(list(
  list(nc = 12, w = 7, rn = "", right = FALSE), list(nc = 12, w = 8, rn = "r", right = FALSE),
  list(nc = 12, w = 8, rn = "", right = TRUE), list(nc = 12, w = 8, rn = "rrrrrrrrr", right = FALSE),
  list(nc = 3, w = 2, rn = "row", right = TRUE)
), function(a) {
  m <- matrix(strrep("a", a$w), 1, a$nc, dimnames = list(a$rn, paste0("c", seq_len(a$nc))))
  list(cells = list(as.vector(m)), rownames = a$rn, colnames = colnames(m), right = a$right,
       lines = cap(print(m, quote = FALSE, right = a$right)))
})

cat_cases <- lapply(list(
  list("Formula:", strrep("x", 75), "yy"), list("Formula:", strrep("x", 60), strrep("z", 9)),
  list("Formula:", strrep("x", 60), strrep("z", 10)), list(strrep("x", 85), "y"),
  list("a", strrep("x", 78)), list("a", strrep("x", 77))
), function(items) list(items = unlist(items), sep = " ",
                        lines = cap(do.call(cat, c(items, list(fill = TRUE))))))
cat_cases[[length(cat_cases) + 1]] <- list(
  items = c(strrep("x", 66), " [", "lmerModLmerTest", "]"), sep = "",
  lines = cap(cat(strrep("x", 66), " [", "lmerModLmerTest", "]", sep = "", fill = TRUE)))

formulas <- c(
  "Reaction ~ Days + (Days | Subject)", "y~x+(1|g)",
  "y ~ s(x0, bs = 'cr') + s(x1, bs = 'cr') + s(x2, bs = 'cr') + s(x3, bs = 'cr') + s(g, bs = 're')",
  "y ~ s(x0, x1, x2, bs = \"tp\", k = 20, m = 2, by = fac, id = 1, sp = 0.5, fx = FALSE)",
  "y ~ x + 100000 + 1e-4 + 0.10 + I(x^2) + a:b + a/b + a*b + (1|g) + -1 + log(x %in% z)",
  "cbind(incidence, size - incidence) ~ period + s(herd, bs = \"re\")",
  "log(TICKS + 1) ~ YEAR * cHEIGHT + (1 | BROOD) + (1 | LOCATION) + (1 | INDEX) + (0 + cHEIGHT | BROOD)",
  "y ~ te(x, z, k = c(4, 5)) + ti(x, z) + s(x, fac, bs = \"fs\", k = 4) + offset(log(w))",
  "~ x + (x || g)", "y ~ (a + b + c)^2 - a:b", "y ~ x - 1", "y ~ a %in% b + poly(x, 2)"
)
deparse_cases <- lapply(formulas, function(f) list(formula = f, lines = deparse(str2lang(f))))

wrap_cases <- lapply(list(
  list("Linear mixed model fit by maximum likelihood . t-tests use Satterthwaite's method", 78, 2),
  list("Linear mixed model fit by REML. t-tests use Kenward-Roger's method", 78, 2),
  list("aaa bbb ccc ddd eee fff", 8, 2), list("aaa bbb ccc", 7, 0)
), function(a) list(text = a[[1]], width = a[[2]], exdent = a[[3]],
                    out = strwrap(a[[1]], width = a[[2]], exdent = a[[3]])))

out <- list(
  r_versions = list(R = R.version.string, jsonlite = as.character(packageVersion("jsonlite"))),
  format = fmt_cases, format_pval = pval_cases, round = round_cases, signif = signif_cases,
  zapsmall = zap_cases, formatC = formatc_cases, abbreviate = abbr_cases, abbreviate_vector = abbr_vector,
  print_coefmat = coefmat_cases, print_named = named_cases, print_matrix = matrix_cases,
  cat_fill = cat_cases, deparse = deparse_cases, strwrap = wrap_cases
)
write_json(out, "tests/reference/format_reference.json", auto_unbox = TRUE, pretty = FALSE, null = "null", digits = NA)
