/**
 * Shared helpers of the benchmark suites (see docs in /work/shared/BENCH.md): clocks, percentiles,
 * the result format, options, and a throwaway PostgreSQL database per suite run.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { performance } from 'node:perf_hooks';
import {
  type Backend,
  createPostgresDatabase,
  type Database,
  type MigrationSet,
  migrate,
  type Queryable,
} from '@tasker/db';

// ---------------------------------------------------------------------------------------------
// Clocks

/**
 * Wall-clock milliseconds with sub-millisecond resolution, comparable across processes on the same
 * machine: `performance.timeOrigin + performance.now()` (process start on the wall clock plus a
 * monotonic offset). Use it whenever a timestamp crosses a process boundary.
 */
export function wallClockMs(): number {
  return performance.timeOrigin + performance.now();
}

/** Monotonic milliseconds for intervals measured inside one process. */
export function monotonicMs(): number {
  return performance.now();
}

/** Linux reports process times in clock ticks of 1/100 s (USER_HZ). */
const TICK_US = 10_000;

/**
 * CPU time (user + system, microseconds, 10 ms resolution) consumed so far by a process of this
 * machine, e.g. a PostgreSQL backend (`pg_backend_pid()`); null when `/proc` cannot tell (another
 * OS, or a server on another host).
 */
function processCpuUs(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the parenthesised command name: state is field 3, utime 14, stime 15.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(fields[11]) + Number(fields[12]);
    return Number.isFinite(ticks) ? ticks * TICK_US : null;
  } catch {
    return null;
  }
}

/** CPU time of this process (user + system, microseconds). */
export function ownCpuUs(): number {
  const usage = process.cpuUsage();
  return usage.user + usage.system;
}

/** The backend process id of the connection `db` runs on (a pool of one connection, or a transaction). */
export async function backendPid(db: Queryable): Promise<number> {
  const { rows } = await db.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
  const pid = rows[0]?.pid;
  if (typeof pid !== 'number') throw new Error('pg_backend_pid() returned no pid');
  return pid;
}

/** CPU a backend spends from now until `stop()` (µs); null when it cannot be read. */
export function backendCpuMeter(pid: number): { stop(): number | null } {
  const before = processCpuUs(pid);
  return {
    stop() {
      const after = processCpuUs(pid);
      return before === null || after === null ? null : after - before;
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Result format

export interface LatencyCase {
  name: string;
  n: number;
  p50_ms: number;
  p95_ms: number;
  p99_ms: number;
  mean_ms: number;
}

export interface RateCase {
  name: string;
  n: number;
  rate_per_s: number;
  unit: string;
}

export type BenchCase = LatencyCase | RateCase;

export interface Machine {
  cores: number;
  node: string;
  postgres: string;
  backend: Backend;
}

export interface SuiteResult {
  suite: string;
  machine: Machine;
  config: Record<string, unknown>;
  cases: BenchCase[];
}

/** What a suite function returns; the runner adds `suite` and the process half of `machine`. */
interface SuiteOutput {
  /** `server_version` of the database the suite ran on (see `BenchDatabase.postgresVersion`). */
  postgres: string;
  backend: Backend;
  config: Record<string, unknown>;
  cases: BenchCase[];
}

interface SuiteContext {
  /** `--name=value` arguments of `npm run bench -- <suite> --name=value`. */
  options: BenchOptions;
  /** Progress lines for the operator (stderr, so stdout stays the table). */
  log(message: string): void;
}

/** A suite: `bench/suites/<name>.ts` exports one and `bench/run.ts` registers it. */
export type Suite = (context: SuiteContext) => Promise<SuiteOutput>;

export function isLatencyCase(value: BenchCase): value is LatencyCase {
  return 'p50_ms' in value;
}

export function machineInfo(postgres: string, backend: Backend): Machine {
  return { cores: availableParallelism(), node: process.versions.node, postgres, backend };
}

// ---------------------------------------------------------------------------------------------
// Statistics

function round(value: number, digits = 3): number {
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
}

/**
 * Nearest-rank percentile over all samples (no interpolation, no trimming): the smallest sample such
 * that at least `p` percent of the samples are less than or equal to it.
 */
function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) throw new Error('percentile of no samples');
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length)));
  return sorted[rank - 1] ?? Number.NaN;
}

/** A latency case from every sample (milliseconds), values rounded to the microsecond. */
export function latencyCase(name: string, samples: readonly number[]): LatencyCase {
  const sorted = [...samples].sort((a, b) => a - b);
  const mean = sorted.reduce((sum, value) => sum + value, 0) / sorted.length;
  return {
    name,
    n: sorted.length,
    p50_ms: round(percentile(sorted, 50)),
    p95_ms: round(percentile(sorted, 95)),
    p99_ms: round(percentile(sorted, 99)),
    mean_ms: round(mean),
  };
}

