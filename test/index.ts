// Test entry: imports every test module, then prints one closing line
// "N passed, N failed" (assertions). Run as `node --import tsx test/index.ts [--backend relaxed]`.
// Static imports evaluate in order: the reporter attaches before any test registers.
import "./util/report.ts";
import "./runtime.test.ts";
import "./metrics.test.ts";
import "./image-io.test.ts";
import "./io-tfjs.test.ts";
import "./quant.test.ts";
