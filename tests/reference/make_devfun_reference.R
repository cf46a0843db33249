# lme4's profiled deviance function (lmer(..., devFunOnly = TRUE)) at fixed theta,
# for pymlm's lmer_devfun tests: at lme4's optimum and at perturbed theta.
# Run from the project root:  Rscript tests/reference/make_devfun_reference.R
# Writes tests/reference/devfun_reference.json (R and package versions inside).
suppressPackageStartupMessages({library(lme4); library(jsonlite)})

source("tests/reference/load_data.R")  # load_data(name): data/<name>.csv with R's levels

sleep <- load_data("sleepstudy")
sleep$w <- 1 + sleep$Days / 10          # prior weights
sleep$off <- 3 * log1p(sleep$Days)      # an offset not in the span of X

cases <- list(
  list(name = "sleepstudy_reml", data = "sleepstudy", formula = "Reaction ~ Days + (Days | Subject)", REML = TRUE),
  list(name = "sleepstudy_ml", data = "sleepstudy", formula = "Reaction ~ Days + (Days | Subject)", REML = FALSE),
  list(name = "sleepstudy_uncorr", data = "sleepstudy", formula = "Reaction ~ Days + (Days || Subject)", REML = TRUE),
  list(name = "sleepstudy_weighted", data = "sleepstudy", formula = "Reaction ~ Days + (Days | Subject)",
       REML = TRUE, weights = "w"),
  list(name = "sleepstudy_offset", data = "sleepstudy", formula = "Reaction ~ Days + (Days | Subject)",
       REML = FALSE, offset = "off"),
  list(name = "penicillin", data = "Penicillin", formula = "diameter ~ 1 + (1 | plate) + (1 | sample)", REML = TRUE),
  list(name = "pastes", data = "Pastes", formula = "strength ~ 1 + (1 | batch/cask)", REML = TRUE),
  list(name = "dyestuff2", data = "Dyestuff2", formula = "Yield ~ 1 + (1 | Batch)", REML = TRUE),
  list(name = "insteval_ml", data = "InstEval", formula = "y ~ service + (1 | s) + (1 | d) + (1 | dept:service)",
       REML = FALSE)
)

datasets <- list()
out <- list()
for (cs in cases) {
  if (is.null(datasets[[cs$data]])) datasets[[cs$data]] <- if (cs$data == "sleepstudy") sleep else load_data(cs$data)
  d <- datasets[[cs$data]]
  args <- list(formula = as.formula(cs$formula), data = d, REML = cs$REML)
  if (!is.null(cs$weights)) args$weights <- d[[cs$weights]]
  if (!is.null(cs$offset)) args$offset <- d[[cs$offset]]
  m <- do.call(lmer, args)
  dev <- do.call(lmer, c(args, list(devFunOnly = TRUE)))
  th <- unname(getME(m, "theta"))
  lower <- unname(getME(m, "lower"))
  pts <- list(th, th * 1.3 + 0.05, pmax(th * 0.6 - 0.02, lower))
  # a point on the boundary: the first diagonal element at 0
  b <- th; b[which(lower == 0)[1]] <- 0; pts[[4]] <- b
  vals <- vapply(pts, function(t) dev(t), numeric(1))
  out[[cs$name]] <- list(data = cs$data, formula = cs$formula, REML = cs$REML,
                         weights = if (is.null(cs$weights)) NULL else cs$weights,
                         offset = if (is.null(cs$offset)) NULL else cs$offset,
                         theta_hat = th, lower = lower,
                         points = lapply(seq_along(pts), function(i) list(theta = pts[[i]], deviance = vals[i])))
}
out$versions <- list(R = R.version.string, lme4 = as.character(packageVersion("lme4")))
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE), "tests/reference/devfun_reference.json")
