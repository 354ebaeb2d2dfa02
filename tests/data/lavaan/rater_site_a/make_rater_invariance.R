#!/usr/bin/env Rscript
# lavaan 0.6-14 reference for the rater-invariance ladder of the demo pipeline (issue 3, A).
# rater_site_a.csv is the sample alliance.cfa.stage.invariance_sample() builds from the demo
# site_a (config/codebooks/site_a.yaml): one row per patient x rater, the client's and the
# therapist's WAI-SR ratings at session 3; client first (the reference group).
# The model is the built-in `correlated` (correlated.lav). Settings as config/config.yaml:
#   MLR with missing = "ml" (FIML); WLSMV with all items ordered and missing = "pairwise".
# Steps as the project's ladders (lavaan's group.equal identification): configural, metric
# (loadings), scalar (+ intercepts; + thresholds for WLSMV), strict (+ residuals; MLR only
# here, the WLSMV theta-parameterization ladder is in make_theta_invariance.R).
# Run from this folder:  Rscript make_rater_invariance.R   (tests never call R)
suppressPackageStartupMessages({
  library(lavaan)
  library(jsonlite)
})
model <- paste(readLines("correlated.lav", warn = FALSE), collapse = "\n")
dat <- read.csv("rater_site_a.csv", stringsAsFactors = FALSE)
items <- sprintf("wai_%02d", 1:12)
steps <- list(configural = "", metric = "loadings",
              scalar = c("loadings", "intercepts"),
              strict = c("loadings", "intercepts", "residuals"))
fit_names <- c("npar", "chisq", "df", "pvalue", "chisq.scaled", "df.scaled", "pvalue.scaled",
               "chisq.scaling.factor", "cfi", "tli", "rmsea", "srmr", "cfi.scaled",
               "tli.scaled", "rmsea.scaled", "cfi.robust", "tli.robust", "rmsea.robust")
one <- function(fit) {
  fm <- fitMeasures(fit)
  list(converged = lavInspect(fit, "converged"), nobs = lavInspect(fit, "nobs"),
       group_labels = lavInspect(fit, "group.label"),
       fit = as.list(fm[intersect(fit_names, names(fm))]),
       parameters = parameterEstimates(fit, remove.nonfree = FALSE)[
         , c("lhs", "op", "rhs", "group", "est", "se")])
}
lrt <- function(fits) {
  t <- as.data.frame(do.call(lavTestLRT, c(unname(fits), list(model.names = names(fits)))))
  t <- cbind(model = rownames(t), t)
  names(t) <- sub("^Pr\\(>Chisq\\)$", "Pr_gt_Chisq", gsub(" ", "_", names(t)))
  rownames(t) <- NULL
  t
}
out <- list(meta = list(lavaan_version = as.character(packageVersion("lavaan")),
                        R_version = R.version.string, model = model, group = "rater",
                        data = "rater_site_a.csv"))
# MLR, FIML
fits <- lapply(steps, function(ge) cfa(model, data = dat, group = "rater", estimator = "MLR",
                                       missing = "ml", group.equal = ge))
out$MLR <- c(lapply(fits, one), list(lrt = lrt(fits)))
# WLSMV, ordered, pairwise (delta parameterization: no strict step)
wsteps <- list(configural = "", metric = "loadings",
               scalar = c("loadings", "intercepts", "thresholds"))
wfits <- lapply(wsteps, function(ge) cfa(model, data = dat, group = "rater", ordered = items,
                                         estimator = "WLSMV", missing = "pairwise",
                                         group.equal = ge))
out$WLSMV <- c(lapply(wfits, one), list(lrt = lrt(wfits)))
writeLines(toJSON(out, auto_unbox = TRUE, digits = I(12), na = "null", dataframe = "rows",
                  pretty = TRUE), "lavaan_rater_invariance.json")
for (est in c("MLR", "WLSMV")) for (s in names(if (est == "MLR") steps else wsteps)) {
  f <- out[[est]][[s]]$fit
  cat(sprintf("%-5s %-10s chisq %.4f scaled %.4f df %d cfi.scaled %.4f rmsea.scaled %.4f\n",
              est, s, f$chisq, f$chisq.scaled, as.integer(f$df), f$cfi.scaled, f$rmsea.scaled))
}
