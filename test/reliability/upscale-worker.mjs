// Worker entry: registers tsx's loader in this thread (execArgv --import is not honoured by every
// Node version's workers), then runs the TypeScript worker.
import { register } from "tsx/esm/api";
register();
await import("./upscale-worker.ts");
