/**
 * A progress line on stderr that is safe wherever stderr goes: on a terminal
 * it redraws one line in place (at most every 100 ms); anywhere else (a file,
 * CI logs) it prints a plain line each time another 10% is reached.
 */

export interface Counts {
  submitted: number;
  done: number;
  dead: number;
  cancelled: number;
}

export interface ProgressSink {
  write(text: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

const terminalOf = (c: Counts): number => c.done + c.dead + c.cancelled;

export class Progress {
  private lastDraw = -Infinity;
  private lastDecile = -1;
  private readonly started: number;

  constructor(
    private readonly total: number,
    private readonly sink: ProgressSink = process.stderr,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.started = now();
  }

  /** Show `counts` (rate-limited on a TTY, by 10% steps elsewhere). */
  update(counts: Counts): void {
    if (this.sink.isTTY) return this.drawTty(counts, false);
    const decile = Math.floor((terminalOf(counts) / this.total) * 10);
    if (decile <= this.lastDecile) return;
    this.lastDecile = decile;
    this.sink.write(`${this.text(counts)}\n`);
  }

  /** The final state; on a TTY the line is left in place and ended. */
  finish(counts: Counts): void {
    if (this.sink.isTTY) {
      this.drawTty(counts, true);
      this.sink.write('\n');
    } else this.update(counts);
  }

  /** `[#####-----]  25/50  50%  done 25  dead 0  cancelled 0  submitted 50  12.5 jobs/s` */
  text(c: Counts): string {
    const finished = terminalOf(c);
    const width = 24;
    const filled = Math.round((finished / this.total) * width);
    const seconds = (this.now() - this.started) / 1000;
    const rate = seconds > 0 ? (finished / seconds).toFixed(1) : '0.0';
    const pct = Math.floor((finished / this.total) * 100);
    return `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${finished}/${this.total} ${pct}%  ` +
      `done ${c.done}  dead ${c.dead}  cancelled ${c.cancelled}  submitted ${c.submitted}  ${rate} jobs/s`;
  }

  private drawTty(counts: Counts, force: boolean): void {
    const t = this.now();
    if (!force && t - this.lastDraw < 100) return;
    this.lastDraw = t;
    const line = this.text(counts).slice(0, Math.max(20, (this.sink.columns ?? 120) - 1));
    this.sink.write(`\r${line}\x1b[K`);
  }
}
