// CI-sized structure-aware fuzz of every reader (the long run: `npm run fuzz`). Each case must
// load (and then compile and run) or throw a LowbitError within CASE_MS; nothing else passes.
// Complements the byte-level 300-case .lowbit loop in test/lowbit-file.test.ts.
import test from "tape";
import { testRuntime } from "../util/runtime.ts";
import { CASE_MS, describeStats, fuzzReader, READERS } from "./fuzz-readers.ts";
import { createUpscaler } from "../../src/engine/upscaler-api.ts";
import { smallGraph, smallImage } from "./fixtures.ts";
import { Rng } from "../util/rng.ts";
import { loadTfjsModel } from "../../src/io/tfjs/index.ts";
import { LowbitError } from "../../src/runtime/errors.ts";
import { makeTfjsModel } from "./fixtures.ts";

test("fuzz regressions: object-valued fields in model.json are typed errors (were TypeErrors from String(nullProtoObject))", async (t) => {
  const edits: [string, (j: any) => void, string][] = [
    ["weight dtype {}", (j) => (j.weightsManifest[0].weights[0].dtype = {}), "E_MODEL_FORMAT"],
    ["quantization dtype {}", (j) => (j.weightsManifest[0].weights[0].quantization = { dtype: { a: 1 } }), "E_MODEL_FORMAT"],
    ["quantization scale {}", (j) => (j.weightsManifest[0].weights[0].quantization = { dtype: "uint8", scale: {}, min: [] }), "E_MODEL_FORMAT"],
    ["conv padding {}", (j) => (j.modelTopology.model_config.config.layers[1].config.padding = { x: 1 }), "E_UNSUPPORTED_LAYER"],
    ["conv data_format []", (j) => (j.modelTopology.model_config.config.layers[1].config.data_format = [{}]), "E_UNSUPPORTED_LAYER"],
    ["input dtype {}", (j) => (j.modelTopology.model_config.config.layers[0].config.dtype = {}), "E_UNSUPPORTED_LAYER"],
  ];
  for (const [what, edit, code] of edits) {
    const m = makeTfjsModel(new Rng(11));
    edit(m.modelJson);
    await loadTfjsModel(m).then(() => t.fail(`${what}: loaded`), (e) => t.ok(e instanceof LowbitError && e.code === code, `${what}: ${e instanceof LowbitError ? e.message : String(e)}`));
  }
});

const CI_CASES: Record<string, number> = { tfjs: 1500, lowbit: 1500, image: 400 };

for (const reader of READERS) {
  test(`fuzz ${reader}: every mutated input loads or fails with a LowbitError, within ${CASE_MS} ms`, async (t) => {
    const rt = await testRuntime();
    const img = smallImage(new Rng(3), 9, 7, 3);
    const before = await (await createUpscaler(smallGraph(4), { runtime: rt })).upscale(img);
    const blocks = rt.arena.liveBlocks;
    const s = await fuzzReader(reader, rt, CI_CASES[reader], 20240 + reader.length);
    for (const f of s.failures) t.fail(f);
    t.equal(s.failureCount, 0, describeStats(s));
    const errors = Object.entries(s.outcomes).filter(([k]) => k.startsWith("E_")).reduce((a, [, v]) => a + v, 0);
    t.ok(errors > s.cases * 0.2 && errors < s.cases, `both outcomes reached: ${s.cases - errors} accepted, ${errors} typed errors`);
    t.equal(rt.arena.liveBlocks, blocks, "no arena blocks left behind by the fuzz");
    const after = await (await createUpscaler(smallGraph(4), { runtime: rt })).upscale(img);
    t.deepEqual(after.data, before.data, "the runtime computes the same bytes after the fuzz");
  });
}
