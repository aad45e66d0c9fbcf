/**
 * Child processes of the multi-process tests: an orchestration engine or a worker on a shared
 * PostgreSQL database. A child prints `ready` once started, stops gracefully on SIGTERM (exit 0)
 * and prints `stopped`. Options come as JSON in argv[3].
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const ENTRY = fileURLToPath(new URL('./process-main.ts', import.meta.url));

export interface Child {
  process: ChildProcess;
  /** Lines the child printed on stdout before `ready` (e.g. `port 40123`). */
  lines: string[];
  /** Everything the child wrote to stderr so far (its logs), for failure messages. */
  stderr: () => string;
  /** Resolves with the exit code (or the signal name) when the child ends. */
  exited: Promise<number | string>;
}

export async function startChild(
  role: 'orchestration' | 'api' | 'worker',
  databaseUrl: string,
  options: Record<string, unknown> = {},
): Promise<Child> {
  const child = spawn(process.execPath, [ENTRY, role, JSON.stringify(options)], {
    env: { ...process.env, DATABASE_URL: databaseUrl },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    stderr = (stderr + chunk).slice(-20_000);
  });
  const exited = once(child, 'exit').then(([code, signal]) => (code ?? signal) as number | string);
  const lines = createInterface({ input: child.stdout ?? process.stdin });
  const printed: string[] = [];
  const ready = new Promise<void>((resolve, reject) => {
    lines.on('line', (line) => {
      if (line === 'ready') resolve();
      else printed.push(line);
    });
    void exited.then((code) => reject(new Error(`${role} exited (${code}) before ready:\n${stderr}`)));
  });
  await ready;
  return { process: child, lines: printed, stderr: () => stderr, exited };
}

/** SIGKILL (kill -9) and wait for the end. */
export async function kill(child: Child): Promise<void> {
  child.process.kill('SIGKILL');
  await child.exited;
}
