// CI-sized differential fuzz of the WASM kernels against their TS references, on the backend
// under test (simd on Node 20, relaxed on Node 22); the long run is `npm run fuzz`.
import test from "tape";
import { testRuntime } from "../util/runtime.ts";
import { fuzzKernel, KERNEL_VARIANTS } from "./fuzz-kernels.ts";

/** Cases per variant in CI: the convs (≈ 1 ms per case) get fewer, the rest 1,500 (the run stays ≈ 10 s per build). */
const HEAVY: Record<string, number> = {
  "f32-conv": 400, "qlut-conv": 400, "qs16-conv-pcs": 400, "subset-codes": 500, "conv-backward-weights": 500, "conv-backward-input": 500,
};
const CI_CASES = (v: string) => (v.startsWith("qs8-conv") ? 500 : HEAVY[v] ?? 1500);

test("differential kernel fuzz: WASM = TS reference (integer bit-exact, float within each kernel's stated bound)", async (t) => {
  const rt = await testRuntime();
  const t0 = performance.now();
  let cases = 0;
  for (const v of Object.keys(KERNEL_VARIANTS)) {
    const s = fuzzKernel(v, rt, CI_CASES(v), 0x5eed + v.length);
    cases += s.cases;
    for (const f of s.failures) t.fail(f);
    t.equal(s.mismatches + s.errors, 0, `${v} (${s.backend}): ${s.cases} cases in ${s.ms.toFixed(0)} ms, ${s.mismatches} mismatches, ${s.errors} errors`);
  }
  t.comment(`${Object.keys(KERNEL_VARIANTS).length} variants, ${cases} cases in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
});
