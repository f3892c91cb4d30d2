import { LowbitError } from "../runtime/errors.ts";
import { checkImage, rgbToY, type ImageView } from "./color.ts";
import { checkShave, psnrPlane, psnrRgb } from "./psnr.ts";
import { SSIM_WINDOW, ssimPlane } from "./ssim.ts";

/** The protocol's numbers for one SR output against its HR (protocol.md §4–5, §7). */
export interface SrScores {
  /** Primary: PSNR on unrounded BT.601 Y, `shave` px cut per side (shave = scale). */
  psnrY: number;
  /** Primary: Wang 2004 SSIM on the same Y. */
  ssimY: number;
  /** Secondary: PSNR over R, G, B with the same shave. */
  psnrRgb: number;
}

/**
 * Scores an SR image against its HR with one Y conversion for both metrics. Score the uint8
 * output (protocol §3): round model output with `toUint8` first.
 */
export function scoreSR(sr: ImageView, hr: ImageView, shave: number): SrScores {
  checkImage(sr, "sr");
  checkImage(hr, "hr");
  if (sr.width !== hr.width || sr.height !== hr.height || sr.channels !== hr.channels) {
    throw new LowbitError(
      "E_SHAPE",
      `sr ${sr.width}×${sr.height}×${sr.channels} and hr ${hr.width}×${hr.height}×${hr.channels} differ`,
    );
  }
  checkShave(shave, hr.width, hr.height, SSIM_WINDOW);
  const ys = rgbToY(null, sr);
  const yh = rgbToY(null, hr);
  return {
    psnrY: psnrPlane(ys, yh, hr.width, hr.height, shave),
    ssimY: ssimPlane(ys, yh, hr.width, hr.height, shave),
    psnrRgb: psnrRgb(sr, hr, shave),
  };
}

/** Set score: the arithmetic mean of per-image values (BasicSR / EDSR tables), per field. */
export function meanScores(scores: readonly SrScores[]): SrScores {
  if (scores.length === 0) throw new LowbitError("E_ARGUMENT", "meanScores needs at least one score");
  const m = { psnrY: 0, ssimY: 0, psnrRgb: 0 };
  for (const s of scores) {
    m.psnrY += s.psnrY;
    m.ssimY += s.ssimY;
    m.psnrRgb += s.psnrRgb;
  }
  return { psnrY: m.psnrY / scores.length, ssimY: m.ssimY / scores.length, psnrRgb: m.psnrRgb / scores.length };
}
