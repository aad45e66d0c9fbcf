import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import {
  createPostgresDatabase,
  type Database,
  MigrationError,
  type MigrationReport,
  migrate,
} from '@tasker/db';
import { BACKENDS, createTestDatabase, type TestDatabase } from '@tasker/db/testing';

const CHILD = fileURLToPath(new URL('./fixtures/migrate-child.ts', import.meta.url));

const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex');

/** Temporary migration directories, removed after all tests. */
const directories: string[] = [];

async function migrationDirectory(files: Record<string, string>): Promise<string> {
  const directory = await mkdtemp(join(tmpdir(), 'tasker-migrate-test-'));
  directories.push(directory);
  for (const [name, sql] of Object.entries(files)) await writeFile(join(directory, name), sql);
  return directory;
}

after(async () => {
  await Promise.all(directories.map((directory) => rm(directory, { recursive: true, force: true })));
});

async function tableExists(db: Database, table: string): Promise<boolean> {
  const { rows } = await db.query<{ exists: boolean }>('SELECT to_regclass($1) IS NOT NULL AS exists', [
    `public.${table}`,
  ]);
  return rows[0]?.exists === true;
}

/** The recorded migrations of one package, or [] when nothing (not even the table) exists yet. */
async function recorded(db: Database, pkg: string): Promise<{ name: string; checksum: string }[]> {
  if (!(await tableExists(db, 'tasker_migrations'))) return [];
  const { rows } = await db.query<{ name: string; checksum: string }>(
    'SELECT name, checksum FROM public.tasker_migrations WHERE package = $1 ORDER BY name',
    [pkg],
  );
  return rows;
}

function assertMigrationError(code: string, message?: RegExp) {
  return (error: unknown): boolean => {
    assert.ok(error instanceof MigrationError, `expected MigrationError, got ${String(error)}`);
    assert.equal(error.code, code);
    if (message) assert.match(error.message, message);
    return true;
  };
}

/** Advisory lock key the concurrency test's first migration file waits for. */
const GATE_KEY = 7_262_000_099;

interface ChildResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the fixture script in a process of its own. */
function migrateInChild(url: string, directory: string, pkg: string): Promise<ChildResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CHILD, url, directory, pkg], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/**
 * Starts two child processes migrating the same database while the test holds the gate lock, waits
 * until both are blocked inside `migrate` (one in file 0001 on the gate, the other on the migration
 * lock), then opens the gate. Resolves with both reports once both children succeeded.
 */
async function migrateInTwoChildren(url: string, directory: string, pkg: string): Promise<MigrationReport[]> {
  const gate = createPostgresDatabase({ url, pool: { max: 1 } });
  try {
    await gate.query('SELECT pg_advisory_lock($1)', [GATE_KEY]);
    const exited: ChildResult[] = [];
    const children = [migrateInChild(url, directory, pkg), migrateInChild(url, directory, pkg)].map((child) =>
      child.then((result) => {
        exited.push(result);
        return result;
      }),
    );
    // Polls until both wait on a lock; a child that exits early ends the wait (and fails below).
    let bothWaiting = false;
    while (!bothWaiting && exited.length === 0) {
      const { rows } = await gate.query<{ waiting: number }>(
        `SELECT count(*) AS waiting FROM pg_locks
          WHERE locktype = 'advisory' AND NOT granted
            AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`,
      );
      bothWaiting = rows[0]?.waiting === 2;
      if (!bothWaiting) await delay(10);
    }
    await gate.query('SELECT pg_advisory_unlock($1)', [GATE_KEY]);
    const results = await Promise.all(children);
    for (const result of results) assert.equal(result.code, 0, result.stderr);
    assert.ok(bothWaiting, 'a child finished while the gate was closed');
    return results.map((result) => JSON.parse(result.stdout) as MigrationReport);
  } finally {
    await gate.close();
  }
}

