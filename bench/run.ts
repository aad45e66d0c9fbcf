/**
 * `npm run bench`: runs every benchmark suite; `npm run bench -- <suite> [<suite>…]` runs the named
 * ones. Options `--name=value` go to the suites (e.g. `npm run bench -- pgmq --samples=2000`).
 *
 * Each suite prints a table and writes `bench/results/<suite>.json` in the format of BENCH.md.
 * To add a suite, create `bench/suites/<name>.ts` exporting a `Suite` and register it below.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  type BenchCase,
  isLatencyCase,
  machineInfo,
  runCleanups,
  type Suite,
  type SuiteResult,
} from './lib.ts';

const SUITES: Record<string, () => Promise<Suite>> = {
  pgmq: async () => (await import('./suites/pgmq.ts')).pgmqSuite,
  sql: async () => (await import('./suites/sql.ts')).sqlSuite,
  e2e: async () => (await import('./suites/e2e.ts')).e2eSuite,
  api: async () => (await import('./suites/api.ts')).apiSuite,
};

const BENCH_DIR = dirname(fileURLToPath(import.meta.url));
const RESULTS_DIR = join(BENCH_DIR, 'results');

function usage(): string {
  return [
    'usage: npm run bench [-- <suite>… [--option=value…]]',
    `suites: ${Object.keys(SUITES).join(', ')}`,
    'pgmq options: --samples --warmup (notify_rtt), --messages --batch-messages --throughput-warmup-pct,',
    '  --processes=split|single, --consumer-wait=retry|listener, --vacuum=no|yes,',
    '  --synchronous-commit=default|on|off,',
    '  --extra-sql=<file> (run after the migrations, e.g. CREATE OR REPLACE FUNCTION to try a change)',
    'e2e options: --samples --warmup --modes=queue,inline',
    'api options: --samples --warmup --connections --seconds --existing',
  ].join('\n');
}

function parseArgs(argv: readonly string[]): { names: string[]; options: Map<string, string> } | null {
  const names: string[] = [];
  const options = new Map<string, string>();
  for (const arg of argv) {
    if (arg === '--help' || arg === '-h') return null;
    const option = /^--([a-z][a-z0-9-]*)=(.*)$/.exec(arg);
    if (option) {
      options.set(option[1] ?? '', option[2] ?? '');
    } else if (arg.startsWith('-')) {
      process.stderr.write(`bench: options are written --name=value, got ${arg}\n${usage()}\n`);
      process.exit(2);
    } else {
      names.push(arg);
    }
  }
  return { names, options };
}

function pad(cells: readonly string[], widths: readonly number[]): string {
  return cells.map((cell, index) => cell.padStart(widths[index] ?? 0)).join('  ');
}

function formatMs(value: number): string {
  return value.toFixed(3);
}

function formatTable(result: SuiteResult): string {
  const { machine } = result;
  const lines = [
    `suite ${result.suite}: ${machine.cores} cores, node ${machine.node}, ${machine.backend} ${machine.postgres}`,
    `config ${JSON.stringify(result.config)}`,
  ];
  const header = ['case', 'n', 'p50 ms', 'p95 ms', 'p99 ms', 'mean ms', 'rate/s', 'unit'];
  const rows = result.cases.map((item: BenchCase) =>
    isLatencyCase(item)
      ? [
          item.name,
          String(item.n),
          formatMs(item.p50_ms),
          formatMs(item.p95_ms),
          formatMs(item.p99_ms),
          formatMs(item.mean_ms),
          '',
          '',
        ]
      : [item.name, String(item.n), '', '', '', '', item.rate_per_s.toFixed(1), item.unit],
  );
  const widths = header.map((cell, index) =>
    Math.max(cell.length, ...rows.map((row) => (row[index] ?? '').length)),
  );
  const nameWidth = widths[0] ?? 0;
  const render = (row: readonly string[]) =>
    `${(row[0] ?? '').padEnd(nameWidth)}  ${pad(row.slice(1), widths.slice(1))}`.trimEnd();
  lines.push(render(header), render(widths.map((width) => '-'.repeat(width))), ...rows.map(render));
  return lines.join('\n');
}

async function runSuite(
  name: string,
  load: () => Promise<Suite>,
  options: ReadonlyMap<string, string>,
): Promise<void> {
  const suite = await load();
  const output = await suite({
    options,
    log: (message) => process.stderr.write(`[${name}] ${message}\n`),
  });
  const result: SuiteResult = {
    suite: name,
    machine: machineInfo(output.postgres, output.backend),
    config: output.config,
    cases: output.cases,
  };
  await mkdir(RESULTS_DIR, { recursive: true });
  const file = join(RESULTS_DIR, `${name}.json`);
  await writeFile(file, `${JSON.stringify(result, null, 2)}\n`);
  process.stdout.write(`\n${formatTable(result)}\n→ ${relative(process.cwd(), file)}\n`);
}

async function main(): Promise<void> {
  const parsed = parseArgs(process.argv.slice(2));
  if (parsed === null) {
    process.stdout.write(`${usage()}\n`);
    return;
  }
  const unknown = parsed.names.filter((name) => !Object.hasOwn(SUITES, name));
  if (unknown.length > 0) {
    process.stderr.write(
      `bench: unknown suite ${unknown.map((name) => JSON.stringify(name)).join(', ')}; known suites: ${Object.keys(SUITES).join(', ')}\n`,
    );
    process.exitCode = 2;
    return;
  }
  const names = parsed.names.length > 0 ? [...new Set(parsed.names)] : Object.keys(SUITES);
  for (const name of names) {
    const load = SUITES[name];
    if (load === undefined) continue;
    try {
      await runSuite(name, load, parsed.options);
    } catch (error) {
      process.stderr.write(
        `bench: suite ${name} failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
      );
      process.exitCode = 1;
    }
  }
}

// Interrupted: drop the throwaway databases (children follow their IPC channel and exit).
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    process.stderr.write(`bench: ${signal}, cleaning up\n`);
    void runCleanups().finally(() => process.exit(130));
  });
}

await main();
