import test from "tape";
import { Rng } from "../util/rng.ts";
import { testRuntime } from "../util/runtime.ts";
import { depthToSpace, depthToSpaceAt } from "../../src/kernels/depth-to-space.ts";
import { depthToSpaceRef } from "../../src/kernels/ref/depth-to-space.ts";
import { CHANNELS, firstDiff, throwsCode } from "./_elem-helpers.ts";

test("depth-to-space: TF DCR order on a hand example", async (t) => {
  const rt = await testRuntime();
  // 1×1 pixel, C = 1, b = 2: channels [a b c d] → [[a b], [c d]]
  const out = new Float32Array(4);
  depthToSpace(out, Float32Array.of(1, 2, 3, 4), { height: 1, width: 1, channels: 1 }, 2, rt);
  t.deepEqual([...out], [1, 2, 3, 4], "row-major 2×2");
  // 1×2 pixels, C = 2, b = 2: in[0,w,(i·2+j)·2+ch]
  const x = Uint8Array.from({ length: 16 }, (_, i) => i);
  const y = new Uint8Array(16);
  depthToSpace(y, x, { height: 1, width: 2, channels: 2 }, 2, rt);
  // out row 0: (w0,j0)=ch0,1 (w0,j1)=ch2,3 (w1,j0)=8,9 (w1,j1)=10,11; row 1: 4,5,6,7,12,13,14,15
  t.deepEqual([...y], [0, 1, 2, 3, 8, 9, 10, 11, 4, 5, 6, 7, 12, 13, 14, 15], "two pixels, two channels");
});

test("depth-to-space: WASM = reference (u8/i8/f32, blocks 1..8, strides, odd channels)", async (t) => {
  const rt = await testRuntime();
  const rng = new Rng(404);
  let bad = 0, cases = 0;
  for (let k = 0; k < 250; k++) {
    const b = rng.pick([1, 2, 2, 3, 4, 8]);
    const c = rng.pick(CHANNELS.filter((v) => v * b * b <= 1024));
    const h = rng.int(1, 6), w = rng.int(1, 6);
    const cin = c * b * b;
    const xs = cin + (rng.next() < 0.3 ? rng.int(1, 5) : 0), ys = c + (rng.next() < 0.3 ? rng.int(1, 5) : 0);
    const kind = rng.pick(["u8", "i8", "f32"] as const);
    const T = kind === "u8" ? Uint8Array : kind === "i8" ? Int8Array : Float32Array;
    const x = new T((h * w - 1) * xs + cin);
    for (let i = 0; i < x.length; i++) x[i] = kind === "f32" ? rng.normal() : rng.int(kind === "i8" ? -128 : 0, kind === "i8" ? 127 : 255);
    const yl = (h * w * b * b - 1) * ys + c;
    const got = new T(yl).fill(7), want = new T(yl).fill(7);
    depthToSpace(got, x, { height: h, width: w, channels: c, inStride: xs, outStride: ys }, b, rt);
    depthToSpaceRef(want, x, h, w, c, b, xs, ys);
    cases++;
    const d = firstDiff(got, want);
    if (d >= 0 && ++bad < 4) t.fail(`case ${k} ${kind} b=${b} c=${c} ${h}x${w} xs=${xs} ys=${ys}: at ${d}`);
  }
  t.equal(bad, 0, `${cases} cases exact`);
});

test("depth-to-space: bad arguments throw LowbitError", async (t) => {
  const rt = await testRuntime();
  throwsCode(t, () => depthToSpace(new Uint8Array(16), new Float32Array(16) as unknown as Uint8Array, { height: 2, width: 2, channels: 1 }, 2, rt), "E_ARGUMENT", "mixed types");
  throwsCode(t, () => depthToSpace(new Uint8Array(16), new Uint8Array(15), { height: 2, width: 2, channels: 1 }, 2, rt), "E_SHAPE", "short input");
  throwsCode(t, () => depthToSpace(new Uint8Array(15), new Uint8Array(16), { height: 2, width: 2, channels: 1 }, 2, rt), "E_SHAPE", "short output");
  throwsCode(t, () => depthToSpace(new Uint8Array(16), new Uint8Array(16), { height: 2, width: 2, channels: 1 }, 0, rt), "E_ARGUMENT", "block 0");
  throwsCode(t, () => depthToSpace(new Uint8Array(16), new Uint8Array(16), { height: 2, width: 2, channels: 1, inStride: 3 }, 2, rt), "E_SHAPE", "input stride < C·b²");
  throwsCode(t, () => depthToSpaceAt(rt, { x: 1, y: 0, height: 1, width: 1, channels: 1, block: 2, elemBytes: 4 }), "E_ARGUMENT", "misaligned f32 offset");
});