for (const backend of BACKENDS) {
  describe(backend, () => {
    let test: TestDatabase;

    before(async () => {
      test = await createTestDatabase(backend);
    });

    after(async () => {
      await test?.dispose();
    });

    it('applies pending files in order, then nothing on a second run, then only a new file', async () => {
      const files = {
        '0001_a.sql': `CREATE TABLE order_log (seq serial PRIMARY KEY, step text NOT NULL);
          INSERT INTO order_log (step) VALUES ('a');`,
        '0002_b.sql': `CREATE TABLE order_b (id int PRIMARY KEY);
          INSERT INTO order_log (step) VALUES ('b');`,
        'README.md': 'not a migration',
      };
      const directory = await migrationDirectory(files);
      const sets = [{ package: 'order', directory }];

      const first = await migrate(test.db, sets);
      assert.deepEqual(first, { applied: ['order/0001_a.sql', 'order/0002_b.sql'], alreadyApplied: [] });
      const steps = await test.db.query('SELECT step FROM order_log ORDER BY seq');
      assert.deepEqual(steps.rows, [{ step: 'a' }, { step: 'b' }]);
      assert.deepEqual(await recorded(test.db, 'order'), [
        { name: '0001_a.sql', checksum: sha256(files['0001_a.sql']) },
        { name: '0002_b.sql', checksum: sha256(files['0002_b.sql']) },
      ]);

      const second = await migrate(test.db, sets);
      assert.deepEqual(second, { applied: [], alreadyApplied: ['order/0001_a.sql', 'order/0002_b.sql'] });
      assert.equal((await test.db.query('SELECT step FROM order_log')).rowCount, 2);

      await writeFile(join(directory, '0003_c.sql'), "INSERT INTO order_log (step) VALUES ('c');");
      const third = await migrate(test.db, sets);
      assert.deepEqual(third, {
        applied: ['order/0003_c.sql'],
        alreadyApplied: ['order/0001_a.sql', 'order/0002_b.sql'],
      });
      const final = await test.db.query('SELECT step FROM order_log ORDER BY seq');
      assert.deepEqual(final.rows, [{ step: 'a' }, { step: 'b' }, { step: 'c' }]);
    });

    it('applies several sets in the order given', async () => {
      const base = await migrationDirectory({
        '0001_base.sql': 'CREATE TABLE sets_base (id int PRIMARY KEY);',
      });
      const dependent = await migrationDirectory({
        '0001_dependent.sql': 'CREATE TABLE sets_dependent (base_id int REFERENCES sets_base (id));',
      });
      const report = await migrate(test.db, [
        { package: 'sets-base', directory: base },
        { package: 'sets-dependent', directory: dependent },
      ]);
      assert.deepEqual(report.applied, ['sets-base/0001_base.sql', 'sets-dependent/0001_dependent.sql']);
      assert.ok(await tableExists(test.db, 'sets_dependent'));
    });

    it('refuses to run and changes nothing when an applied file was edited', async () => {
      const original = 'CREATE TABLE edited_a (id int);';
      const directory = await migrationDirectory({
        '0001_a.sql': original,
        '0002_b.sql': 'CREATE TABLE edited_b (id int);',
      });
      const sets = [{ package: 'edited', directory }];
      await migrate(test.db, sets);
      const history = await recorded(test.db, 'edited');

      await writeFile(join(directory, '0001_a.sql'), `${original}\n-- edited afterwards\n`);
      await writeFile(join(directory, '0003_c.sql'), 'CREATE TABLE edited_c (id int);');
      await assert.rejects(
        migrate(test.db, sets),
        assertMigrationError('MIGRATION_CHECKSUM_MISMATCH', /edited\/0001_a\.sql/),
      );

      assert.equal(await tableExists(test.db, 'edited_c'), false);
      assert.deepEqual(await recorded(test.db, 'edited'), history);
      assert.deepEqual(history[0], { name: '0001_a.sql', checksum: sha256(original) });

      // Restoring the file lets the new one through.
      await writeFile(join(directory, '0001_a.sql'), original);
      assert.deepEqual((await migrate(test.db, sets)).applied, ['edited/0003_c.sql']);
    });

    it('rolls back everything of a run when a file fails, keeping the cause', async () => {
      const directory = await migrationDirectory({
        '0001_a.sql': 'CREATE TABLE failing_a (id int);',
        '0002_b.sql': 'INSERT INTO failing_a VALUES (1);\nSELECT * FROM failing_no_such_table;',
      });
      const sets = [{ package: 'failing', directory }];
      await assert.rejects(migrate(test.db, sets), (error: unknown) => {
        assertMigrationError('MIGRATION_FAILED', /failing\/0002_b\.sql/)(error);
        assert.ok(error instanceof Error);
        assert.equal((error.cause as { code?: unknown } | undefined)?.code, '42P01');
        return true;
      });
      assert.equal(await tableExists(test.db, 'failing_a'), false);
      assert.deepEqual(await recorded(test.db, 'failing'), []);

      // Fixed, the same files apply from the start.
      await writeFile(join(directory, '0002_b.sql'), 'INSERT INTO failing_a VALUES (1);');
      assert.deepEqual((await migrate(test.db, sets)).applied, ['failing/0001_a.sql', 'failing/0002_b.sql']);
      assert.deepEqual((await test.db.query('SELECT id FROM failing_a')).rows, [{ id: 1 }]);
    });

    it('rejects a badly named file before applying anything', async () => {
      for (const bad of [
        '1_b.sql',
        '0002-b.sql',
        '0002_B.sql',
        '00002_b.sql',
        '0002_.sql',
        '0002_b c.sql',
        '0002_b.SQL',
      ]) {
        const directory = await migrationDirectory({
          '0001_a.sql': 'CREATE TABLE badname_a (id int);',
          [bad]: 'CREATE TABLE badname_b (id int);',
        });
        await assert.rejects(
          migrate(test.db, [{ package: 'badname', directory }]),
          assertMigrationError('MIGRATION_FILE_NAME', new RegExp(bad.replace('.', '\\.'))),
          bad,
        );
      }
      assert.equal(await tableExists(test.db, 'badname_a'), false);
      assert.deepEqual(await recorded(test.db, 'badname'), []);
    });

    it('applies each file exactly once when two migrations run at the same time', async () => {
      // 0001 waits for a lock the test may hold, so the test can keep both runs inside `migrate` at once.
      const directory = await migrationDirectory({
        '0001_a.sql': `SELECT pg_advisory_xact_lock(${GATE_KEY});\nCREATE TABLE concurrent_runs (n int NOT NULL);`,
        '0002_b.sql': 'INSERT INTO concurrent_runs VALUES (1);',
      });
      const files = ['concurrent/0001_a.sql', 'concurrent/0002_b.sql'];
      // A database of its own, so both runs also race to create the history table.
      const fresh = await createTestDatabase(backend);
      try {
        let reports: MigrationReport[];
        if (backend === 'postgres') {
          assert.ok(fresh.url);
          reports = await migrateInTwoChildren(fresh.url, directory, 'concurrent');
        } else {
          // PGlite is one backend in this process: its transactions queue up behind each other.
          const sets = [{ package: 'concurrent', directory }];
          reports = await Promise.all([migrate(fresh.db, sets), migrate(fresh.db, sets)]);
        }
        // One run applied both files, the other found them applied.
        assert.deepEqual(reports.flatMap((report) => report.applied).sort(), files);
        assert.deepEqual(reports.flatMap((report) => report.alreadyApplied).sort(), files);
        assert.deepEqual(
          (await recorded(fresh.db, 'concurrent')).map((row) => row.name),
          ['0001_a.sql', '0002_b.sql'],
        );
        const { rows } = await fresh.db.query('SELECT count(*) AS n FROM concurrent_runs');
        assert.deepEqual(rows, [{ n: 1 }]);
      } finally {
        await fresh.dispose();
      }
    });
  });
}
