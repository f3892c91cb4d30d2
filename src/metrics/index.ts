// Evaluation metrics and the MATLAB-compatible bicubic resizer (protocol.md). Pure TypeScript on
// pixel buffers, no Node APIs, so the public index can re-export it for browsers too.
// Node-only companions, imported by path: ../io/image.ts (PNG/JPEG files) and ./evalset.ts
// (hr/ + lr_xS/ directories).
export { type PixelArray, type ImageView, type ImageU8, checkImage, rgbToY, toUint8, roundU8 } from "./color.ts";
export { msePlane, psnrFromMse, psnrPlane, psnrY, psnrRgb } from "./psnr.ts";
export { SSIM_WINDOW, SSIM_SIGMA, SSIM_K1, SSIM_K2, SSIM_L, gaussianWindow1d, ssimPlane, ssimY } from "./ssim.ts";
export {
  type Contributions,
  type ResizeSpec,
  type ImageF64,
  cubic,
  contributions,
  imresize,
  imresizeFloat,
  imresizePlane,
  bicubicDown,
  bicubicUp,
} from "./bicubic.ts";
export { type SrScores, scoreSR, meanScores } from "./score.ts";
