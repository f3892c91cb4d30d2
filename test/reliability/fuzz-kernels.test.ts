// CI-sized differential fuzz of the WASM kernels against their TS references, on the backend
// under test (simd on Node 20, relaxed on Node 22); the long run is `npm run fuzz`.
import test from "tape";
import { testRuntime } from "../util/runtime.ts";
import { fuzzKernel, KERNEL_VARIANTS } from "./fuzz-kernels.ts";

/** Per variant: convs are the expensive ones. */
const CI_CASES = (v: string) => (v.startsWith("qs8-conv") ? 500 : v === "f32-conv" ? 400 : 1500);

test("differential kernel fuzz: WASM = TS reference (integer bit-exact, f32 conv within its stated bound)", async (t) => {
  const rt = await testRuntime();
  for (const v of Object.keys(KERNEL_VARIANTS)) {
    const s = fuzzKernel(v, rt, CI_CASES(v), 0x5eed + v.length);
    for (const f of s.failures) t.fail(f);
    t.equal(s.mismatches + s.errors, 0, `${v} (${s.backend}): ${s.cases} cases in ${s.ms.toFixed(0)} ms, ${s.mismatches} mismatches, ${s.errors} errors`);
  }
});
