#!/usr/bin/env Rscript
# lavaan 0.6-14 references for the WLSMV invariance ladder in the theta parameterization
# (issue 3, B): configural, metric (loadings), scalar (+ intercepts + thresholds) and strict
# (+ residuals: the residual variances of the latent responses held equal, i.e. fixed to 1 in
# every group). Identification is lavaan's own for group.equal, as the project's delta ladder
# (tests/data/lavaan/wai_sr_sim/lavaan_wlsmv_invariance_site.json): marker loadings, thresholds
# free per group until "thresholds" are equal; then latent means and (theta) the residual
# variances of groups 2+ are free, until "residuals" fixes them to the group-1 value 1.
# Data: wai_sr_sim.csv across site (complete data, listwise) and the demo rater sample
# (rater_site_a.csv, pairwise missing). Also a single-group theta fit of wai_sr_sim.
# Run from the repository root:  Rscript tests/data/lavaan/extra/make_wlsmv_theta.R
# (tests never call R)
suppressPackageStartupMessages({
  library(lavaan)
  library(jsonlite)
})
here <- "tests/data/lavaan"
out_dir <- file.path(here, "extra")
items <- sprintf("wai_%02d", 1:12)
model <- paste(readLines(file.path(here, "wai_sr_sim", "wai_sr.lav"), warn = FALSE),
               collapse = "\n")
steps <- list(configural = "", metric = "loadings",
              scalar = c("loadings", "intercepts", "thresholds"),
              strict = c("loadings", "intercepts", "thresholds", "residuals"))
block <- function(fit) {
  pe <- parameterEstimates(fit, remove.nonfree = FALSE)
  keep <- intersect(c("lhs", "op", "rhs", "group", "est", "se"), names(pe))
  ss <- standardizedSolution(fit, type = "std.all")
  skeep <- intersect(c("lhs", "op", "rhs", "group", "est.std", "se"), names(ss))
  list(converged = lavInspect(fit, "converged"), nobs = lavInspect(fit, "nobs"),
       group_labels = lavInspect(fit, "group.label"), npar = lavInspect(fit, "npar"),
       fit = as.list(fitMeasures(fit)), parameters = pe[, keep],
       standardized = ss[, skeep])
}
lrt <- function(fits) {
  t <- as.data.frame(do.call(lavTestLRT, c(unname(fits), list(model.names = names(fits)))))
  t <- cbind(model = rownames(t), t)
  names(t) <- sub("^Pr\\(>Chisq\\)$", "Pr_gt_Chisq", gsub(" ", "_", names(t)))
  rownames(t) <- NULL
  t
}
ladder <- function(dat, group, missing) {
  fits <- lapply(steps, function(ge) cfa(model, data = dat, group = group, ordered = items,
                                         estimator = "WLSMV", missing = missing,
                                         parameterization = "theta", group.equal = ge))
  res <- lapply(fits, block)
  res$lrt <- lrt(fits)
  res$score_strict <- as.data.frame(lavTestScore(fits$strict)$uni)
  res$partable_strict <- parTable(fits$strict)[, c("lhs", "op", "rhs", "group", "plabel")]
  # partial strict invariance: freeing one (fixed) residual variance of a group 2+ at a time
  mi <- modindices(fits$strict)
  res$mi_strict_residuals <- mi[mi$op == "~~" & mi$lhs == mi$rhs & mi$group > 1,
                                c("lhs", "op", "rhs", "group", "mi", "epc")]
  res
}
write <- function(x, name) {
  writeLines(toJSON(x, auto_unbox = TRUE, digits = I(12), na = "null", dataframe = "rows"),
             file.path(out_dir, name))
  cat("wrote", name, "\n")
}
meta <- list(lavaan_version = as.character(packageVersion("lavaan")),
             R_version = R.version.string, model = model, parameterization = "theta",
             steps = steps)
wai <- read.csv(file.path(here, "wai_sr_sim", "wai_sr_sim.csv"), stringsAsFactors = FALSE)
wai$site <- as.character(wai$site)
single <- cfa(model, data = wai, ordered = items, estimator = "WLSMV",
              parameterization = "theta")
write(list(meta = c(meta, list(data = "wai_sr_sim.csv", group = "site", missing = "listwise")),
           single = block(single), invariance = ladder(wai, "site", "listwise")),
      "wai_wlsmv_theta_invariance_site.json")
rater <- read.csv(file.path(here, "rater_site_a", "rater_site_a.csv"), stringsAsFactors = FALSE)
write(list(meta = c(meta, list(data = "rater_site_a.csv", group = "rater",
                               missing = "pairwise")),
           invariance = ladder(rater, "rater", "pairwise")),
      "rater_wlsmv_theta_invariance.json")
for (f in c("wai_wlsmv_theta_invariance_site.json", "rater_wlsmv_theta_invariance.json")) {
  x <- fromJSON(file.path(out_dir, f))
  for (s in names(steps)) {
    m <- x$invariance[[s]]$fit
    cat(sprintf("%-40s %-10s chisq %.4f scaled %.4f df %d cfi.scaled %.4f rmsea.scaled %.4f\n",
                f, s, m$chisq, m$chisq.scaled, as.integer(m$df), m$cfi.scaled, m$rmsea.scaled))
  }
}
