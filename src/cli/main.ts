/**
 * `lowbit` command line (Node only): dispatch, help, version, and the error contract —
 * a LowbitError prints `lowbit: <CODE>: <message>` and exits 1 (2 for usage errors, 130 when
 * interrupted); stack traces only with LOWBIT_DEBUG=1.
 */
import { LowbitError } from "../runtime/errors.ts";
import { UsageError } from "./args.ts";
import { packageVersion, processIO, type CliIO } from "./common.ts";
import { evalCommand } from "./eval.ts";
import { modelsCommand } from "./models.ts";
import { upscaleCommand } from "./upscale.ts";
import { quantizeCommand } from "./quantize.ts";
import { finetuneCommand } from "./finetune.ts";
import { exportOnnxCommand } from "./export-onnx.ts";
import { pruneCommand } from "./prune.ts";

export const USAGE = `Usage: lowbit <command> [options]

Image super-resolution in WebAssembly SIMD.

Commands:
  upscale <in> <out.png>   upscale a PNG/JPEG image
  eval --model <m>         PSNR-Y / SSIM-Y of a model on an SR eval set, beside bicubic
  quantize --model <m> …   calibrate + quantize a model into a .lowbit file
  finetune --model <m> …   quantization-aware fine-tuning (ODM) into a .lowbit file
  export-onnx --model <m>  export a model (FP32, or W8A8 QDQ with --bits) as .onnx
  prune --model <m> …      N:M sparsity (one-shot, SLS) or filter pruning into an FP32 .lowbit file
  models                   list the registered models

Options:
  -h, --help               help (also \`lowbit <command> --help\`)
  -v, --version            print the version

Environment: LOWBIT_DEBUG=1 prints stack traces; LOWBIT_EVAL_DIR sets eval's default --data.
`;

const COMMANDS: Record<string, (argv: string[], io: CliIO) => Promise<number>> = {
  upscale: upscaleCommand,
  eval: evalCommand,
  models: modelsCommand,
  quantize: quantizeCommand,
  finetune: finetuneCommand,
  "export-onnx": exportOnnxCommand,
  prune: pruneCommand,
};

/** Runs one command line (without `node lowbit`) and returns the exit code; never throws. */
export async function run(argv: string[], io: CliIO = processIO()): Promise<number> {
  try {
    const [first, ...rest] = argv;
    if (first === undefined || first === "-h" || first === "--help" || first === "help") {
      if (first === "help" && rest[0] && rest[0] in COMMANDS) return await COMMANDS[rest[0]](["--help"], io);
      (first === undefined ? io.stderr : io.stdout).write(USAGE);
      return first === undefined ? 2 : 0;
    }
    if (first === "-v" || first === "--version") {
      io.stdout.write(`lowbit ${packageVersion()}\n`);
      return 0;
    }
    const cmd = Object.hasOwn(COMMANDS, first) ? COMMANDS[first] : undefined;
    if (!cmd) {
      throw new UsageError(first.startsWith("-") ? `unknown option '${first}'` : `unknown command '${first}'; commands: ${Object.keys(COMMANDS).join(", ")}`);
    }
    return await cmd(rest, io);
  } catch (e) {
    return report(e, io);
  }
}

function report(e: unknown, io: CliIO): number {
  const debug = io.env.LOWBIT_DEBUG === "1";
  if (e instanceof UsageError) {
    io.stderr.write(`lowbit: ${e.message}\n`);
    io.stderr.write(`Run 'lowbit ${e.command ? `${e.command} ` : ""}--help' for usage.\n`);
    if (debug) io.stderr.write(`${e.stack}\n`);
    return 2;
  }
  if (e instanceof LowbitError) {
    io.stderr.write(`lowbit: ${e.message}\n`);
    if (debug) io.stderr.write(`${stackWithCauses(e)}\n`);
    return e.code === "E_ABORTED" ? 130 : 1;
  }
  const err = e instanceof Error ? e : new Error(String(e));
  io.stderr.write(`lowbit: internal error: ${err.message}${debug ? "" : " (LOWBIT_DEBUG=1 shows the stack)"}\n`);
  if (debug) io.stderr.write(`${stackWithCauses(err)}\n`);
  return 1;
}

function stackWithCauses(e: Error): string {
  const parts: string[] = [];
  let cur: unknown = e;
  for (let depth = 0; cur instanceof Error && depth < 8; depth++, cur = cur.cause) {
    parts.push((depth ? "caused by: " : "") + (cur.stack ?? cur.message));
  }
  return parts.join("\n");
}

/** Entry for bin/lowbit.js: real process streams, Ctrl-C aborts the running command. */
export async function main(argv: string[] = process.argv.slice(2)): Promise<void> {
  const ac = new AbortController();
  const onSigint = () => {
    if (ac.signal.aborted) process.exit(130); // second Ctrl-C: stop now
    ac.abort("interrupted");
  };
  process.on("SIGINT", onSigint);
  // `lowbit models | head`: a closed pipe is not an error worth a stack trace.
  process.stdout.on("error", (err: NodeJS.ErrnoException) => {
    if (err.code === "EPIPE") process.exit(process.exitCode ?? 0);
    throw err;
  });
  try {
    process.exitCode = await run(argv, processIO(ac.signal));
  } finally {
    process.off("SIGINT", onSigint);
  }
}
