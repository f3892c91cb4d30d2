// Worker entry: registers tsx's loader in this thread, then runs the TypeScript contender.
import { register } from "tsx/esm/api";
register();
await import("./contender.ts");
