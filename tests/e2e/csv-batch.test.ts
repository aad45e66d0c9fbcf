/**
 * Acceptance workflows #24 and #26 end to end (reference C §6.4, §4.3): `CsvProcessing.*` over the
 * committed 1,000-row `examples/fixtures/products.csv`. 200 rows per batch ⇒ exactly five workers
 * `{T}_001…005`; the aggregator's totals and per-category counts equal a direct computation over the
 * file. The header-only `products_empty.csv` gives no_batches: the no-op placeholder `{T}_000` and
 * the aggregator complete with zeros. `products_malformed.csv` (400 rows, a bad price in row 250)
 * fails worker 002 permanently: under the templates' `continue_on_failure` it is resolved, and the
 * aggregator completes with batch 001's totals and the failure listed. A path outside the
 * repository fails the analyzer permanently.
 * An engine and a worker in one process, on each backend, in both result modes.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { BACKENDS } from '@tasker/db/testing';
import {
  malformedProductsCsv,
  PRODUCT_HEADER,
  productsCsv,
} from '../../examples/fixtures/generate-products.ts';
import { PUSH_MODES, System } from './support/system.ts';

const PRODUCTS = 'examples/fixtures/products.csv';
const EMPTY = 'examples/fixtures/products_empty.csv';

const MALFORMED = 'examples/fixtures/products_malformed.csv';

const read = (file: string) => readFileSync(new URL(`../../${file}`, import.meta.url), 'utf8');

/** The expected aggregate of data rows [from, to) of `file`, computed straight from the file. */
function expectedTotals(file: string, from = 0, to = Number.POSITIVE_INFINITY) {
  const rows = read(file).trim().split('\n').slice(1).slice(from, to);
  let cents = 0;
  let stock = 0;
  const categories: Record<string, number> = {};
  for (const row of rows) {
    const [, , , category = '', price = '', count = ''] = row.split(',');
    cents += Math.round(Number(price) * 100) * Number(count);
    stock += Number(count);
    categories[category] = (categories[category] ?? 0) + 1;
  }
  const sorted = Object.fromEntries(Object.entries(categories).sort(([a], [b]) => a.localeCompare(b)));
  return { rows: rows.length, stock, value: cents / 100, categories: sorted };
}

const WORKFLOWS = [
  {
    label: '#24 csv_processing_ts',
    namespace: 'csv_processing_ts',
    name: 'csv_product_inventory_analyzer_ts',
    analyzer: 'analyze_csv_ts',
    worker: 'process_csv_batch_ts',
    aggregator: 'aggregate_csv_results_ts',
  },
  {
    label: '#26 csv_processing_rust',
    namespace: 'csv_processing_rust',
    name: 'csv_product_inventory_analyzer',
    analyzer: 'analyze_csv',
    worker: 'process_csv_batch',
    aggregator: 'aggregate_csv_results',
  },
] as const;

const expected = expectedTotals(PRODUCTS);

describe('#24/#26 CSV fixtures', () => {
  it('the committed files are what the seeded generator writes', () => {
    assert.equal(read(PRODUCTS), productsCsv(1000));
    assert.equal(read(MALFORMED), malformedProductsCsv());
    assert.equal(read(EMPTY), `${PRODUCT_HEADER}\n`);
  });
});

