/** Supervised loops (AUDIT O-1): a crash is logged, counted, shown in health and restarted. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type Logger, Supervisor, sleep } from '@tasker/core';

function recordingLogger(): Logger & { errors: object[] } {
  const errors: object[] = [];
  const none = () => undefined;
  return { errors, debug: none, info: none, warn: none, error: (fields) => errors.push(fields) };
}

describe('Supervisor', () => {
  it('restarts a loop that throws, counting and logging each crash', async () => {
    const logger = recordingLogger();
    const supervisor = new Supervisor({ logger, minBackoffMs: 1, maxBackoffMs: 2 });
    let runs = 0;
    const finished = Promise.withResolvers<void>();
    supervisor.start('flaky', async () => {
      runs += 1;
      if (runs <= 2) throw new Error(`crash ${runs}`);
      finished.resolve();
    });
    await finished.promise;
    await supervisor.stop();
    assert.equal(runs, 3);
    const [health] = supervisor.health();
    assert.equal(health?.restarts, 2);
    assert.equal(health?.lastError, 'crash 2');
    assert.equal(health?.running, false);
    assert.equal(logger.errors.length, 2);
  });

  it('stops every loop by aborting its signal and waits for them', async () => {
    const supervisor = new Supervisor();
    const seen: string[] = [];
    for (const name of ['a', 'b']) {
      supervisor.start(name, async (signal) => {
        while (!signal.aborted) await sleep(60_000, signal);
        seen.push(name);
      });
    }
    await supervisor.stop();
    assert.deepEqual(seen.sort(), ['a', 'b']);
    assert.ok(supervisor.health().every((loop) => !loop.running && loop.restarts === 0));
    assert.throws(() => supervisor.start('late', async () => undefined), /stopping/);
  });

  it('refuses two loops of one name', () => {
    const supervisor = new Supervisor();
    supervisor.start('one', async () => undefined);
    assert.throws(() => supervisor.start('one', async () => undefined), /already supervised/);
  });
});
