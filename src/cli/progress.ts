/**
 * Progress on stderr. On a TTY: one line redrawn in place (at most ~10 times a second) and
 * erased when done. Elsewhere (pipes, CI logs): a plain line at each quarter, so logs stay short.
 * Disabled: nothing at all.
 */
export interface ProgressSink {
  write(s: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

export class ProgressBar {
  private readonly out: ProgressSink | null;
  private readonly label: string;
  private readonly t0 = Date.now();
  private lastDraw = 0;
  private lastQuarter = -1;
  private drawn = false;

  constructor(out: ProgressSink | null, label: string) {
    this.out = out;
    this.label = label;
  }

  get tty(): boolean {
    return this.out?.isTTY === true;
  }

  /** fraction in 0..1; detail is shown after the percentage (e.g. "tile 3/9"). */
  update(fraction: number, detail = ""): void {
    const out = this.out;
    if (!out) return;
    const f = Math.min(1, Math.max(0, Number.isFinite(fraction) ? fraction : 0));
    const pct = Math.floor(f * 100);
    const secs = ((Date.now() - this.t0) / 1000).toFixed(1);
    if (out.isTTY) {
      const now = Date.now();
      if (now - this.lastDraw < 100 && f < 1) return;
      this.lastDraw = now;
      const width = 24;
      const fill = Math.round(f * width);
      let line = `${this.label} [${"#".repeat(fill)}${"-".repeat(width - fill)}] ${String(pct).padStart(3)}%${detail ? ` ${detail}` : ""} ${secs} s`;
      const cols = out.columns ?? 80;
      if (line.length > cols - 1) line = line.slice(0, cols - 1);
      out.write(`\r\x1b[2K${line}`);
      this.drawn = true;
      return;
    }
    const q = Math.floor(f * 4);
    if (q > this.lastQuarter) {
      this.lastQuarter = q;
      out.write(`${this.label}: ${pct}%${detail ? ` ${detail}` : ""} (${secs} s)\n`);
    }
  }

  /** A message line that does not break the bar (TTY: printed above it). */
  log(line: string): void {
    if (!this.out) return;
    if (this.out.isTTY && this.drawn) this.out.write("\r\x1b[2K");
    this.out.write(`${line}\n`);
    this.drawn = false;
    this.lastDraw = 0;
  }

  /** Erases the TTY line (non-TTY output is left as it is). */
  done(): void {
    if (this.out?.isTTY && this.drawn) this.out.write("\r\x1b[2K");
    this.drawn = false;
  }
}
