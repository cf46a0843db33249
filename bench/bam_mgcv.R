## mgcv side of bench/bench_bam.py.
##
##   Rscript bench/bam_mgcv.R generate N CSV RDS
##       simulate gamsim_re(N) (bench/gamm_sims.R), keep y, x0..x3, g, write
##       CSV (17 significant digits, for pymlm) and read it back into the RDS
##       file mgcv fits, so that both sides fit bit-identical numbers.
##   Rscript bench/bam_mgcv.R fit FITTER RDS
##       FITTER is bam_discrete, bam or gam; loads the data, then times the fit
##       alone and prints one line "BENCH_JSON {...}" with the seconds, the
##       resident memory after loading and at the peak (VmHWM), and the
##       estimates (edf, scale, fREML/REML score, first fitted values).

suppressPackageStartupMessages({
  library(mgcv)
  library(jsonlite)
})

args <- commandArgs(trailingOnly = TRUE)
here <- local({
  f <- sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE))
  if (length(f)) dirname(normalizePath(f)) else "bench"
})

vm <- function(key) {
  line <- grep(paste0("^", key, ":"), readLines("/proc/self/status"), value = TRUE)
  as.numeric(gsub("[^0-9]", "", line)) / 1024  # MiB
}

form <- y ~ s(x0, bs = "cr") + s(x1, bs = "cr") + s(x2, bs = "cr") + s(x3, bs = "cr") + s(g, bs = "re")

if (args[1] == "generate") {
  source(file.path(here, "gamm_sims.R"))
  n <- as.numeric(args[2])
  d <- gamsim_re(n)[, c("y", "x0", "x1", "x2", "x3", "g")]
  data.table::fwrite(d, args[3], dateTimeAs = "write.csv", quote = FALSE)
  d2 <- data.table::fread(args[3], data.table = FALSE, colClasses = c(g = "character"))
  d2$g <- factor(d2$g, levels = levels(d$g))
  stopifnot(isTRUE(all.equal(d2$y, d$y, tolerance = 1e-12)))
  saveRDS(d2, args[4])
  quit(save = "no")
}

if (args[1] == "fit") {
  fitter <- args[2]
  d <- readRDS(args[3])
  invisible(gc())
  rss_loaded <- vm("VmRSS")
  t0 <- proc.time()[["elapsed"]]
  m <- switch(fitter,
    bam_discrete = bam(form, data = d, method = "fREML", discrete = TRUE),
    bam = bam(form, data = d, method = "fREML", discrete = FALSE),
    gam = gam(form, data = d, method = "REML"),
    stop("unknown fitter ", fitter)
  )
  secs <- proc.time()[["elapsed"]] - t0
  st <- summary(m)$s.table
  out <- list(
    fitter = fitter, n = nrow(d), seconds = secs,
    rss_loaded_mb = rss_loaded, peak_mb = vm("VmHWM"),
    edf = as.list(setNames(st[, "edf"], rownames(st))),
    scale = m$sig2, score = as.numeric(m$gcv.ubre),
    fitted_head = as.numeric(fitted(m))[1:10],
    versions = list(R = R.version.string, mgcv = as.character(packageVersion("mgcv")))
  )
  cat("BENCH_JSON ", toJSON(out, auto_unbox = TRUE, digits = 15), "\n", sep = "")
  quit(save = "no")
}

stop("usage: bam_mgcv.R generate N CSV RDS | fit FITTER RDS")
