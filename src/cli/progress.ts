// A one-line progress bar on stderr for long CLI runs: drawn only when stderr is a TTY (and not
// --quiet), redrawn at most 10 times a second; silent otherwise, so logs and pipes stay clean.

export interface Progress {
  /** Sets the count done (and the total when it becomes known). */
  update(done: number, total?: number, note?: string): void;
  /** Clears the bar line. */
  end(): void;
  /** Writes a message line without garbling the bar. */
  log(message: string): void;
}

export interface ProgressOptions {
  label: string;
  total?: number;
  unit?: string;
  enabled?: boolean;
  stream?: NodeJS.WriteStream;
}

function fmtTime(s: number): string {
  if (!Number.isFinite(s)) return '--:--';
  const m = Math.floor(s / 60);
  const h = Math.floor(m / 60);
  const ss = String(Math.floor(s % 60)).padStart(2, '0');
  return h ? `${h}:${String(m % 60).padStart(2, '0')}:${ss}` : `${m}:${ss}`;
}

export function createProgress(options: ProgressOptions): Progress {
  const stream = options.stream ?? process.stderr;
  const enabled = (options.enabled ?? true) && !!stream.isTTY;
  const unit = options.unit ?? 'images';
  const start = performance.now();
  let total = options.total;
  let last = 0;
  let drawn = false;
  let done = 0;
  let note = '';
  const draw = (force = false) => {
    if (!enabled) return;
    const now = performance.now();
    if (!force && now - last < 100) return;
    last = now;
    const secs = (now - start) / 1000;
    const rate = done / Math.max(secs, 1e-3);
    const width = 24;
    let line = `${options.label} `;
    if (total) {
      const f = Math.min(1, done / total);
      const fill = Math.round(f * width);
      line += `[${'#'.repeat(fill)}${'.'.repeat(width - fill)}] ${done}/${total} ${unit} ${(f * 100).toFixed(0)}%`;
      line += ` ${rate.toFixed(2)}/s eta ${fmtTime((total - done) / rate)}`;
    } else {
      line += `${done} ${unit} ${rate.toFixed(2)}/s ${fmtTime(secs)}`;
    }
    if (note) line += ` ${note}`;
    const cols = stream.columns || 100;
    stream.write(`\r${line.slice(0, cols - 1).padEnd(Math.min(cols - 1, line.length))}\x1b[K`);
    drawn = true;
  };
  return {
    update(d, t, n) {
      done = d;
      if (t !== undefined) total = t;
      if (n !== undefined) note = n;
      draw(total !== undefined && done >= total);
    },
    end() {
      if (enabled && drawn) stream.write('\r\x1b[K');
      drawn = false;
    },
    log(message) {
      if (enabled && drawn) stream.write('\r\x1b[K');
      stream.write(message.endsWith('\n') ? message : `${message}\n`);
      if (enabled && drawn) draw(true);
    },
  };
}
