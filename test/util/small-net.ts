// A small 0–1 SR network and synthetic images for the methods' tests.
import { GraphBuilder } from "../../src/graph/builder.ts";
import type { Graph } from "../../src/graph/ir.ts";
import type { ImageLike } from "../../src/engine/image.ts";
import type { Rng } from "./rng.ts";

/** head conv → ReLU conv → conv + residual add → concat → conv → depth-to-space ×2 (0–1 input). */
export function smallNet(seed = 1): Graph {
  const b = new GraphBuilder({ seed });
  const x = b.input();
  const h = b.conv2d(x, 8, 3, { name: "head" });
  const f1 = b.conv2d(h, 8, 3, { activation: "relu", name: "body1" });
  const f2 = b.conv2d(f1, 8, 3, { name: "body2" });
  const r = b.add(f2, h);
  const c = b.concat(r, f1);
  const f3 = b.conv2d(c, 12, 3, { name: "body3" });
  return b.build(b.depthToSpace(f3, 2), { inputRange: [0, 1] });
}

/** Smooth content plus noise: channel statistics differ between images. */
export function randomImage(rng: Rng, w: number, h: number): ImageLike {
  const data = new Uint8Array(w * h * 3);
  const fx = 0.05 + 0.3 * rng.next(), fy = 0.05 + 0.3 * rng.next(), base = rng.int(0, 120);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      for (let c = 0; c < 3; c++) data[(y * w + x) * 3 + c] = Math.max(0, Math.min(255, base + 60 * Math.sin(fx * x + c) + 50 * Math.cos(fy * y) + rng.int(0, 40)));
    }
  }
  return { data, width: w, height: h, channels: 3 };
}
