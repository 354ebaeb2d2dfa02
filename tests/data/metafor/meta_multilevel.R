#!/usr/bin/env Rscript
# metafor / clubSandwich references for the three-level model, cluster-robust inference,
# publication-bias methods and multi-moderator meta-regression (tests/test_meta_multilevel.py,
# tests/test_meta_bias.py, tests/test_meta_robust.py).
#
# Usage (from this folder): Rscript meta_multilevel.R
# Writes konstantopoulos2011.csv (metadat::dat.konstantopoulos2011: 56 standardized mean
# differences in 11 districts, columns district, school, study, year, yi, vi) and
# metafor_multilevel.json. molloy2014_moderators.csv (written by meta_extra.R) is the
# two-level data set. Each reference is computed twice where an optimizer or root finder has
# a tolerance: with metafor's defaults ("default") and with tightened tolerances ("tight"), so
# the tests can check the exact optimum tightly and the default run with the tolerance its
# stopping rule allows.
suppressPackageStartupMessages({
  library(metafor)
  library(clubSandwich)
  library(jsonlite)
})
num <- function(x) as.numeric(x)
one <- function(x) as.numeric(x)[1]

# ---------------------------------------------------------------- data
k11 <- metadat::dat.konstantopoulos2011
k11 <- data.frame(district = k11$district, school = k11$school, study = k11$study,
                  year = k11$year, yi = k11$yi, vi = k11$vi)
write.csv(k11, "konstantopoulos2011.csv", row.names = FALSE)

mol <- read.csv("molloy2014_moderators.csv")
es <- escalc(measure = "ZCOR", ri = mol$r, ni = mol$n)
mol$yi <- as.numeric(es$yi)
mol$vi <- as.numeric(es$vi)

# ---------------------------------------------------------------- helpers
coefs <- function(res) {
  data.frame(term = rownames(res$beta), estimate = num(res$beta), se = num(res$se),
             statistic = num(res$zval), pval = num(res$pval), ci.lb = num(res$ci.lb),
             ci.ub = num(res$ci.ub))
}

# I2 per level for rma.mv: the formula of metafor's website ("I^2 for multilevel and
# multivariate models", Viechtbauer): typical sampling variance (k - p) / tr(P) with
# P = W - W X (X'WX)^-1 X'W, W = diag(1 / vi); for an intercept-only model it is Higgins &
# Thompson's typical variance, so these equal Cheung's (2014) level-2 / level-3 I2.
i2_levels <- function(res) {
  W <- diag(1 / res$vi)
  X <- model.matrix(res)
  P <- W - W %*% X %*% solve(t(X) %*% W %*% X) %*% t(X) %*% W
  vt <- (res$k - res$p) / sum(diag(P))
  total <- sum(res$sigma2) + vt
  list(typical_vi = vt, I2_total = 100 * sum(res$sigma2) / total,
       I2 = 100 * res$sigma2 / total)
}

mv_summary <- function(res) {
  out <- list(k = res$k, p = res$p, test = res$test, coefficients = coefs(res),
              sigma2 = num(res$sigma2), s_nlevels = num(res$s.nlevels),
              logLik = one(logLik(res)), QE = one(res$QE), QE_df = res$k - res$p,
              QE_pval = one(res$QEp), QM = one(res$QM), QM_df = num(res$QMdf),
              QM_pval = one(res$QMp))
  out$ddf <- num(res$ddf)
  c(out, i2_levels(res))
}

profile_ci <- function(res, control = list()) {
  lapply(seq_along(res$sigma2), function(j) {
    ci <- confint(res, sigma2 = j, control = control)$random
    list(estimate = unname(ci[1, "estimate"]), ci.lb = unname(ci[1, "ci.lb"]),
         ci.ub = unname(ci[1, "ci.ub"]))
  })
}

robust_summary <- function(res, cluster = NULL) {
  ct <- if (is.null(cluster)) coef_test(res, vcov = "CR2") else
    coef_test(res, vcov = "CR2", cluster = cluster)
  data.frame(term = ct$Coef, estimate = num(ct$beta), se = num(ct$SE),
             statistic = num(ct$tstat), df = num(ct$df_Satt), pval = num(ct$p_Satt))
}

# ---------------------------------------------------------------- three-level model
three <- rma.mv(yi, vi, random = ~ 1 | district/school, data = k11, method = "REML")
three_t <- rma.mv(yi, vi, random = ~ 1 | district/school, data = k11, method = "REML",
                  control = list(rel.tol = 1e-12, iter.max = 10000, eval.max = 10000))
three_year <- rma.mv(yi, vi, mods = ~ year, random = ~ 1 | district/school, data = k11,
                     method = "REML", test = "t")
three_pet <- rma.mv(yi, vi, mods = ~ sqrt(vi), random = ~ 1 | district/school, data = k11,
                    method = "REML")
