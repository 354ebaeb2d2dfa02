#!/usr/bin/env Rscript
# eRm 1.0-2 references for the Rasch partial credit model (issue 18), on pcm_items.csv and
# pcm_items_missing.csv (make_data.py). Answers 1-5 are recoded 0-4 (eRm's categories start
# at 0). PCM() by conditional ML with eRm's default normalisation (sum0 = TRUE); betapar and
# their SEs; thresholds() (the threshold table: location and thresholds per item, with SEs);
# person.parameter() (ML per raw score, extreme scores interpolated); itemfit() (outfit and
# infit mean squares and their standardised t). Item fit and person parameters only for the
# complete data (eRm's itemfit with missing answers sums variances over persons who did not
# answer). Run from the repository root:  Rscript tests/data/erm/make_erm.R
# (tests never call R)
suppressPackageStartupMessages({
  library(eRm)
  library(jsonlite)
})
here <- "tests/data/erm"

reference <- function(file, persons = TRUE) {
  x <- as.matrix(read.csv(file.path(here, file))) - 1
  fit <- PCM(x, se = TRUE, sum0 = TRUE)
  th <- thresholds(fit)
  tab <- th$threshtable[[1]]
  out <- list(
    file = file,
    loglik = fit$loglik,
    npar = fit$npar,
    betapar = unname(fit$betapar),
    se_beta = unname(fit$se.beta),
    beta_names = names(fit$betapar),
    threshpar = unname(th$threshpar),
    se_thresh = unname(th$se.thresh),
    location = unname(tab[, "Location"]),
    items = rownames(tab)
  )
  if (persons) {
    pp <- person.parameter(fit)
    theta <- coef(pp)  # every person, extreme scores interpolated
    raw <- rowSums(x, na.rm = TRUE)
    se <- pp$se.theta[[1]]
    out$person <- list(
      raw_score = unname(raw),
      theta = unname(theta),
      se_by_person = unname(se[match(names(theta), names(se))]),
      excluded = seq_len(nrow(x)) %in% pp$pers.ex
    )
    fitx <- itemfit(pp)
    out$itemfit <- list(
      outfit_msq = unname(fitx$i.outfitMSQ),
      infit_msq = unname(fitx$i.infitMSQ),
      outfit_t = unname(fitx$i.outfitZ),
      infit_t = unname(fitx$i.infitZ),
      df = unname(fitx$i.df)
    )
  }
  out
}

result <- list(
  eRm = as.character(packageVersion("eRm")),
  R = R.version.string,
  complete = reference("pcm_items.csv"),
  missing = reference("pcm_items_missing.csv", persons = FALSE)
)
write_json(result, file.path(here, "erm_pcm.json"), digits = NA, auto_unbox = TRUE,
           pretty = TRUE)
