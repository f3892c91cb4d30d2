/**
 * Pruning methods: N:M structured sparsity (magnitude one-shot, SLS's learned per-layer N) and
 * structural filter pruning (BN-based, data-driven, L1). Specs: shared/methods/sls-nm-sparsity.md,
 * bn-filter-pruning.md.
 */
export { parsePattern, checkPattern, groupRanks, nmMask, applyNm, satisfiesNm, keptPerColumn, nmEligible, graphMacs, sparsifyGraph, oneShotNm } from "./nm-mask.ts";
export type { NMPattern, LayerMacs, GraphMacs } from "./nm-mask.ts";
export { slsPrune, slsN, slsProbs, slsScoreGrad } from "./sls.ts";
export type { SlsOptions, SlsResult, SlsProgress } from "./sls.ts";
export { analyzeChannels, classScores, filterPrune, pruneChannels, FILTER_CRITERIA } from "./filter.ts";
export type { FilterCriterion, FilterPruneOptions, FilterPruneResult, ChannelAnalysis, ChannelClass, ChannelGroup } from "./filter.ts";
export { reluMoments, bnChannelScore, normCdf, normPdf, convInputStats, BN_SCORES } from "./criteria.ts";
export type { BnScore, InputStats, StatsOptions } from "./criteria.ts";