three_peese <- rma.mv(yi, vi, mods = ~ vi, random = ~ 1 | district/school, data = k11,
                      method = "REML")

three_out <- list(
  default = mv_summary(three),
  tight = mv_summary(three_t),
  profile_ci = profile_ci(three_t, control = list(tol = 1e-8)),
  profile_ci_default = profile_ci(three),
  robust = robust_summary(three_t),
  moderators = c(mv_summary(three_year),
                 list(R2 = max(0, 100 * (sum(three$sigma2) - sum(three_year$sigma2)) /
                                   sum(three$sigma2)),
                      robust = robust_summary(three_year))),
  pet = mv_summary(three_pet),
  peese = mv_summary(three_peese)
)

# ---------------------------------------------------------------- two-level (molloy2014)
uni <- rma(yi, vi, data = mol, method = "REML")
uni_robust <- robust_summary(uni, cluster = mol$study)
uni_mods <- rma(yi, vi, mods = ~ meanage + controls, data = mol, method = "REML",
                test = "knha")
uni_mods_out <- list(
  k = uni_mods$k, p = uni_mods$p, coefficients = coefs(uni_mods), ddf = num(uni_mods$ddf),
  QM = one(uni_mods$QM), QM_df = num(uni_mods$QMdf), QM_pval = one(uni_mods$QMp),
  QE = one(uni_mods$QE), QE_df = uni_mods$k - uni_mods$p, QE_pval = one(uni_mods$QEp),
  tau2 = one(uni_mods$tau2), s2w = one(uni_mods$s2w), R2 = one(uni_mods$R2),
  robust = robust_summary(uni_mods, cluster = mol$study))

bias <- function(res, dat) {
  rt <- regtest(res)
  pet <- rma(yi, vi, mods = ~ sqrt(vi), data = dat, method = res$method)
  peese <- rma(yi, vi, mods = ~ vi, data = dat, method = res$method)
  tf <- trimfill(res)
  tf_filled <- data.frame(yi = num(tf$yi)[tf$fill], vi = num(tf$vi)[tf$fill])
  sel <- function(type, steps = NULL, tight = FALSE) {
    ctrl <- if (tight) list(reltol = 1e-12, maxit = 10000) else list()
    s <- if (is.null(steps)) selmodel(res, type = type, control = ctrl) else
      selmodel(res, type = type, steps = steps, control = ctrl)
    list(type = type, steps = if (is.null(steps)) NULL else num(steps),
         estimate = one(s$beta), se = one(s$se), zval = one(s$zval), pval = one(s$pval),
         tau2 = one(s$tau2), se.tau2 = one(s$se.tau2), delta = num(s$delta),
         se.delta = num(s$se.delta), logLik = one(s$ll), logLik0 = one(s$ll0),
         LRT = one(s$LRT), LRT_df = one(s$LRTdf), lrt_pvalue = one(s$LRTp))
  }
  list(
    egger = list(z = one(rt$zval), pvalue = one(rt$pval)),
    pet = list(estimate = one(pet$beta[1]), se = one(pet$se[1]), slope = one(pet$beta[2]),
               tau2 = one(pet$tau2)),
    peese = list(estimate = one(peese$beta[1]), se = one(peese$se[1]),
                 slope = one(peese$beta[2]), tau2 = one(peese$tau2)),
    trimfill = list(k0 = tf$k0, side = tf$side, se.k0 = one(tf$se.k0),
                    estimate = one(tf$beta), se = one(tf$se), tau2 = one(tf$tau2),
                    filled = tf_filled),
    step = sel("stepfun", c(0.025, 1)),
    step_tight = sel("stepfun", c(0.025, 1), tight = TRUE),
    beta = sel("beta"),
    beta_tight = sel("beta", tight = TRUE)
  )
}

k11_uni <- rma(yi, vi, data = k11, method = "REML")

out <- list(
  meta = list(script = "meta_multilevel.R", R_version = R.version.string,
              metafor_version = as.character(packageVersion("metafor")),
              clubSandwich_version = as.character(packageVersion("clubSandwich")),
              numDeriv_version = as.character(packageVersion("numDeriv")),
              input = paste("konstantopoulos2011.csv (metadat::dat.konstantopoulos2011),",
                            "molloy2014_moderators.csv (metadat::dat.molloy2014; Fisher z)")),
  three_level = three_out,
  two_level = list(
    robust = uni_robust,
    moderators = uni_mods_out,
    bias_molloy = bias(uni, mol),
    bias_konstantopoulos = bias(k11_uni, k11)
  )
)
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, na = "null", null = "null",
                  dataframe = "rows", pretty = TRUE), "metafor_multilevel.json")
cat("wrote metafor_multilevel.json\n")
