// Test entry: imports every test module, then prints one closing line
// "N passed, N failed" (assertions). Run as `node --import tsx test/index.ts [--backend relaxed]`.
// Static imports evaluate in order: the reporter attaches before any test registers.
import "./util/report.ts";
import "./runtime.test.ts";
import "./metrics.test.ts";
import "./image-io.test.ts";
import "./io-tfjs.test.ts";
import "./engine.test.ts";
import "./parity-tfjs.test.ts";
import "./quant-engine.test.ts";
import "./lowbit-file.test.ts";
import "./kernels/quantize.test.ts";
import "./kernels/requant-add.test.ts";
import "./kernels/concat.test.ts";
import "./kernels/depth-to-space.test.ts";
import "./kernels/upsample.test.ts";
import "./kernels/f32-elementwise.test.ts";
import "./kernels/channel-stats.test.ts";
import "./kernels/histogram.test.ts";
import "./kernels/f32-conv.test.ts";
import "./kernels/qs8-conv.test.ts";
import "./kernels/qs16-conv-pcs.test.ts";
import "./kernels/qlut-conv.test.ts";
import "./kernels/act-codes.test.ts";
import "./kernels/grad-conv.test.ts";
import "./kernels/grad-elementwise.test.ts";
import "./quant.test.ts";
import "./methods/daq.test.ts";
import "./methods/dfsq.test.ts";
import "./methods/dynamic.test.ts";
import "./methods/odm.test.ts";
import "./cli.test.ts";
import "./train/grad.test.ts";
import "./train/optim.test.ts";
import "./train/finetune.test.ts";
import "./reliability/limits.test.ts";
import "./reliability/fuzz-readers.test.ts";
