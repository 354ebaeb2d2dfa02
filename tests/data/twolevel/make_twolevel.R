#!/usr/bin/env Rscript
# lavaan references for the two-level CFA (issue 17 part 3) on balanced.csv (150 patients x 6
# sessions) and unbalanced.csv (150 patients, 2-8 sessions), made by make_data.py.
# Models: three correlated within factors (level: 1) and either the same three factors
# ("same") or one general factor ("one") at level: 2; "onelevel" adds the within-only x_w
# (level 1 only) and the between-only z_b (level 2 only); cfa(model, data, cluster = "patient",
# estimator = "ML" | "MLR"), lavaan's defaults otherwise. Saved per case: the options that
# matter (information, se, test), parTable() of the fit (with level/block), parameterEstimates(),
# standardizedSolution() (std.all), fitMeasures(), the h1 (saturated two-level) and implied
# moments per level, and the median time of 3 fits (seconds). One case with std.lv = TRUE.
# Run from the repository root:  Rscript tests/data/twolevel/make_twolevel.R  (tests never call R)
suppressPackageStartupMessages({
  library(lavaan)
  library(jsonlite)
})
here <- "tests/data/twolevel"
within <- "level: 1
task_w =~ wai_01 + wai_02 + wai_10 + wai_12
goal_w =~ wai_04 + wai_06 + wai_08 + wai_11
bond_w =~ wai_03 + wai_05 + wai_07 + wai_09
"
models <- list(
  same = paste0(within, "level: 2
task_b =~ wai_01 + wai_02 + wai_10 + wai_12
goal_b =~ wai_04 + wai_06 + wai_08 + wai_11
bond_b =~ wai_03 + wai_05 + wai_07 + wai_09
"),
  one = paste0(within, "level: 2
general_b =~ wai_01 + wai_02 + wai_03 + wai_04 + wai_05 + wai_06 + wai_07 + wai_08 + wai_09 + wai_10 + wai_11 + wai_12
"),
  # x_w only at level 1 (within-only), z_b only at level 2 (between-only)
  onelevel = "level: 1
task_w =~ wai_01 + wai_02 + wai_10 + wai_12 + x_w
goal_w =~ wai_04 + wai_06 + wai_08 + wai_11
bond_w =~ wai_03 + wai_05 + wai_07 + wai_09
level: 2
general_b =~ wai_01 + wai_02 + wai_03 + wai_04 + wai_05 + wai_06 + wai_07 + wai_08 + wai_09 + wai_10 + wai_11 + wai_12 + z_b
")
mats <- function(x) lapply(x, function(m) if (is.null(m)) NULL else unclass(as.matrix(m)))
run <- function(file, model, estimator, std.lv = FALSE) {
  d <- read.csv(file.path(here, file))
  times <- numeric(3)
  for (k in 1:3) {
    times[k] <- system.time(f <- cfa(models[[model]], data = d, cluster = "patient",
                                     estimator = estimator, std.lv = std.lv))[["elapsed"]]
  }
  ss <- standardizedSolution(f, type = "std.all")
  opt <- lavInspect(f, "options")
  pe <- parameterEstimates(f, remove.nonfree = FALSE)
  h1 <- lavInspect(f, "h1")
  imp <- lavInspect(f, "implied")
  list(file = file, model = model, estimator = estimator, std.lv = std.lv,
       syntax = models[[model]],
       lavaan_version = as.character(packageVersion("lavaan")),
       options = list(information = opt$information, se = opt$se, test = opt$test,
                      observed.information = opt$observed.information,
                      h1.information = opt$h1.information),
       converged = lavInspect(f, "converged"), nobs = lavInspect(f, "nobs"),
       nclusters = lavInspect(f, "nclusters"),
       partable = as.data.frame(parTable(f)),
       parameters = pe[, intersect(c("lhs", "op", "rhs", "block", "level", "label", "est",
                                     "se", "z", "pvalue"), names(pe))],
       standardized = ss[, intersect(c("lhs", "op", "rhs", "block", "level", "est.std", "se"),
                                     names(ss))],
       fit = as.list(fitMeasures(f)),
       h1 = lapply(h1, mats), implied = lapply(imp, mats),
       seconds = median(times), seconds_all = times)
}
cases <- list(
  balanced_ml_same = run("balanced.csv", "same", "ML"),
  balanced_ml_one = run("balanced.csv", "one", "ML"),
  unbalanced_ml_same = run("unbalanced.csv", "same", "ML"),
  unbalanced_ml_one = run("unbalanced.csv", "one", "ML"),
  balanced_mlr_same = run("balanced.csv", "same", "MLR"),
  unbalanced_mlr_one = run("unbalanced.csv", "one", "MLR"),
  unbalanced_ml_same_stdlv = run("unbalanced.csv", "same", "ML", std.lv = TRUE),
  unbalanced_ml_onelevel = run("unbalanced.csv", "onelevel", "ML"),
  unbalanced_mlr_onelevel = run("unbalanced.csv", "onelevel", "MLR"))
writeLines(toJSON(cases, auto_unbox = TRUE, digits = NA, pretty = FALSE, na = "null"),
           file.path(here, "lavaan_twolevel.json"))
