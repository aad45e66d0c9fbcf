/**
 * `npm start` smoke test: the all-in-one entry (the one `npm start` runs) as a child process on
 * embedded PostgreSQL (PGlite) in a temporary data directory and a free port. It creates the linear
 * example over HTTP, sees it complete, stops on SIGINT with exit code 0, and starts again on the same
 * data directory (nothing left to migrate, the task still there). An invalid configuration stops the
 * process before anything starts, naming each problem.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, describe, it } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const ENTRY = fileURLToPath(new URL('../../packages/orchestration/src/bin/main.ts', import.meta.url));
const WAIT_MS = 60_000;

interface LogLine {
  msg?: string;
  url?: string;
  applied?: number;
  [key: string]: unknown;
}

interface Started {
  child: ChildProcess;
  url: string;
  logs: LogLine[];
  stdout: () => string;
  exited: Promise<number | string>;
}

async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  server.close();
  await once(server, 'close');
  assert.ok(typeof address === 'object' && address !== null);
  return address.port;
}

/** The environment of a child: no inherited database or config, the given Tasker variables. */
function childEnv(vars: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const name of Object.keys(env))
    if (name === 'DATABASE_URL' || name.startsWith('TASKER_')) delete env[name];
  return { ...env, ...vars };
}

function spawnMain(vars: Record<string, string>) {
  const child = spawn(process.execPath, [ENTRY], {
    cwd: ROOT,
    env: childEnv(vars),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = once(child, 'exit').then(([code, signal]) => (code ?? signal) as number | string);
  let stdout = '';
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
    stdout += chunk;
  });
  let stderr = '';
  const logs: LogLine[] = [];
  const lines = createInterface({ input: child.stderr ?? process.stdin });
  lines.on('line', (line) => {
    stderr += `${line}\n`;
    try {
      logs.push(JSON.parse(line) as LogLine);
    } catch {
      // not a log line (e.g. the configuration error message)
    }
  });
  return { child, exited, logs, stdout: () => stdout, stderr: () => stderr, closed: once(lines, 'close') };
}

async function startMain(vars: Record<string, string>): Promise<Started> {
  const started = spawnMain(vars);
  const listening = new Promise<string>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`no "api listening" line:\n${started.stderr()}`)),
      WAIT_MS,
    );
    const check = setInterval(() => {
      const line = started.logs.find((log) => log.msg === 'api listening');
      // the banner goes to stdout after the 'tasker started' log line on stderr: two pipes, either
      // may be read first, so both are waited for
      const banner = started.stdout();
      if (
        line?.url !== undefined &&
        started.logs.some((log) => log.msg === 'tasker started') &&
        banner.includes('curl') &&
        banner.endsWith('\n')
      ) {
        clearTimeout(timer);
        clearInterval(check);
        resolve(line.url);
      }
    }, 50);
    void started.exited.then((code) => {
      clearTimeout(timer);
      clearInterval(check);
      reject(new Error(`exited (${code}) before listening:\n${started.stderr()}`));
    });
  });
  const url = await listening;
  return { child: started.child, url, logs: started.logs, stdout: started.stdout, exited: started.exited };
}

async function stop(started: Started): Promise<number | string> {
  started.child.kill('SIGINT');
  return started.exited;
}

async function json(response: Response): Promise<Record<string, unknown>> {
  return (await response.json()) as Record<string, unknown>;
}