for (const backend of BACKENDS)
  for (const [mode, options] of Object.entries(PUSH_MODES)) {
    describe(`#24/#26 CSV batches end to end (${backend}, ${mode})`, () => {
      let system: System;
      before(async () => {
        system = await System.start(backend, options);
      });
      after(() => system.stop());

      it('the fixture has 1000 rows in 6 categories', () => {
        assert.equal(expected.rows, 1000);
        assert.equal(Object.keys(expected.categories).length, 6);
      });

      for (const w of WORKFLOWS) {
        it(`${w.label}: 1000 rows ⇒ 5 workers of 200, totals equal the file's`, async () => {
          const f = await system.run(w.namespace, w.name, {
            csv_file_path: PRODUCTS,
            analysis_mode: 'inventory',
          });
          assert.equal(f.state, 'complete');
          const workers = ['001', '002', '003', '004', '005'].map((id) => `${w.worker}_${id}`);
          assert.deepEqual([...f.steps.keys()].sort(), [w.aggregator, w.analyzer, ...workers].sort());
          for (const [name, row] of f.steps) {
            assert.equal(row.current_state, 'complete', `${name} is complete`);
            assert.equal(row.attempts, 1, `${name} ran once`);
          }
          const analysis = f.steps.get(w.analyzer)?.results?.result;
          assert.equal(analysis?.total_rows, 1000);
          assert.equal(analysis?.batch_count, 5);
          workers.forEach((name, i) => {
            const result = f.steps.get(name)?.results?.result;
            assert.equal(result?.start_row, i * 200);
            assert.equal(result?.end_row, (i + 1) * 200);
            assert.equal(result?.items_processed, 200);
          });
          assert.deepEqual(f.steps.get(w.aggregator)?.results?.result, {
            no_batches: false,
            worker_count: 5,
            total_rows: 1000,
            total_processed: 1000,
            total_stock: expected.stock,
            total_inventory_value: expected.value,
            category_counts: expected.categories,
            failed_batches: [],
            aggregation_type: 'inventory_metrics',
          });
        });

        it(`${w.label}: an empty CSV ⇒ no_batches, the no-op placeholder and the aggregator with 0`, async () => {
          const f = await system.run(w.namespace, w.name, { csv_file_path: EMPTY });
          assert.equal(f.state, 'complete');
          assert.deepEqual([...f.steps.keys()].sort(), [w.aggregator, w.analyzer, `${w.worker}_000`].sort());
          for (const [name, row] of f.steps)
            assert.equal(row.current_state, 'complete', `${name} is complete`);
          assert.equal(f.steps.get(`${w.worker}_000`)?.results?.result?.no_op, true);
          assert.deepEqual(f.steps.get(w.aggregator)?.results?.result, {
            no_batches: true,
            worker_count: 1,
            total_rows: 0,
            total_processed: 0,
            total_stock: 0,
            total_inventory_value: 0,
            category_counts: {},
            failed_batches: [],
            aggregation_type: 'inventory_metrics',
          });
        });
        it(`${w.label}: continue_on_failure — a malformed row fails its worker; the others and the aggregator run`, async () => {
          const f = await system.run(w.namespace, w.name, { csv_file_path: MALFORMED });
          assert.equal(f.state, 'complete');
          const [ok, bad] = [`${w.worker}_001`, `${w.worker}_002`];
          assert.deepEqual([...f.steps.keys()].sort(), [w.aggregator, w.analyzer, ok, bad].sort());
          const failed = f.steps.get(bad);
          assert.equal(failed?.current_state, 'resolved_manually');
          assert.equal(failed?.attempts, 1);
          assert.equal(failed?.results?.error?.error_type, 'validation_error');
          for (const name of [w.analyzer, ok, w.aggregator]) {
            assert.equal(f.steps.get(name)?.current_state, 'complete', `${name} is complete`);
          }
          const first = expectedTotals(MALFORMED, 0, 200);
          assert.deepEqual(f.steps.get(w.aggregator)?.results?.result, {
            no_batches: false,
            worker_count: 2,
            total_rows: 400,
            total_processed: 200,
            total_stock: first.stock,
            total_inventory_value: first.value,
            category_counts: first.categories,
            failed_batches: [{ step: bad, error: 'row 250 of the CSV is malformed' }],
            aggregation_type: 'inventory_metrics',
          });
        });
      }

      for (const path of [
        '/etc/passwd',
        '../main/examples/fixtures/products.csv',
        'examples/../../etc/passwd',
      ]) {
        it(`rejects ${path}: the analyzer fails permanently, no workers`, async () => {
          const w = WORKFLOWS[0];
          const f = await system.run(w.namespace, w.name, { csv_file_path: path });
          assert.equal(f.state, 'error');
          assert.deepEqual([...f.steps.keys()], [w.analyzer]);
          const row = f.steps.get(w.analyzer);
          assert.equal(row?.current_state, 'error');
          assert.equal(row?.attempts, 1);
          assert.equal(row?.results?.error?.error_type, 'validation_error');
        });
      }
    });
  }
