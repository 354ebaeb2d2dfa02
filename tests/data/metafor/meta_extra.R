#!/usr/bin/env Rscript
# Extra metafor references for tests/test_meta.py (beyond metafor_reml.json, made by meta.R).
#
# Usage (from this folder): Rscript meta_extra.R
# Writes molloy2014_moderators.csv (metadat::dat.molloy2014 with moderators; same r and n as
# effects.csv) and metafor_extra.json with: the DL fit, leave1out(), regtest() (model "rma"
# and "lm", predictor "sei"), meta-regressions on a numeric (meanage) and a categorical
# (controls) moderator, and a homogeneous toy data set whose REML tau^2 is 0.
suppressPackageStartupMessages({
  library(metafor)
  library(jsonlite)
})
num <- function(x) as.numeric(x)[1]

d <- metadat::dat.molloy2014
mods <- data.frame(study = d$authors, r = d$ri, n = d$ni, year = d$year,
                   controls = as.character(d$controls), design = as.character(d$design),
                   meanage = d$meanage, quality = d$quality)
write.csv(mods, "molloy2014_moderators.csv", row.names = FALSE)

es <- escalc(measure = "ZCOR", ri = mods$r, ni = mods$n)
yi <- as.numeric(es$yi); vi <- as.numeric(es$vi)

fit_summary <- function(res) {
  pz <- predict(res)
  list(method = res$method, k = res$k,
       pooled_z = list(estimate = num(res$b), se = num(res$se), zval = num(res$zval),
                       pval = num(res$pval), ci.lb = num(res$ci.lb), ci.ub = num(res$ci.ub),
                       pi.lb = num(pz$pi.lb), pi.ub = num(pz$pi.ub)),
       heterogeneity = list(tau2 = num(res$tau2), se.tau2 = num(res$se.tau2),
                            tau = sqrt(num(res$tau2)), I2 = num(res$I2), H2 = num(res$H2),
                            Q = num(res$QE), Q_df = res$k - res$p, Q_pval = num(res$QEp)),
       weight_pct = as.numeric(weights(res)))
}

ci_summary <- function(res) {
  rr <- confint(res)$random
  lapply(setNames(1:4, c("tau2", "tau", "I2", "H2")), function(i)
    list(estimate = unname(rr[i, "estimate"]), ci.lb = unname(rr[i, "ci.lb"]),
         ci.ub = unname(rr[i, "ci.ub"])))
}

reml <- rma(yi, vi, method = "REML")
dl <- rma(yi, vi, method = "DL")

l1 <- leave1out(reml)
loo <- data.frame(study = mods$study, estimate = l1$estimate, se = l1$se, zval = l1$zval,
                  pval = l1$pval, ci.lb = l1$ci.lb, ci.ub = l1$ci.ub, Q = l1$Q, Qp = l1$Qp,
                  tau2 = l1$tau2, I2 = l1$I2, H2 = l1$H2)

egger <- function(model) {
  rt <- regtest(reml, model = model, predictor = "sei", ret.fit = TRUE)
  out <- list(model = model, predictor = "sei", statistic = num(rt$zval), pval = num(rt$pval),
              df = if (is.null(rt$dfs) || is.na(rt$dfs)) NULL else num(rt$dfs),
              limit_estimate = num(rt$est), limit_ci.lb = num(rt$ci.lb),
              limit_ci.ub = num(rt$ci.ub))
  if (model == "rma") {
    out$slope <- num(rt$fit$beta[2]); out$slope_se <- num(rt$fit$se[2]); out$tau2 <- num(rt$fit$tau2)
  } else {
    cf <- coef(summary(rt$fit))
    out$slope <- num(cf[2, 1]); out$slope_se <- num(cf[2, 2])
  }
  out
}

metareg <- function(moderator) {
  m <- mods[[moderator]]
  res <- rma(yi, vi, mods = ~ m, method = "REML")
  names_b <- sub("^m", moderator, rownames(res$beta))
  list(moderator = moderator, k = res$k,
       coefficients = data.frame(term = names_b, estimate = as.numeric(res$beta),
                                 se = res$se, zval = res$zval, pval = res$pval,
                                 ci.lb = res$ci.lb, ci.ub = res$ci.ub),
       QM = num(res$QM), QM_df = res$QMdf[1], QM_pval = num(res$QMp),
       QE = num(res$QE), QE_df = res$k - res$p, QE_pval = num(res$QEp),
       tau2 = num(res$tau2), se.tau2 = num(res$se.tau2), I2 = num(res$I2), H2 = num(res$H2),
       R2 = num(res$R2))
}

toy <- data.frame(study = paste("Study", 1:5), r = c(0.20, 0.22, 0.18, 0.21, 0.19),
                  n = c(100, 120, 90, 150, 80))
toy_es <- escalc(measure = "ZCOR", ri = toy$r, ni = toy$n)
toy_fit <- rma(toy_es$yi, toy_es$vi, method = "REML")

out <- list(
  meta = list(script = "meta_extra.R", R_version = R.version.string,
              metafor_version = as.character(packageVersion("metafor")),
              input = "molloy2014_moderators.csv (metadat::dat.molloy2014)"),
  reml = c(fit_summary(reml), list(heterogeneity_ci = ci_summary(reml))),
  dl = c(fit_summary(dl), list(heterogeneity_ci = ci_summary(dl))),
  leave_one_out = loo,
  egger = list(rma = egger("rma"), lm = egger("lm")),
  meta_regression = list(meanage = metareg("meanage"), controls = metareg("controls")),
  homogeneous = list(effects = toy, fit = c(fit_summary(toy_fit),
                                            list(heterogeneity_ci = ci_summary(toy_fit))))
)
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, na = "null", null = "null",
                  dataframe = "rows", pretty = TRUE), "metafor_extra.json")
cat("wrote metafor_extra.json\n")
