import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { LogOutput } from '../../src/log.js';

/** A stdout that takes nothing (a reader that stopped reading) until `release`. */
class Stalled extends Writable {
  #held: Array<() => void> = [];
  #reading = false;
  constructor(highWaterMark = 16) {
    super({ highWaterMark });
  }
  override _write(_chunk: Buffer, _enc: BufferEncoding, done: (err?: Error | null) => void): void {
    if (this.#reading) done();
    else this.#held.push(() => done());
  }
  release(): void {
    this.#reading = true;
    for (const done of this.#held.splice(0)) done();
  }
}

class Sink extends Writable {
  readonly text: string[] = [];
  override _write(chunk: Buffer, _enc: BufferEncoding, done: () => void): void {
    this.text.push(chunk.toString('utf8'));
    done();
  }
}

class Broken extends Writable {
  override _write(_chunk: Buffer, _enc: BufferEncoding, done: (err?: Error | null) => void): void {
    done(Object.assign(new Error('write EPIPE'), { code: 'EPIPE' }));
  }
}

const line = (n: number): string => `{"msg":"line ${n}"}\n`;

describe('LogOutput', () => {
  it('writes every line when stdout takes them, and reports nothing', async () => {
    const out = new Sink();
    const err = new Sink();
    const output = new LogOutput({ out, err });
    for (let i = 0; i < 5; i++) output.write(line(i));
    await output.drained();
    expect(out.text.join('')).toBe([0, 1, 2, 3, 4].map(line).join(''));
    output.reportUnwritten();
    expect(err.text).toEqual([]);
  });

  it('keeps lines in memory up to its bound while stdout takes nothing, then drops and counts them', async () => {
    const out = new Stalled();
    const err = new Sink();
    const output = new LogOutput({ out, err, maxPendingBytes: 100 });
    for (let i = 0; i < 20; i++) output.write(line(i));
    // ~19 bytes a line: 6 fit under the bound (the sixth crosses it), the other 14 are dropped.
    expect(output.unwritten).toBe(20);
    expect(err.text).toEqual(['deployer: stdout has not taken the last 100 bytes of log lines; dropping new ones\n']);
    output.reportUnwritten();
    expect(err.text[1]).toBe('deployer: 20 log lines were not written (stdout did not take them before the exit)\n');

    // The reader reads again: what was kept is written; only the dropped lines stay counted.
    const drained = output.drained();
    out.release();
    await drained;
    expect(output.unwritten).toBe(14);
  });

  it('counts the lines of a closed stdout (EPIPE) without throwing, and drained() does not wait for them', async () => {
    const out = new Broken();
    const err = new Sink();
    const output = new LogOutput({ out, err });
    output.write(line(1));
    await new Promise((r) => setImmediate(r));
    output.write(line(2));
    await output.drained();
    expect(output.unwritten).toBe(2);
    expect(err.text[0]).toBe('deployer: stdout is closed; log lines are no longer written\n');
    output.reportUnwritten();
    expect(err.text[1]).toBe('deployer: 2 log lines were not written (stdout is closed)\n');
  });
});