describe('npm start (embedded PGlite)', () => {
  let dataDir: string;
  let port: number;

  before(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'tasker-start-'));
    port = await freePort();
  });
  after(async () => {
    await rm(dataDir, { recursive: true, force: true });
  });

  const vars = () => ({ TASKER_DATA_DIR: dataDir, TASKER_PORT: String(port), TASKER_LOG_LEVEL: 'info' });

  // one test, two starts: the second start is about the data the first one left
  it('starts, runs the linear example to completion over HTTP, stops cleanly on SIGINT, and starts again on the same data directory with nothing to migrate and the task still there', async () => {
    let taskUuid = '';
    const main = await startMain(vars());
    try {
      assert.equal(main.url, `http://127.0.0.1:${port}`);
      assert.match(main.stdout(), new RegExp(`Swagger UI: http://127\\.0\\.0\\.1:${port}/api-docs/ui`));
      assert.match(main.stdout(), /curl -s -X POST .*\/v1\/tasks/);
      const migrated = main.logs.find((log) => log.msg === 'database migrated');
      assert.ok((migrated?.applied ?? 0) > 0, 'a fresh data directory is migrated');

      const created = await fetch(`${main.url}/v1/tasks`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          namespace: 'linear_workflow_ts',
          name: 'mathematical_sequence_ts',
          version: '1.0.0',
          context: { even_number: 10 },
          initiator: 'smoke-test',
          source_system: 'test',
          reason: 'npm start smoke test',
        }),
      });
      assert.equal(created.status, 201);
      const task = await json(created);
      assert.equal(typeof task.task_uuid, 'string');
      taskUuid = String(task.task_uuid);
      assert.equal(created.headers.get('location'), `/v1/tasks/${taskUuid}`);

      const deadline = Date.now() + WAIT_MS;
      let status = String(task.status);
      while (status !== 'complete' && status !== 'error' && Date.now() < deadline) {
        await delay(100);
        status = String((await json(await fetch(`${main.url}/v1/tasks/${taskUuid}`))).status);
      }
      assert.equal(status, 'complete');
      const steps = (await (await fetch(`${main.url}/v1/tasks/${taskUuid}/workflow_steps`)).json()) as {
        name: string;
        current_state: string;
        results: { result?: { final_value?: number } } | null;
      }[];
      assert.equal(steps.length, 4);
      assert.ok(steps.every((step) => step.current_state === 'complete'));
      assert.equal(steps.find((step) => step.name === 'linear_step_4')?.results?.result?.final_value, 165);
    } finally {
      assert.equal(await stop(main), 0);
    }
    const messages = main.logs.map((log) => log.msg);
    assert.ok(messages.includes('worker stopped'), 'the worker stopped');
    assert.ok(messages.includes('engine stopped'), 'the engine stopped');
    assert.equal(messages.at(-1), 'tasker stopped');

    const again = await startMain(vars());
    try {
      const migrated = again.logs.find((log) => log.msg === 'database migrated');
      assert.equal(migrated?.applied, 0);
      const task = await json(await fetch(`${again.url}/v1/tasks/${taskUuid}`));
      assert.equal(task.status, 'complete');
    } finally {
      assert.equal(await stop(again), 0);
    }
  });
});

describe('an invalid configuration', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tasker-badconfig-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function refused(vars: Record<string, string>): Promise<string> {
    const started = spawnMain(vars);
    const code = await started.exited;
    await started.closed;
    assert.equal(code, 2);
    assert.equal(
      started.logs.find((log) => log.msg === 'database opened'),
      undefined,
      'nothing started',
    );
    return started.stderr();
  }

  it('an unknown key and an out-of-range port stop the process, naming both', async () => {
    const file = join(dir, 'bad.toml');
    await writeFile(file, '[orchestration.web]\nport = 70000\nbogus = true\n');
    const stderr = await refused({ TASKER_CONFIG: file });
    assert.match(stderr, /invalid configuration/);
    assert.match(stderr, /orchestration\.web\.bogus: unknown key/);
    assert.match(stderr, /orchestration\.web\.port: must be an integer from 0 to 65535, got 70000/);
  });

  it('a TASKER_PORT that is not a port number stops the process', async () => {
    const stderr = await refused({ TASKER_PORT: '80a', TASKER_DATA_DIR: join(dir, 'data') });
    assert.match(
      stderr,
      /orchestration\.web\.port: the environment variable TASKER_PORT must be a port number/,
    );
  });
});
