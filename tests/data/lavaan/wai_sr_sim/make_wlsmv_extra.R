#!/usr/bin/env Rscript
# Extra lavaan 0.6-14 reference values for the WLSMV tests (tests/sem/test_polychoric.py,
# tests/sem/test_wlsmv.py): sample thresholds, polychoric correlations, the asymptotic
# covariance matrix Gamma (NACOV) and the DWLS weights, for the complete data (listwise) and
# the missing-data file (missing = "pairwise"), plus a full WLSMV fit on the missing-data file.
# Run from this folder:  Rscript make_wlsmv_extra.R
suppressPackageStartupMessages({
  library(lavaan)
  library(jsonlite)
})
model <- paste(readLines("wai_sr.lav", warn = FALSE), collapse = "\n")
items <- sprintf("wai_%02d", 1:12)

sampstats <- function(fit) {
  ss <- lavInspect(fit, "sampstat")
  list(
    ov_names = lavNames(fit, "ov"),
    th_names = names(ss$th),
    th = unname(ss$th),
    cor = unname(ss$cov),
    gamma = unname(lavInspect(fit, "gamma")),
    wls_v_diag = unname(diag(lavInspect(fit, "wls.v"))),
    nobs = lavInspect(fit, "nobs")
  )
}

out <- list(meta = list(lavaan_version = as.character(packageVersion("lavaan")),
                        R_version = R.version.string, model = model))
dat <- read.csv("wai_sr_sim.csv", stringsAsFactors = FALSE)
fit <- cfa(model, data = dat, ordered = items, estimator = "WLSMV")
out$complete <- sampstats(fit)

datm <- read.csv("wai_sr_sim_missing.csv", stringsAsFactors = FALSE)
fitm <- cfa(model, data = datm, ordered = items, estimator = "WLSMV", missing = "pairwise")
out$pairwise <- sampstats(fitm)
out$pairwise_fit <- list(
  fit = as.list(fitMeasures(fitm)),
  parameters = parameterEstimates(fitm, remove.nonfree = FALSE),
  standardized = standardizedSolution(fitm, type = "std.all")
)
writeLines(toJSON(out, auto_unbox = TRUE, digits = I(12), na = "null", dataframe = "rows"),
           "lavaan_wlsmv_extra.json")
cat("wrote lavaan_wlsmv_extra.json\n")
