/** Activation quantizers from their serializable specs (model building and .lowbit loading share it). */
import type { DynamicActQuantizer } from "./act-quantizer.ts";
import type { DynamicActSpec } from "./model.ts";
import { DaqActQuantizer } from "../daq/act-quantizer.ts";
import { DfsqActQuantizer } from "../dfsq/act-quantizer.ts";
import { OdmActQuantizer } from "../odm/act-quantizer.ts";
import { AdabmActQuantizer, checkAdabmSpec } from "../adabm/act-quantizer.ts";
import { CadyqActQuantizer } from "../cadyq/act-quantizer.ts";
import { SubsetLUT } from "../../quant/subset-lut.ts";
import { LowbitError } from "../../runtime/errors.ts";

/** Returns a factory: each compiled plan gets its own quantizer (they hold per-image state). */
export function actQuantizerFactory(spec: DynamicActSpec, channels: number): () => DynamicActQuantizer {
  if (spec.kind === "daq") {
    const { bits, stepTable, qq, mode, postRelu, reluMask, stepScale } = spec;
    if (reluMask && reluMask.length !== channels) throw new LowbitError("E_SHAPE", `DAQ branch mask covers ${reluMask.length} channels, the conv reads ${channels}`);
    if (stepScale && stepScale.length !== channels) throw new LowbitError("E_SHAPE", `DAQ step scales cover ${stepScale.length} channels, the conv reads ${channels}`);
    return () => new DaqActQuantizer(channels, postRelu, { bits, stepTable, qq, mode, postRelu, ...(stepScale ? { stepScale } : {}) }, reluMask ?? null);
  }
  if (spec.kind === "adabm") {
    checkAdabmSpec(spec);
    return () => new AdabmActQuantizer(spec, channels);
  }
  if (spec.kind === "cadyq") {
    new CadyqActQuantizer(spec, channels); // validate now, not at compile time
    return () => new CadyqActQuantizer(spec, channels);
  }
  if (spec.kind === "odm") {
    new OdmActQuantizer(spec, channels); // validate now, not at compile time
    return () => new OdmActQuantizer(spec, channels);
  }
  const lut = new SubsetLUT(spec.codebooks, spec.bits, spec.postRelu);
  if (lut.channels !== channels) throw new LowbitError("E_SHAPE", `DFSQ codebooks cover ${lut.channels} channels, the conv reads ${channels}`);
  return () => new DfsqActQuantizer(lut);
}
