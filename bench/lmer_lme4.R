# The lme4 side of the lmer benchmarks (bench/bench_lmer.py runs it).
#
# One fit per R process: read a CSV into a data frame (factor columns get the
# level order recorded in data/factor_levels.json, as in R's own datasets),
# then time the lmer() call alone and print one JSON line with the estimates,
# the wall time and the memory figures.
#
# Usage:
#   Rscript bench/lmer_lme4.R FORMULA REML CSV [LEVELS_JSON DATASET [WARM]]
#
#   FORMULA      lme4 formula, e.g. "Reaction ~ Days + (Days | Subject)"
#   REML         TRUE or FALSE
#   CSV          the data
#   LEVELS_JSON  data/factor_levels.json, or "" for none (integer grouping
#                columns then become factors inside lmer, as usual)
#   DATASET      key of LEVELS_JSON to use, or ""
#   WARM         extra fits after the timed one, reported separately as the
#                time of a warm call (default 0)
#
# Memory: "rss_after_load_mb" is VmRSS after reading the data and a full gc();
# "peak_rss_mb" is VmHWM (the process's peak resident set, the figure
# /usr/bin/time -v reports) read at the end; "gc_max_used_mb" is the peak of
# R's own heap (Ncells + Vcells "max used" of gc()) between the end of the load
# and the end of the timed fit.

suppressPackageStartupMessages({
  library(lme4)
  library(jsonlite)
  library(data.table)
})

status_mb <- function(field) {
  line <- grep(paste0("^", field, ":"), readLines("/proc/self/status"), value = TRUE)
  if (length(line) != 1) return(NA_real_)
  as.numeric(strsplit(trimws(sub(paste0(field, ":"), "", line)), "[[:space:]]+")[[1]][1]) / 1024
}

read_data <- function(csv, levels_json, dataset) {
  levels <- list()
  if (nzchar(levels_json) && nzchar(dataset)) levels <- fromJSON(levels_json, simplifyVector = FALSE)[[dataset]]
  factor_cols <- names(levels)
  dt <- if (length(factor_cols)) fread(csv, colClasses = list(character = factor_cols)) else fread(csv)
  df <- as.data.frame(dt)
  rm(dt)
  for (col in factor_cols) {
    spec <- levels[[col]]
    df[[col]] <- factor(df[[col]], levels = unlist(spec$levels), ordered = isTRUE(spec$ordered))
  }
  df
}

main <- function(args) {
  if (length(args) < 3) stop("usage: Rscript lmer_lme4.R FORMULA REML CSV [LEVELS_JSON DATASET [WARM]]")
  formula <- as.formula(args[1])
  reml <- as.logical(args[2])
  levels_json <- if (length(args) >= 4) args[4] else ""
  dataset <- if (length(args) >= 5) args[5] else ""
  warm <- if (length(args) >= 6) as.integer(args[6]) else 0L

  df <- read_data(args[3], levels_json, dataset)
  invisible(gc(reset = TRUE))
  rss_after_load <- status_mb("VmRSS")
  peak_after_load <- status_mb("VmHWM")

  t0 <- proc.time()[["elapsed"]]
  fit <- lmer(formula, data = df, REML = reml)
  seconds <- proc.time()[["elapsed"]] - t0
  g <- gc()
  gc_max <- sum(g[, which(colnames(g) == "max used") + 1])

  warm_seconds <- numeric(0)
  for (i in seq_len(warm)) {
    t0 <- proc.time()[["elapsed"]]
    lmer(formula, data = df, REML = reml)
    warm_seconds <- c(warm_seconds, proc.time()[["elapsed"]] - t0)
  }

  cmp <- fit@devcomp$cmp
  conv <- fit@optinfo$conv$lme4$messages
  out <- list(
    side = "lme4",
    fit_seconds = seconds,
    warm_seconds = warm_seconds,
    rss_after_load_mb = rss_after_load,
    peak_after_load_mb = peak_after_load,
    peak_rss_mb = status_mb("VmHWM"),
    gc_max_used_mb = gc_max,
    nobs = nobs(fit),
    theta = unname(getME(fit, "theta")),
    fixef = as.list(fixef(fit)),
    sigma = sigma(fit),
    criterion = if (reml) cmp[["REML"]] else cmp[["dev"]],
    loglik = as.numeric(logLik(fit)),
    converged = is.null(conv) && fit@optinfo$conv$opt == 0,
    messages = if (is.null(conv)) list() else as.list(conv),
    feval = fit@optinfo$feval,
    versions = list(R = paste(R.version$major, R.version$minor, sep = "."),
                    lme4 = as.character(packageVersion("lme4")),
                    BLAS = extSoftVersion()[["BLAS"]])
  )
  cat("BENCH_JSON ", toJSON(out, auto_unbox = TRUE, digits = NA, null = "null"), "\n", sep = "")
}

main(commandArgs(trailingOnly = TRUE))
