/**
 * The process configuration: base + overlay merging, the `${VAR}` allowlist and its patterns, and
 * the validation messages (unknown keys with their path, types, ranges, every problem at once).
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  ConfigError,
  type ConfigIssue,
  loadConfig,
  mergeConfig,
  readConfig,
  substitute,
} from '../src/config/index.ts';

const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));

function issuesOf(document: Record<string, unknown>, env: Record<string, string> = {}): ConfigIssue[] {
  return readConfig(document, env).issues;
}

async function rejection(promise: Promise<unknown>): Promise<ConfigError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof ConfigError, `expected a ConfigError, got ${String(error)}`);
    return error;
  }
  assert.fail('expected the configuration to be refused');
}

describe('config: merging', () => {
  it('merges tables key by key and lets the overlay replace scalars and arrays', () => {
    const merged = mergeConfig(
      { a: { x: 1, y: { z: 2, keep: true } }, list: [1, 2], top: 'base' },
      { a: { y: { z: 3 } }, list: [9], top: 'overlay' },
    );
    assert.deepEqual(merged, { a: { x: 1, y: { z: 3, keep: true } }, list: [9], top: 'overlay' });
  });

  describe('files', () => {
    let dir: string;
    before(async () => {
      dir = await mkdtemp(join(tmpdir(), 'tasker-config-'));
      await mkdir(join(dir, 'config'));
      await writeFile(
        join(dir, 'config/tasker.toml'),
        '[orchestration]\nshutdown_timeout_ms = 20000\n[orchestration.web]\nport = 9000\nhost = "0.0.0.0"\n',
      );
      await writeFile(join(dir, 'config/tasker.test.toml'), '[orchestration.web]\nport = 9100\n');
      await writeFile(join(dir, 'explicit.toml'), '[logging]\nlevel = "debug"\n');
      await writeFile(join(dir, 'broken.toml'), '[logging\nlevel = 1\n');
    });
    after(async () => {
      await rm(dir, { recursive: true, force: true });
    });

    it('reads the base, then the overlay of TASKER_ENV over it, over the schema defaults', async () => {
      const loaded = await loadConfig({ cwd: dir, env: { TASKER_ENV: 'test' } });
      assert.equal(loaded.environment, 'test');
      assert.deepEqual(loaded.files, ['config/tasker.toml', 'config/tasker.test.toml']);
      assert.equal(loaded.config.orchestration.web.port, 9100);
      assert.equal(loaded.config.orchestration.web.host, '0.0.0.0');
      assert.equal(loaded.config.orchestration.shutdown_timeout_ms, 20_000);
      assert.equal(loaded.config.orchestration.web.request_timeout_ms, 30_000);
      assert.equal(loaded.config.logging.level, 'info');
    });

    it('defaults to development and treats a missing overlay as empty', async () => {
      const loaded = await loadConfig({ cwd: dir, env: {} });
      assert.equal(loaded.environment, 'development');
      assert.deepEqual(loaded.files, ['config/tasker.toml']);
      assert.equal(loaded.config.orchestration.web.port, 9000);
    });

    it('reads only the TASKER_CONFIG file when it is set', async () => {
      const loaded = await loadConfig({
        cwd: dir,
        env: { TASKER_CONFIG: 'explicit.toml', TASKER_ENV: 'test' },
      });
      assert.deepEqual(loaded.files, ['explicit.toml']);
      assert.equal(loaded.config.logging.level, 'debug');
      assert.equal(loaded.config.orchestration.web.port, 8080);
    });

    it('refuses a missing TASKER_CONFIG file, broken TOML and an unknown TASKER_ENV', async () => {
      const missing = await rejection(loadConfig({ cwd: dir, env: { TASKER_CONFIG: 'nope.toml' } }));
      assert.match(missing.message, /nope\.toml: cannot be read \(ENOENT\)/);
      const broken = await rejection(loadConfig({ cwd: dir, env: { TASKER_CONFIG: 'broken.toml' } }));
      assert.match(broken.message, /broken\.toml: not valid TOML/);
      const environment = await rejection(loadConfig({ cwd: dir, env: { TASKER_ENV: 'staging' } }));
      assert.match(environment.message, /TASKER_ENV must be one of test, development, production/);
    });

    it('the repository config loads in every environment (production with DATABASE_URL)', async () => {
      const url = 'postgresql://tasker@db.internal:5432/tasker';
      for (const TASKER_ENV of ['development', 'test', 'production']) {
        const loaded = await loadConfig({ cwd: REPO_ROOT, env: { TASKER_ENV, DATABASE_URL: url } });
        assert.equal(loaded.config.database.url, url);
      }
      const embedded = await loadConfig({ cwd: REPO_ROOT, env: {} });
      assert.equal(embedded.config.database.url, '');
      assert.equal(embedded.config.database.data_dir, '.tasker/data');
      assert.equal(embedded.config.orchestration.web.port, 8080);
    });
  });
});

describe(`config: \${VAR} substitution`, () => {
  it('substitutes allowlisted variables and defaults', () => {
    assert.deepEqual(substitute(`\${TASKER_PORT}`, { TASKER_PORT: '9999' }), { ok: true, value: '9999' });
    assert.deepEqual(substitute(`\${TASKER_PORT:-8080}`, {}), { ok: true, value: '8080' });
    assert.deepEqual(substitute(`\${TASKER_PORT:-8080}`, { TASKER_PORT: '' }), { ok: true, value: '8080' });
    assert.deepEqual(substitute(`\${DATABASE_URL:-}`, {}), { ok: true, value: '' });
    assert.deepEqual(substitute(`dir/\${TASKER_DATA_DIR}/x`, { TASKER_DATA_DIR: 'data' }), {
      ok: true,
      value: 'dir/data/x',
    });
  });

  it('refuses variables off the allowlist, without reading them', () => {
    const result = substitute(`\${HOME}`, { HOME: '/root' });
    assert.equal(result.ok, false);
    assert.match(result.ok ? '' : (result.problems[0] ?? ''), /\$\{HOME\} is not an allowed variable/);
  });

  it('checks each variable against its pattern and never echoes the value', () => {
    const url = substitute(`\${DATABASE_URL}`, { DATABASE_URL: 'mysql://root:hunter2@db/x' });
    assert.equal(url.ok, false);
    const message = url.ok ? '' : url.problems.join(' ');
    assert.match(message, /DATABASE_URL must be a postgresql:\/\/ URL/);
    assert.doesNotMatch(message, /hunter2/);
    const port = substitute(`\${TASKER_PORT}`, { TASKER_PORT: '80; rm -rf /' });
    assert.match(port.ok ? '' : port.problems.join(' '), /TASKER_PORT must be a port number/);
  });

  it('refuses an unset variable without a default and a stray $', () => {
    const unset = substitute(`\${DATABASE_URL}`, {});
    assert.match(
      unset.ok ? '' : unset.problems.join(' '),
      /DATABASE_URL\} is not set and the placeholder has no default/,
    );
    const stray = substitute('pa$$word', {});
    assert.match(stray.ok ? '' : stray.problems.join(' '), /starts no/);
  });

  it('turns a substituted number or boolean into its type, but not a literal string', () => {
    const read = readConfig(
      { orchestration: { web: { port: `\${TASKER_PORT:-8080}`, enabled: true } } },
      { TASKER_PORT: '9091' },
    );
    assert.equal(read.config?.orchestration.web.port, 9091);
    const literal = issuesOf({ orchestration: { web: { port: '9091' } } });
    assert.deepEqual(literal, [
      { path: 'orchestration.web.port', message: 'must be an integer from 0 to 65535, got "9091"' },
    ]);
  });
});

describe('config: validation', () => {
  it('the empty document is the schema defaults', () => {
    const { config } = readConfig({}, {});
    assert.ok(config);
    assert.equal(config.database.url, '');
    assert.equal(config.database.data_dir, '.tasker/data');
    assert.equal(config.orchestration.web.port, 8080);
    assert.equal(config.orchestration.web.enabled, true);
    assert.deepEqual(config.orchestration.web.cors_origins, []);
    assert.equal(config.orchestration.shutdown_timeout_ms, 30_000);
    assert.equal(config.worker.max_concurrent_handlers, 10);
    assert.equal(config.logging.level, 'info');
  });

  it('refuses unknown keys with their path, at every depth', () => {
    const issues = issuesOf({ databse: {}, orchestration: { web: { prot: 1 } }, worker: { extra: true } });
    assert.deepEqual(
      issues.map((issue) => issue.path),
      ['databse', 'orchestration.web.prot', 'worker.extra'],
    );
    assert.ok(issues.every((issue) => issue.message.startsWith('unknown key')));
  });

  it('names wrong types and out-of-range values, all at once', () => {
    const issues = issuesOf({
      database: { pool: 5, migrate: 'yes' },
      orchestration: {
        web: { port: 70_000, request_timeout_ms: 1.5, cors_origins: ['*'] },
        readiness_mode: 'Fast',
      },
      worker: { template_dirs: 'examples/templates', handler_modules: [1] },
      logging: { level: 'loud' },
    });
    assert.deepEqual(issues, [
      { path: 'database.migrate', message: 'must be true or false, got "yes"' },
      { path: 'database.pool', message: 'must be a table, got 5' },
      {
        path: 'orchestration.readiness_mode',
        message: 'must be one of Hybrid, EventDrivenOnly, PollingOnly, got "Fast"',
      },
      { path: 'orchestration.web.port', message: 'must be an integer from 0 to 65535, got 70000' },
      {
        path: 'orchestration.web.request_timeout_ms',
        message: 'must be an integer from 100 to 300000, got 1.5',
      },
      {
        path: 'orchestration.web.cors_origins[0]',
        message: 'must be an origin like https://example.com, got "*"',
      },
      { path: 'worker.template_dirs', message: 'must be an array of strings, got "examples/templates"' },
      {
        path: 'worker.handler_modules[0]',
        message: 'must be a string (a module path, optionally with #exportName), got 1',
      },
      {
        path: 'logging.level',
        message: 'must be one of debug, info, warn, error, got "loud"',
      },
    ]);
  });

  it('checks cross-field rules (pool min ≤ max, depth thresholds in order) and hides the database URL', () => {
    assert.deepEqual(issuesOf({ database: { pool: { max_connections: 2, min_connections: 5 } } }), [
      { path: 'database.pool.min_connections', message: 'must not exceed database.pool.max_connections (2)' },
    ]);
    assert.deepEqual(
      issuesOf({ orchestration: { web: { backpressure: { queue_depth_critical: 20_000 } } } }).map(
        (issue) => issue.path,
      ),
      ['orchestration.web.backpressure.queue_depth_critical'],
    );
    assert.deepEqual(
      issuesOf({ orchestration: { decision_points: { max_decision_depth: 5, warn_threshold_depth: 8 } } }),
      [
        {
          path: 'orchestration.decision_points.warn_threshold_depth',
          message: 'must not exceed orchestration.decision_points.max_decision_depth',
        },
      ],
    );
    const url = issuesOf({ database: { url: 'mysql://root:hunter2@db/x' } });
    assert.deepEqual(url, [
      { path: 'database.url', message: 'must be a postgresql:// URL or empty (embedded PGlite)' },
    ]);
  });

  it('a ConfigError lists every problem, one per line, with the files read', () => {
    const error = new ConfigError(
      [
        { path: 'a.b', message: 'unknown key' },
        { path: 'c', message: 'must be true or false, got 1' },
      ],
      ['config/tasker.toml'],
    );
    assert.equal(error.code, 'INVALID_CONFIG');
    assert.equal(
      error.message,
      'invalid configuration (config/tasker.toml):\n  - a.b: unknown key\n  - c: must be true or false, got 1',
    );
  });
});
