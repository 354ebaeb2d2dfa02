#!/usr/bin/env Rscript
# lavaan 0.6-14 / semTools 0.5-6 reference values for the WLSMV details
# (tests/sem/test_wlsmv_extras.py): semTools::reliability() per factor (alpha, alpha.ord,
# categorical omega/omega2/omega3, avevar) and the latent-response omega, semTools::htmt()
# on polychoric correlations, residuals(type = "cor"), modindices(), and, for the invariance
# ladder across site, per-group reliability of the configural model and lavTestScore() of
# the metric and scalar models (univariate releases of the group.equal constraints).
# Run from this folder:  Rscript make_wlsmv_details.R
suppressPackageStartupMessages({
  library(lavaan)
  library(semTools)
  library(jsonlite)
})
model <- paste(readLines("wai_sr.lav", warn = FALSE), collapse = "\n")
items <- sprintf("wai_%02d", 1:12)
dat <- read.csv("wai_sr_sim.csv", stringsAsFactors = FALSE)
datm <- read.csv("wai_sr_sim_missing.csv", stringsAsFactors = FALSE)

rel_block <- function(fit) {
  rel <- reliability(fit)
  if (!is.list(rel) || is.data.frame(rel)) rel <- list(rel)
  if (is.matrix(rel)) rel <- list(rel)
  est <- lavInspect(fit, "est")
  if (lavInspect(fit, "ngroups") == 1L) est <- list(est)
  lapply(seq_along(rel), function(g) {
    r <- rel[[g]]
    lam <- est[[g]]$lambda
    psi <- est[[g]]$psi
    th <- est[[g]]$theta
    lat <- sapply(colnames(lam), function(f) {
      idx <- which(lam[, f] != 0)
      common <- sum(lam[idx, f])^2 * psi[f, f]
      common / (common + sum(th[idx, idx]))
    })
    list(semtools = as.data.frame(r), omega_latent = as.list(lat))
  })
}

mi_rows <- function(fit) {
  mi <- modindices(fit, sort. = TRUE)
  cols <- intersect(c("lhs", "op", "rhs", "group", "mi", "epc", "sepc.all"), names(mi))
  mi[, cols]
}

single <- function(fit, data) {
  res <- residuals(fit, type = "cor")
  list(
    reliability = rel_block(fit)[[1]],
    htmt = as.data.frame(htmt(model, data = data, ordered = items)),
    htmt_arithmetic = as.data.frame(htmt(model, data = data, ordered = items, htmt2 = FALSE)),
    residual_cor = unname(res$cov),
    residual_th = unname(res$th),
    ov_names = lavNames(fit, "ov"),
    modindices = mi_rows(fit)
  )
}

out <- list(meta = list(lavaan_version = as.character(packageVersion("lavaan")),
                        semTools_version = as.character(packageVersion("semTools")),
                        R_version = R.version.string, model = model))
fit <- cfa(model, data = dat, ordered = items, estimator = "WLSMV")
out$complete <- single(fit, dat)
fitm <- cfa(model, data = datm, ordered = items, estimator = "WLSMV", missing = "pairwise")
out$pairwise <- list(reliability = rel_block(fitm)[[1]])

eqs <- list(configural = "none", metric = "loadings",
            scalar = c("loadings", "intercepts", "thresholds"))
fits <- lapply(eqs, function(ge) cfa(model, data = dat, ordered = items, estimator = "WLSMV",
                                     group = "site", group.equal = ge))
score <- function(f) {
  sc <- suppressWarnings(lavTestScore(f))
  list(uni = as.data.frame(sc$uni),
       partable = parTable(f)[, c("lhs", "op", "rhs", "group", "plabel", "label")])
}
out$invariance <- list(
  group_labels = lavInspect(fits$configural, "group.label"),
  reliability_configural = rel_block(fits$configural),
  modindices_configural = mi_rows(fits$configural),
  score_metric = score(fits$metric),
  score_scalar = score(fits$scalar),
  df = sapply(fits, function(f) fitMeasures(f, "df"))
)
writeLines(toJSON(out, auto_unbox = TRUE, digits = I(12), na = "null", dataframe = "rows"),
           "lavaan_wlsmv_details.json")
cat("wrote lavaan_wlsmv_details.json\n")
