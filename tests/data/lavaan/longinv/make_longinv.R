#!/usr/bin/env Rscript
# lavaan 0.6-14 / semTools 0.5-6 references for longitudinal measurement invariance (issue 17
# part 4), on longinv_continuous.csv and longinv_ordinal.csv (make_data.py: 300 patients,
# sessions 1, 3, 6, a row per patient x session, rows of missed sessions absent).
# The long tables are reshaped to one row per patient with the items suffixed by session
# (b1_1, b1_3, b1_6, ...); the longitudinal model of each step is semTools' measEq.syntax()
# with longFacNames (one factor per session: bond_1, bond_3, ...) and its defaults: ID.fac =
# "std.lv" (factor variances 1 and means 0; variances free after the first session once
# loadings are equal, means once intercepts/thresholds are equal), residuals of the same item
# covaried across sessions (auto = "all"); for ordered items ID.cat = "Wu.Estabrook.2016" with
# parameterization = "delta" (scale factors free after the first session once thresholds are
# equal; strict is not defined there: measEq.syntax stops). Steps (long.equal): configural,
# metric (loadings), scalar (+ intercepts; ordered: + thresholds), strict (+ residuals).
# Cases: ML and MLR with FIML (missing = "ml"); WLSMV on the ordinal items with missing =
# "pairwise". lavTestLRT of the steps in order (its default method per estimator).
# Run from the repository root:  Rscript tests/data/lavaan/longinv/make_longinv.R
# (tests never call R)
suppressPackageStartupMessages({
  library(lavaan)
  library(semTools)
  library(jsonlite)
})
here <- "tests/data/lavaan/longinv"
waves <- c(1, 3, 6)
factors <- list(bond = c("b1", "b2", "b3"), task = c("t1", "t2", "t3"))
model <- paste(sapply(names(factors), function(f) paste0(f, " =~ ",
  paste(factors[[f]], collapse = " + "))), collapse = "\n")
long_model <- paste(unlist(lapply(names(factors), function(f) sapply(waves, function(w)
  paste0(f, "_", w, " =~ ", paste0(factors[[f]], "_", w, collapse = " + "))))), collapse = "\n")
fac_names <- lapply(names(factors), function(f) paste0(f, "_", waves))
names(fac_names) <- names(factors)

widen <- function(file) {
  long <- read.csv(file.path(here, file), stringsAsFactors = FALSE)
  wide <- reshape(long, idvar = "patient", timevar = "session", direction = "wide", sep = "_")
  wide[, c("patient", unlist(lapply(waves, function(w) paste0(unlist(factors), "_", w))))]
}
pe <- function(f) {
  p <- parameterEstimates(f, remove.nonfree = FALSE)
  p[, intersect(c("lhs", "op", "rhs", "label", "est", "se", "z", "pvalue"), names(p))]
}
lrt <- function(fits) {
  t <- as.data.frame(do.call(lavTestLRT, c(unname(fits), list(model.names = names(fits)))))
  t <- cbind(model = rownames(t), t)
  names(t) <- sub("^Pr\\(>Chisq\\)$", "Pr_gt_Chisq", gsub(" ", "_", names(t)))
  rownames(t) <- NULL
  t
}
steps_equal <- list(configural = "", metric = "loadings",
                    scalar = c("loadings", "intercepts"),
                    strict = c("loadings", "intercepts", "residuals"))
run <- function(file, estimator, missing, ordered = FALSE) {
  wide <- widen(file)
  ov <- setdiff(names(wide), "patient")
  steps <- if (ordered) steps_equal[1:3] else steps_equal
  if (ordered) steps$scalar <- c("loadings", "thresholds", "intercepts")
  fits <- list(); out <- list()
  for (s in names(steps)) {
    args <- list(configural.model = long_model, data = wide, longFacNames = fac_names,
                 long.equal = steps[[s]])
    if (ordered) args <- c(args, list(ordered = ov, parameterization = "delta",
                                      ID.cat = "Wu.Estabrook.2016"))
    syntax <- as.character(do.call(measEq.syntax, args))
    f <- if (ordered) {
      cfa(syntax, data = wide, ordered = ov, estimator = estimator, missing = missing,
          parameterization = "delta")
    } else {
      cfa(syntax, data = wide, estimator = estimator, missing = missing)
    }
    fits[[s]] <- f
    out[[s]] <- list(long.equal = steps[[s]], syntax = syntax,
                     converged = lavInspect(f, "converged"), nobs = lavInspect(f, "nobs"),
                     fit = as.list(fitMeasures(f)), parameters = pe(f))
  }
  list(steps = out, lrt = lrt(fits))
}
cases <- list(
  ml = run("longinv_continuous.csv", "ML", "ml"),
  mlr = run("longinv_continuous.csv", "MLR", "ml"),
  wlsmv = run("longinv_ordinal.csv", "WLSMV", "pairwise", ordered = TRUE))
out <- list(meta = list(lavaan = as.character(packageVersion("lavaan")),
                        semtools = as.character(packageVersion("semTools")),
                        r = R.version.string, waves = waves, model = model,
                        data = list(ml = "longinv_continuous.csv", mlr = "longinv_continuous.csv",
                                    wlsmv = "longinv_ordinal.csv"),
                        missing = list(ml = "ml", mlr = "ml", wlsmv = "pairwise"),
                        call = paste("cfa(as.character(measEq.syntax(long_model, data = wide,",
                                     "longFacNames, long.equal[, ordered, parameterization =",
                                     "'delta', ID.cat = 'Wu.Estabrook.2016'])), data = wide,",
                                     "estimator, missing[, ordered, parameterization = 'delta'])")),
            cases = cases)
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, na = "null", dataframe = "rows",
                  pretty = TRUE), file.path(here, "lavaan_longinv.json"))
