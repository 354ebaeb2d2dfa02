#!/usr/bin/env Rscript
# lavaan 0.6-14 references for the RI-CLPM (issue 20), on panel_long.csv (make_data.py).
# The model is written here independently of alliance.sem.panel, as Mulder & Hamaker (2021)
# write it for lavaan() (which adds no parameter of its own): random intercepts RIx, RIy with
# loadings 1; within components wx_t =~ 1*x_t with the observed residual variances 0 (lavaan()
# adds none); lagged regressions free per wave (labels ax_t, ay_t, cxy_t, cyx_t) or equal over
# the waves (labels ax, ay, cxy, cyx); covariances of the wave-1 components and of the
# innovations; RI variances and covariance; free intercepts (int.ov.free = TRUE). The
# detrended model holds the intercepts on a line by equality constraints on labelled
# intercepts (mx_t == mx_1 + (t - 1) (mx_2 - mx_1)); the engine writes the same model with a
# slope factor of variance 0, so the two agree on fit and lags, not on the parameter rows.
# Cases: ML and MLR with FIML (missing = "ml"), free and equal lags; ML detrended (FIML); ML
# listwise. Tests: lavTestWald of equal lags on the free models, lavTestLRT free vs equal.
# Run from the repository root:  Rscript tests/data/lavaan/riclpm/make_riclpm.R
# (tests never call R)
suppressPackageStartupMessages({
  library(lavaan)
  library(jsonlite)
})
here <- "tests/data/lavaan/riclpm"
long <- read.csv(file.path(here, "panel_long.csv"), stringsAsFactors = FALSE)
names(long)[names(long) == "alliance"] <- "x"
names(long)[names(long) == "symptoms"] <- "y"
wide <- reshape(long, idvar = "patient", timevar = "session", direction = "wide", sep = "")
waves <- 1:5
wide <- wide[, c("patient", paste0("x", waves), paste0("y", waves))]

riclpm <- function(equal = FALSE, detrend = FALSE) {
  w <- waves
  s <- function(t) if (equal) "" else t
  lines <- c(
    paste("RIx =~", paste0("1*x", w, collapse = " + ")),
    paste("RIy =~", paste0("1*y", w, collapse = " + ")),
    paste0("wx", w, " =~ 1*x", w),
    paste0("wy", w, " =~ 1*y", w))
  for (t in w[-1]) {
    lines <- c(lines,
      sprintf("wx%d ~ ax%s*wx%d + cyx%s*wy%d", t, s(t), t - 1, s(t), t - 1),
      sprintf("wy%d ~ cxy%s*wx%d + ay%s*wy%d", t, s(t), t - 1, s(t), t - 1))
  }
  lines <- c(lines, paste0("wx", w, " ~~ wy", w), paste0("wx", w, " ~~ wx", w),
             paste0("wy", w, " ~~ wy", w), "RIx ~~ RIx", "RIy ~~ RIy", "RIx ~~ RIy")
  if (detrend) {
    lines <- c(lines, paste0("x", w, " ~ mx", w, "*1"), paste0("y", w, " ~ my", w, "*1"))
    for (t in w[-(1:2)]) {
      lines <- c(lines, sprintf("mx%d == mx1 + %d*(mx2 - mx1)", t, t - 1),
                 sprintf("my%d == my1 + %d*(my2 - my1)", t, t - 1))
    }
  }
  paste(lines, collapse = "\n")
}
fit <- function(model, estimator = "ML", missing = "ml") {
  lavaan(model, data = wide, estimator = estimator, missing = missing,
         meanstructure = TRUE, int.ov.free = TRUE)
}
pe <- function(f) {
  p <- parameterEstimates(f, remove.nonfree = FALSE)
  p[, intersect(c("lhs", "op", "rhs", "label", "est", "se", "z", "pvalue", "ci.lower",
                  "ci.upper"), names(p))]
}
std <- function(f) {
  s <- standardizedSolution(f, type = "std.all")
  s[, intersect(c("lhs", "op", "rhs", "est.std", "se", "ci.lower", "ci.upper"), names(s))]
}
block <- function(f, model) list(
  model = model, converged = lavInspect(f, "converged"), nobs = lavInspect(f, "nobs"),
  fit = as.list(fitMeasures(f)), parameters = pe(f), standardized = std(f),
  implied_mean = as.list(lavInspect(f, "implied")$mean))
lrt <- function(...) {
  t <- as.data.frame(lavTestLRT(...)); t <- cbind(model = rownames(t), t)
  names(t) <- sub("^Pr\\(>Chisq\\)$", "Pr_gt_Chisq", gsub(" ", "_", names(t)))
  rownames(t) <- NULL
  t
}
constraints <- unlist(lapply(c("ax", "ay", "cxy", "cyx"), function(e)
  sprintf("%s%d == %s%d", e, waves[2:4], e, waves[3:5])))

cases <- list(); wald <- list(); tests <- list()
for (est in c("ML", "MLR")) {
  free <- fit(riclpm(), est); equal <- fit(riclpm(equal = TRUE), est)
  key <- tolower(est)
  cases[[paste0(key, "_fiml_free")]] <- block(free, riclpm())
  cases[[paste0(key, "_fiml_equal")]] <- block(equal, riclpm(equal = TRUE))
  w <- lavTestWald(free, constraints = paste(constraints, collapse = "\n"))
  wald[[key]] <- list(stat = w$stat, df = w$df, pvalue = w$p.value, se = w$se)
  tests[[key]] <- lrt(free, equal, model.names = c("free_lags", "equal_lags"))
}
cases$ml_fiml_detrend <- block(fit(riclpm(detrend = TRUE)), riclpm(detrend = TRUE))
cases$ml_listwise_free <- block(fit(riclpm(), "ML", "listwise"), riclpm())

out <- list(meta = list(lavaan = as.character(packageVersion("lavaan")),
                        r = R.version.string, data = "panel_long.csv", waves = waves,
                        call = "lavaan(model, data = wide, estimator, missing, meanstructure = TRUE, int.ov.free = TRUE)",
                        wald_constraints = constraints),
            cases = cases, wald = wald, lrt = tests)
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, na = "null", dataframe = "rows",
                  pretty = TRUE), file.path(here, "lavaan_riclpm.json"))
