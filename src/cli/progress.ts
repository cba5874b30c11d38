import { SingleBar } from 'cli-progress';

export interface Progress {
  /** How much is done so far, of the total given at the start. */
  update(done: number): void;
  /** Ends the bar (or writes the last line). */
  stop(): void;
}

const PLAIN_EVERY_MS = 5000;

/**
 * Long work shows progress on stderr: a bar with the rate and ETA on a terminal (cli-progress), a
 * plain line every few seconds otherwise (a log file or a CI job gets no control characters).
 * stdout stays free for the command's answer.
 */
export function startProgress(label: string, total: number, unit: string): Progress {
  const started = Date.now();
  const rate = (done: number) => Math.round(done / Math.max((Date.now() - started) / 1000, 0.001));
  if (process.stderr.isTTY) {
    const bar = new SingleBar({
      stream: process.stderr,
      format: `${label} [{bar}] {percentage}% | {value}/{total} ${unit} | {rate} ${unit}/s | ETA {eta_formatted}`,
      hideCursor: true,
      etaBuffer: 50,
    });
    bar.start(total, 0, { rate: 0 });
    return {
      update: (done) => bar.update(done, { rate: rate(done) }),
      stop: () => bar.stop(),
    };
  }
  let last = started;
  let done = 0;
  const line = () => {
    const percent = total > 0 ? ` (${Math.floor((done / total) * 100)}%)` : '';
    process.stderr.write(`${label}: ${done}/${total} ${unit}${percent}, ${rate(done)} ${unit}/s\n`);
  };
  return {
    update(value) {
      done = value;
      if (Date.now() - last >= PLAIN_EVERY_MS) {
        last = Date.now();
        line();
      }
    },
    stop: line,
  };
}
