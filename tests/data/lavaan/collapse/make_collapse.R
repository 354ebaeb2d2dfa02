#!/usr/bin/env Rscript
# lavaan 0.6-14 references for WLSMV with categories that are empty in some group (issue 6).
# make_data.py writes each case raw and collapsed (empty categories merged with an adjacent
# one in every group by alliance.sem.categories.collapse_empty_categories). Here lavaan is
# run on the raw data (where it stops: the error message is recorded) and on the collapsed
# data: the invariance ladder (configural, metric, scalar; delta parameterization, lavaan's
# defaults for group.equal) across site for wai_empty and across dataset for sites5_empty
# (pairwise missing, as the workflow), also with parameterization = "theta" up to strict for
# sites5_empty; a single-group fit with listwise deletion for wai_listwise_empty.
# Run from the repository root:  Rscript tests/data/lavaan/collapse/make_collapse.R
# (tests never call R)
suppressPackageStartupMessages({
  library(lavaan)
  library(jsonlite)
})
here <- "tests/data/lavaan/collapse"
items <- sprintf("wai_%02d", 1:12)
model <- paste(readLines("tests/data/lavaan/wai_sr_sim/wai_sr.lav", warn = FALSE),
               collapse = "\n")
steps <- list(configural = "", metric = "loadings",
              scalar = c("loadings", "intercepts", "thresholds"),
              strict = c("loadings", "intercepts", "thresholds", "residuals"))
keep <- c("npar", "chisq", "df", "pvalue", "chisq.scaled", "df.scaled", "pvalue.scaled",
          "chisq.scaling.factor", "cfi", "tli", "rmsea", "cfi.scaled", "tli.scaled",
          "rmsea.scaled", "cfi.robust", "rmsea.robust", "srmr")
block <- function(fit) {
  fm <- fitMeasures(fit)
  list(converged = lavInspect(fit, "converged"), nobs = lavInspect(fit, "nobs"),
       fit = as.list(fm[intersect(keep, names(fm))]),
       nthresholds = sum(parTable(fit)$op == "|" & parTable(fit)$group == 1))
}
lrt <- function(fits) {
  t <- as.data.frame(do.call(lavTestLRT, c(unname(fits), list(model.names = names(fits)))))
  t <- cbind(model = rownames(t), t)
  names(t) <- sub("^Pr\\(>Chisq\\)$", "Pr_gt_Chisq", gsub(" ", "_", names(t)))
  rownames(t) <- NULL
  t
}
raw_error <- function(dat, group, missing) {
  res <- tryCatch({
    cfa(model, data = dat, group = group, ordered = items, estimator = "WLSMV",
        missing = missing)
    "no error"
  }, error = function(e) conditionMessage(e))
  res
}
ladder <- function(dat, group, missing, parameterization, which) {
  fits <- lapply(steps[which], function(ge) {
    cfa(model, data = dat, group = group, ordered = items, estimator = "WLSMV",
        missing = missing, parameterization = parameterization, group.equal = ge)
  })
  res <- lapply(fits, block)
  res$lrt <- lrt(fits)
  res
}
read <- function(name) read.csv(file.path(here, name))
three <- c("configural", "metric", "scalar")
out <- list(
  software = paste("lavaan", packageVersion("lavaan")),
  wai_empty = list(
    raw_error = raw_error(read("wai_empty.csv"), "site", "listwise"),
    delta = ladder(read("wai_empty_collapsed.csv"), "site", "listwise", "delta", three)),
  sites5_empty = list(
    raw_error = raw_error(read("sites5_empty.csv"), "dataset", "pairwise"),
    delta = ladder(read("sites5_empty_collapsed.csv"), "dataset", "pairwise", "delta", three),
    theta = ladder(read("sites5_empty_collapsed.csv"), "dataset", "pairwise", "theta",
                   names(steps))),
  wai_listwise_empty = list(
    raw_error = tryCatch({
      cfa(model, data = read("wai_listwise_empty.csv"), ordered = items,
          estimator = "WLSMV", missing = "listwise")
      "no error"
    }, error = function(e) conditionMessage(e)),
    single = block(cfa(model, data = read("wai_listwise_empty_collapsed.csv"),
                       ordered = items, estimator = "WLSMV", missing = "listwise")))
)
writeLines(toJSON(out, auto_unbox = TRUE, digits = I(12), na = "null", dataframe = "rows"),
           file.path(here, "lavaan_collapse.json"))
cat("wrote lavaan_collapse.json\n")