/** A rate case: `n` units done in `elapsedMs`. */
export function rateCase(name: string, n: number, elapsedMs: number, unit: string): RateCase {
  if (!(elapsedMs > 0)) throw new Error(`${name}: elapsed time must be positive, got ${elapsedMs}`);
  return { name, n, rate_per_s: round((n * 1000) / elapsedMs, 1), unit };
}

// ---------------------------------------------------------------------------------------------
// Options

export type BenchOptions = ReadonlyMap<string, string>;

/** An integer option `--name=value` of at least `min` (default 0), or `fallback`. */
export function intOption(options: BenchOptions, name: string, fallback: number, min = 0): number {
  const text = options.get(name);
  if (text === undefined) return fallback;
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value < min) {
    throw new Error(`--${name} must be an integer >= ${min}, got ${JSON.stringify(text)}`);
  }
  return value;
}

/** An option restricted to `choices`, or the first choice. */
export function choiceOption<const C extends string>(
  options: BenchOptions,
  name: string,
  choices: readonly [C, ...C[]],
): C {
  const text = options.get(name);
  if (text === undefined) return choices[0];
  const found = choices.find((choice) => choice === text);
  if (found === undefined)
    throw new Error(`--${name} must be one of ${choices.join(', ')}, got ${JSON.stringify(text)}`);
  return found;
}

// ---------------------------------------------------------------------------------------------
// Cleanup on interruption

const cleanups = new Set<() => Promise<void>>();

/** Registers `fn` to run if the runner is interrupted (SIGINT/SIGTERM); call the returned function to unregister. */
function registerCleanup(fn: () => Promise<void>): () => void {
  cleanups.add(fn);
  return () => {
    cleanups.delete(fn);
  };
}

/** Runs every registered cleanup (most recent first); used by the runner's signal handlers. */
export async function runCleanups(): Promise<void> {
  for (const fn of [...cleanups].reverse()) {
    cleanups.delete(fn);
    await fn().catch(() => undefined);
  }
}

// ---------------------------------------------------------------------------------------------
// Throwaway database

const DEFAULT_DATABASE_URL = 'postgresql://postgres@127.0.0.1:5432/postgres';

/** The server benchmarks create their databases on: `DATABASE_URL`, or the local default. */
function serverUrl(): string {
  return process.env.DATABASE_URL ?? DEFAULT_DATABASE_URL;
}

function withDatabase(url: string, database: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${database}`;
  return parsed.toString();
}

export interface BenchDatabase {
  /** `tasker_bench_<random>` */
  name: string;
  /** Connection string of the throwaway database, for more pools and for child processes. */
  url: string;
  /** The database's `server_version`, e.g. `15.20 (Debian 15.20-0+deb12u1)`. */
  postgresVersion: string;
  /** A small pool for setup statements (migrations, queue creation, VACUUM). */
  admin: Database;
  /** Closes `admin` and drops the database (`WITH (FORCE)`: leftover sessions are terminated). */
  dispose(): Promise<void>;
}

async function onServer<T>(fn: (db: Database) => Promise<T>): Promise<T> {
  const db = createPostgresDatabase({ url: serverUrl(), pool: { max: 1 }, applicationName: 'tasker-bench' });
  try {
    return await fn(db);
  } finally {
    await db.close();
  }
}

/** Creates `tasker_bench_<random>` on the server and applies `migrations` to it. */
export async function createBenchDatabase(migrations: readonly MigrationSet[]): Promise<BenchDatabase> {
  const name = `tasker_bench_${randomBytes(6).toString('hex')}`;
  await onServer((db) => db.exec(`CREATE DATABASE "${name}"`));
  const url = withDatabase(serverUrl(), name);
  const admin = createPostgresDatabase({ url, pool: { max: 2 }, applicationName: 'tasker-bench-admin' });
  let disposed = false;
  const dispose = async (): Promise<void> => {
    if (disposed) return;
    disposed = true;
    unregister();
    await admin.close().catch(() => undefined);
    await onServer((db) => db.exec(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`));
  };
  const unregister = registerCleanup(dispose);
  try {
    await migrate(admin, migrations);
    const { rows } = await admin.query<{ server_version: string }>('SHOW server_version');
    const postgresVersion = rows[0]?.server_version ?? 'unknown';
    return { name, url, postgresVersion, admin, dispose };
  } catch (error) {
    await dispose();
    throw error;
  }
}

// ---------------------------------------------------------------------------------------------
// Small async helpers

/** Rejects after `ms` unless `promise` settles first (the timer never keeps the process alive). */
export function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
    timer.unref();
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(error);
      },
    );
  });
}
