import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import { createPostgresDatabase, type ListenSession, type Notification } from '@tasker/db';
import { BACKENDS, createTestDatabase, type TestDatabase } from '@tasker/db/testing';

/** Collects a session's notifications; `next()` waits for the next one (the test timeout bounds it). */
class Inbox {
  readonly received: Notification[] = [];
  #read = 0;
  #waiter: (() => void) | null = null;
  readonly ended: Promise<Error>;
  endCalls = 0;
  #end: (error: Error) => void = () => undefined;

  constructor() {
    this.ended = new Promise((resolve) => {
      this.#end = resolve;
    });
  }

  readonly handlers = {
    onNotification: (notification: Notification): void => {
      this.received.push(notification);
      this.#waiter?.();
    },
    onEnd: (error: Error): void => {
      this.endCalls++;
      this.#end(error);
    },
  };

  async next(): Promise<Notification> {
    while (this.#read >= this.received.length) {
      await new Promise<void>((resolve) => {
        this.#waiter = resolve;
      });
      this.#waiter = null;
    }
    const notification = this.received[this.#read];
    assert.ok(notification);
    this.#read++;
    return notification;
  }
}

const TRICKY_TEXT = [
  "it's",
  'say "hi"',
  "'; DROP TABLE items; --",
  'back\\slash $1 $$dollar$$',
  'ñ 日本語 🎉 \u00e9\u0301',
  'line\nbreak\ttab',
  '',
];

const PG_ONLY = { skip: 'PostgreSQL server behaviour; PGlite has no server connections' };

for (const backend of BACKENDS) {
  describe(backend, () => {
    let test: TestDatabase;

    before(async () => {
      test = await createTestDatabase(backend);
      await test.db.exec(`
        CREATE TABLE items (id int8 GENERATED ALWAYS AS IDENTITY PRIMARY KEY, name text NOT NULL UNIQUE);
        CREATE TABLE docs (id serial PRIMARY KEY, body jsonb NOT NULL, at timestamptz NOT NULL DEFAULT now());
      `);
    });

    after(async () => {
      await test?.dispose();
    });

    beforeEach(async () => {
      await test.db.query('DELETE FROM items');
    });

    async function countItems(): Promise<number> {
      const { rows } = await test.db.query<{ n: number }>('SELECT count(*) AS n FROM items');
      assert.ok(rows[0]);
      return rows[0].n;
    }

    async function listen(channels: string[]): Promise<{ session: ListenSession; inbox: Inbox }> {
      const inbox = new Inbox();
      const session = await test.db.openListenSession(inbox.handlers);
      for (const channel of channels) await session.listen(channel);
      return { session, inbox };
    }

    function notify(channel: string, payload: string): Promise<unknown> {
      return test.db.query('SELECT pg_notify($1, $2)', [channel, payload]);
    }

    describe('bound parameters', () => {
      it('round-trips text with quotes, backslashes, dollars, newlines and unicode', async () => {
        for (const text of TRICKY_TEXT) {
          const { rows } = await test.db.query<{ t: string; n: number }>(
            'SELECT $1::text AS t, char_length($1::text) AS n',
            [text],
          );
          assert.deepEqual(rows, [{ t: text, n: [...text].length }]);
        }
      });

      it('stores and finds text values through parameters only', async () => {
        await test.db.transaction(async (tx) => {
          for (const name of TRICKY_TEXT) await tx.query('INSERT INTO items (name) VALUES ($1)', [name]);
          for (const name of TRICKY_TEXT) {
            const { rows } = await tx.query<{ name: string }>('SELECT name FROM items WHERE name = $1', [
              name,
            ]);
            assert.deepEqual(rows, [{ name }]);
          }
        });
        assert.equal(await countItems(), TRICKY_TEXT.length);
      });

      it('passes JSON as a string and returns parsed json and jsonb', async () => {
        const value = {
          name: 'o\'brien "the" 🎉',
          nested: { list: [1, 2.5, null, true, 'x'], empty: {} },
          sql: "'); DROP TABLE docs; --",
        };
        const { rows } = await test.db.query('SELECT $1::json AS j, $1::jsonb AS jb', [
          JSON.stringify(value),
        ]);
        assert.deepEqual(rows, [{ j: value, jb: value }]);

        const inserted = await test.db.query<{ id: number }>(
          'INSERT INTO docs (body) VALUES ($1::jsonb) RETURNING id',
          [JSON.stringify(value)],
        );
        const id = inserted.rows[0]?.id;
        const found = await test.db.query('SELECT body FROM docs WHERE id = $1 AND body @> $2::jsonb', [
          id,
          JSON.stringify({ nested: { list: [2.5] } }),
        ]);
        assert.deepEqual(found.rows, [{ body: value }]);
      });

      it('returns int8 as numbers while they are safe integers, as bigint beyond', async () => {
        const { rows } = await test.db.query(
          `SELECT $1::int8 AS max_safe, $2::int8 AS min_safe, count(*) AS count, sum(g)::int8 AS total,
                  $3::int8 AS huge
             FROM generate_series(1, 3) AS g`,
          [Number.MAX_SAFE_INTEGER, Number.MIN_SAFE_INTEGER, '9223372036854775807'],
        );
        assert.deepEqual(rows, [
          {
            max_safe: Number.MAX_SAFE_INTEGER,
            min_safe: Number.MIN_SAFE_INTEGER,
            count: 3,
            total: 6,
            huge: 9223372036854775807n,
          },
        ]);
      });

      it('returns timestamptz as Date and accepts Date and ISO strings', async () => {
        const at = new Date('2024-02-29T12:34:56.789Z');
        const { rows } = await test.db.query<{ a: Date; b: Date; now: Date }>(
          'SELECT $1::timestamptz AS a, $2::timestamptz AS b, now() AS now',
          [at, '2024-02-29T13:34:56.789+01:00'],
        );
        const row = rows[0];
        assert.ok(row);
        assert.ok(row.a instanceof Date && row.b instanceof Date && row.now instanceof Date);
        assert.equal(row.a.getTime(), at.getTime());
        assert.equal(row.b.getTime(), at.getTime());
      });

      it('passes null and returns booleans and ints as JS values', async () => {
        const { rows } = await test.db.query('SELECT $1::text AS t, $2::bool AS b, $3::int4 AS i', [
          null,
          true,
          7,
        ]);
        assert.deepEqual(rows, [{ t: null, b: true, i: 7 }]);
      });

      it('reports rowCount of inserts, updates and selects', async () => {
        const inserted = await test.db.query("INSERT INTO items (name) VALUES ('r1'), ('r2'), ('r3')");
        assert.equal(inserted.rowCount, 3);
        const updated = await test.db.query("UPDATE items SET name = name || '!' WHERE name <> 'r1'");
        assert.equal(updated.rowCount, 2);
        const selected = await test.db.query('SELECT name FROM items ORDER BY name');
        assert.equal(selected.rowCount, 3);
        assert.deepEqual(
          selected.rows.map((row) => row.name),
          ['r1', 'r2!', 'r3!'],
        );
        const deleted = await test.db.query('DELETE FROM items');
        assert.equal(deleted.rowCount, 3);
      });

      it('rejects a failing statement with the SQLSTATE as code', async () => {
        await assert.rejects(test.db.query('SELECT * FROM no_such_table'), { code: '42P01' });
        await assert.rejects(test.db.query('SELECT $1::int4', ['not a number']), { code: '22P02' });
      });
    });

    describe('transaction', () => {
      it('commits when the function resolves and returns its value', async () => {
        const result = await test.db.transaction(async (tx) => {
          await tx.query('INSERT INTO items (name) VALUES ($1)', ['committed-1']);
          await tx.query('INSERT INTO items (name) VALUES ($1)', ['committed-2']);
          return 'done';
        });
        assert.equal(result, 'done');
        const { rows } = await test.db.query('SELECT name FROM items ORDER BY name');
        assert.deepEqual(rows, [{ name: 'committed-1' }, { name: 'committed-2' }]);
      });

      it('rolls back and rethrows the original error when the function rejects', async () => {
        const failure = new Error('handler failed');
        let seenInside = -1;
        await assert.rejects(
          test.db.transaction(async (tx) => {
            await tx.query('INSERT INTO items (name) VALUES ($1)', ['rolled-back']);
            const { rows } = await tx.query<{ n: number }>('SELECT count(*) AS n FROM items');
            seenInside = rows[0]?.n ?? -1;
            throw failure;
          }),
          (error: unknown) => error === failure,
        );
        assert.equal(seenInside, 1);
        assert.equal(await countItems(), 0);
      });

      it('rolls back earlier statements when a statement fails', async () => {
        await assert.rejects(
          test.db.transaction(async (tx) => {
            await tx.query('INSERT INTO items (name) VALUES ($1)', ['first']);
            await tx.query('INSERT INTO items (name) VALUES ($1)', ['first']);
          }),
          { code: '23505' },
        );
        assert.equal(await countItems(), 0);
        // The database stays usable after a rollback.
        await test.db.transaction((tx) => tx.query('INSERT INTO items (name) VALUES ($1)', ['after']));
        assert.equal(await countItems(), 1);
      });
    });

    describe('exec', () => {
      it('runs a script of several statements', async () => {
        await test.db.exec(`
          CREATE TABLE script_a (v text);
          INSERT INTO script_a VALUES ('x'), ('y');
          INSERT INTO script_a SELECT v || v FROM script_a;
          -- a comment; with a semicolon
          CREATE INDEX script_a_v ON script_a (v);
        `);
        const { rows } = await test.db.query('SELECT v FROM script_a ORDER BY v');
        assert.deepEqual(rows, [{ v: 'x' }, { v: 'xx' }, { v: 'y' }, { v: 'yy' }]);
      });

      it('applies nothing of a script when one of its statements fails', async () => {
        await assert.rejects(
          test.db.exec(`INSERT INTO items (name) VALUES ('from-script'); SELECT * FROM no_such_table;`),
          { code: '42P01' },
        );
        assert.equal(await countItems(), 0);
      });
    });

    describe('LISTEN sessions', () => {
      it('receives pg_notify on a dotted channel with the exact payload', async () => {
        const channel = 'pgmq_message_ready.orders';
        const payload = `{"msg_id":42,"queue":"orders"} 'quoted' "double" ñ 🎉`;
        const { session, inbox } = await listen([channel]);
        try {
          await notify(channel, payload);
          assert.deepEqual(await inbox.next(), { channel, payload });
          if (backend === 'postgres') {
            assert.ok(Number.isInteger(session.processId) && (session.processId ?? 0) > 0);
          } else {
            assert.equal(session.processId, null);
          }
        } finally {
          await session.close();
        }
      });

      it('stops receiving a channel after unlisten', async () => {
        const { session, inbox } = await listen(['unlisten.gone', 'unlisten.marker']);
        try {
          await notify('unlisten.gone', 'before');
          assert.deepEqual(await inbox.next(), { channel: 'unlisten.gone', payload: 'before' });
          await session.unlisten('unlisten.gone');
          await notify('unlisten.gone', 'after');
          // Notifications arrive in commit order: once the later marker is here, the other would be too.
          await notify('unlisten.marker', 'marker');
          assert.deepEqual(await inbox.next(), { channel: 'unlisten.marker', payload: 'marker' });
          assert.deepEqual(
            inbox.received.map((n) => n.payload),
            ['before', 'marker'],
          );
        } finally {
          await session.close();
        }
      });

      it('never delivers a notification sent in a rolled-back transaction', async () => {
        const channel = 'rollback.ready';
        const { session, inbox } = await listen([channel]);
        try {
          await assert.rejects(
            test.db.transaction(async (tx) => {
              await tx.query('SELECT pg_notify($1, $2)', [channel, 'rolled back']);
              throw new Error('abort');
            }),
            /abort/,
          );
          await notify(channel, 'marker');
          assert.deepEqual(await inbox.next(), { channel, payload: 'marker' });
          assert.equal(inbox.received.length, 1);
        } finally {
          await session.close();
        }
      });

      it('delivers a committed transaction notification once, at commit', async () => {
        const channel = 'commit.ready';
        const { session, inbox } = await listen([channel]);
        try {
          await test.db.transaction(async (tx) => {
            await tx.query('SELECT pg_notify($1, $2)', [channel, 'committed']);
            await tx.query('SELECT pg_notify($1, $2)', [channel, 'committed']);
          });
          await notify(channel, 'marker');
          // PostgreSQL folds identical notifications of one transaction into one.
          assert.deepEqual(await inbox.next(), { channel, payload: 'committed' });
          assert.deepEqual(await inbox.next(), { channel, payload: 'marker' });
          assert.equal(inbox.received.length, 2);
        } finally {
          await session.close();
        }
      });

      it('holds notifications while paused and delivers them in order on resume', async () => {
        const channel = 'paused.ready';
        const { session, inbox } = await listen([channel]);
        try {
          session.pause();
          for (const payload of ['one', 'two', 'three']) await notify(channel, payload);
          assert.equal(inbox.received.length, 0);
          session.resume();
          const payloads = [];
          for (let i = 0; i < 3; i++) payloads.push((await inbox.next()).payload);
          assert.deepEqual(payloads, ['one', 'two', 'three']);
        } finally {
          await session.close();
        }
      });

      it('closes a paused session without delivering what it held or calling onEnd', async () => {
        const channel = 'closing.paused';
        const { session, inbox } = await listen([channel]);
        session.pause();
        await notify(channel, 'held');
        await session.close();
        assert.equal(inbox.received.length, 0);
        assert.equal(inbox.endCalls, 0);
      });

      it('keeps sessions independent: each gets only its own channels', async () => {
        const first = await listen(['independent.a']);
        const second = await listen(['independent.a', 'independent.b']);
        try {
          await first.session.close();
          await notify('independent.a', 'a1');
          await notify('independent.b', 'b1');
          assert.deepEqual(await second.inbox.next(), { channel: 'independent.a', payload: 'a1' });
          assert.deepEqual(await second.inbox.next(), { channel: 'independent.b', payload: 'b1' });
          assert.equal(first.inbox.received.length, 0);
        } finally {
          await second.session.close();
          await first.session.close();
        }
      });

      it('rejects an invalid channel before sending anything', async () => {
        const { session } = await listen([]);
        try {
          await assert.rejects(session.listen('a"; DROP TABLE items; --'), { code: 'DB_CONFIG_INVALID' });
          await assert.rejects(session.unlisten('a-b'), { code: 'DB_CONFIG_INVALID' });
        } finally {
          await session.close();
        }
      });
    });

    describe('server settings', () => {
      it(
        'sets the default timeouts on pool and transaction connections',
        backend === 'pglite' ? PG_ONLY : {},
        async () => {
          const show = async () => {
            const [a, b] = await Promise.all([
              test.db.query('SHOW statement_timeout'),
              test.db.transaction((tx) => tx.query('SHOW idle_in_transaction_session_timeout')),
            ]);
            return [a.rows[0], b.rows[0]];
          };
          assert.deepEqual(await show(), [
            { statement_timeout: '30s' },
            { idle_in_transaction_session_timeout: '1min' },
          ]);
        },
      );

      it(
        'prepares a parameterized statement once per connection and follows a replaced function',
        backend === 'pglite' ? PG_ONLY : {},
        async () => {
          assert.ok(test.url);
          const db = createPostgresDatabase({ url: test.url, pool: { max: 1 } });
          try {
            await db.exec(
              'CREATE FUNCTION prepared_probe(v int) RETURNS int LANGUAGE sql AS $$ SELECT v + 1 $$',
            );
            const probe = 'SELECT prepared_probe($1::int) AS r';
            assert.deepEqual((await db.query(probe, [1])).rows, [{ r: 2 }]);
            assert.deepEqual((await db.query(probe, [2])).rows, [{ r: 3 }]);
            const prepared = await db.query<{ n: number }>(
              'SELECT count(*)::int AS n FROM pg_prepared_statements WHERE statement = $1',
              [probe],
            );
            assert.equal(prepared.rows[0]?.n, 1, 'one prepared statement for the text');
            // a replaced body is what the prepared statement runs next
            await db.exec(
              'CREATE OR REPLACE FUNCTION prepared_probe(v int) RETURNS int LANGUAGE sql AS $$ SELECT v * 10 $$',
            );
            assert.deepEqual((await db.query(probe, [3])).rows, [{ r: 30 }]);
            // a statement that fails to prepare is prepared again once it can be
            const late = 'SELECT prepared_late($1::int) AS r';
            await assert.rejects(db.query(late, [1]), { code: '42883' });
            await db.exec('CREATE FUNCTION prepared_late(v int) RETURNS int LANGUAGE sql AS $$ SELECT v $$');
            assert.deepEqual((await db.query(late, [7])).rows, [{ r: 7 }]);
            // past the cap of distinct texts, statements still run (unnamed)
            for (let i = 0; i < 1100; i++) {
              assert.deepEqual((await db.query(`SELECT $1::int + ${i} AS r`, [1])).rows, [{ r: 1 + i }]);
            }
          } finally {
            await db.exec(
              'DROP FUNCTION IF EXISTS prepared_probe(int); DROP FUNCTION IF EXISTS prepared_late(int)',
            );
            await db.close();
          }
        },
      );

      it('enforces statement_timeout (SQLSTATE 57014)', backend === 'pglite' ? PG_ONLY : {}, async () => {
        assert.ok(test.url);
        const db = createPostgresDatabase({ url: test.url, statementTimeoutMs: 200, pool: { max: 1 } });
        try {
          await assert.rejects(db.query('SELECT pg_sleep(5)'), { code: '57014' });
          // The connection stays usable afterwards.
          assert.deepEqual((await db.query('SELECT 1 AS one')).rows, [{ one: 1 }]);
        } finally {
          await db.close();
        }
      });

      it(
        'applies the configured timeouts and application name',
        backend === 'pglite' ? PG_ONLY : {},
        async () => {
          assert.ok(test.url);
          const db = createPostgresDatabase({
            url: test.url,
            statementTimeoutMs: 4321,
            idleInTransactionTimeoutMs: 12_345,
            applicationName: 'tasker-driver-test',
          });
          try {
            const { rows } = await db.query(
              `SELECT current_setting('statement_timeout') AS statement,
                    current_setting('idle_in_transaction_session_timeout') AS idle,
                    current_setting('application_name') AS app`,
            );
            assert.deepEqual(rows, [{ statement: '4321ms', idle: '12345ms', app: 'tasker-driver-test' }]);
            const shown = await db.transaction((tx) => tx.query('SHOW idle_in_transaction_session_timeout'));
            assert.deepEqual(shown.rows, [{ idle_in_transaction_session_timeout: '12345ms' }]);
          } finally {
            await db.close();
          }
        },
      );

      it(
        'calls onEnd when the LISTEN backend is terminated',
        backend === 'pglite' ? PG_ONLY : {},
        async () => {
          const { session, inbox } = await listen(['terminated.ready']);
          try {
            assert.ok(session.processId);
            const { rows } = await test.db.query('SELECT pg_terminate_backend($1) AS done', [
              session.processId,
            ]);
            assert.deepEqual(rows, [{ done: true }]);
            const error = await inbox.ended;
            assert.ok(error instanceof Error);
          } finally {
            await session.close();
          }
        },
      );
    });
  });
}
