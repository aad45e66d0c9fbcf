/**
 * #24 `csv_processing_ts/csv_product_inventory_analyzer_ts` and #26
 * `csv_processing_rust/csv_product_inventory_analyzer` (reference C §6.4, §4.3; `CsvProcessing.*`,
 * shared): the analyzer (batchable) counts the data rows of the products CSV named by the task
 * context's `csv_file_path` and asks for one worker per `batch_size` rows (config 200, at most
 * `max_workers`); each worker reads its row range [start_cursor, end_cursor) of the file and reports
 * the items, stock, inventory value (price × stock) and per-category counts of its rows; the
 * aggregator (deferred convergence) adds them up. A file without data rows gives `no_batches`: the
 * no-op placeholder `{T}_000` runs and the aggregator reports zeros. A malformed row fails its
 * worker permanently; under the templates' `continue_on_failure` the aggregator still runs and
 * lists the failed batches (`failed_batches`) next to the totals of the others.
 *
 * `csv_file_path` is relative to the repository root (an absolute path must lie inside it); `..`
 * segments, and paths that resolve (symlinks included) outside the root, are rejected permanently.
 * Money is summed in integer cents. The worker template name T comes from the analyzer's
 * `worker_template_name` (C §3.2), which it repeats in its result for the aggregator.
 */
import { readFile, realpath } from 'node:fs/promises';
import { isAbsolute, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { JsonObject } from '@tasker/core';
import {
  aggregateBatchResults,
  defineBatchAnalyzer,
  defineBatchWorker,
  defineHandler,
  type StepContext,
} from '@tasker/worker';
import {
  fromCents,
  invalid,
  isObject,
  optionalString,
  requireNumber,
  requireString,
  toCents,
} from './support.ts';

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
const COLUMNS = ['id', 'sku', 'name', 'category', 'price', 'stock'] as const;
/** A non-negative amount with at most two decimals, and a count. */
const PRICE = /^\d{1,9}(\.\d{1,2})?$/;
const STOCK = /^\d{1,9}$/;

/** The file `path` names, inside the repository root, or a permanent validation error. */
async function resolveCsvPath(path: string): Promise<string> {
  if (path.includes('\0') || path.split(/[\\/]/).includes('..')) {
    throw invalid(`csv_file_path must not contain '..': ${path}`, { field: 'csv_file_path' });
  }
  const root = await realpath(REPO_ROOT);
  const inside = (candidate: string) => {
    const rel = relative(root, candidate);
    return rel !== '' && !rel.startsWith(`..${sep}`) && rel !== '..' && !isAbsolute(rel);
  };
  const wanted = resolve(root, path);
  if (!inside(wanted)) {
    throw invalid(`csv_file_path must lie inside the repository: ${path}`, { field: 'csv_file_path' });
  }
  let real: string;
  try {
    real = await realpath(wanted);
  } catch {
    throw invalid(`csv_file_path does not exist: ${path}`, { field: 'csv_file_path' });
  }
  if (!inside(real)) {
    throw invalid(`csv_file_path resolves outside the repository: ${path}`, { field: 'csv_file_path' });
  }
  return real;
}

/** Fields of one CSV line (`"` quotes, `""` inside quotes). */
function splitLine(line: string, delimiter: string): string[] {
  const fields: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const char = line[i];
    if (quoted) {
      if (char === '"' && line[i + 1] === '"') {
        field += '"';
        i++;
      } else if (char === '"') quoted = false;
      else field += char;
    } else if (char === '"') quoted = true;
    else if (char === delimiter) {
      fields.push(field);
      field = '';
    } else field += char;
  }
  fields.push(field);
  return fields;
}

interface CsvFile {
  header: string[];
  rows: string[];
}

/** The header and the data lines (blank lines skipped) of the CSV at `path`. */
async function readCsv(path: string): Promise<CsvFile> {
  const real = await resolveCsvPath(path);
  const lines = (await readFile(real, 'utf8')).split(/\r?\n/).filter((line) => line.trim() !== '');
  const [first, ...rows] = lines;
  return { header: first === undefined ? [] : splitLine(first, ','), rows };
}

function csvPath(ctx: StepContext): string {
  return requireString(ctx.getInput('csv_file_path'), 'csv_file_path');
}

export const CsvAnalyzerHandler = defineBatchAnalyzer(
  'CsvProcessing.StepHandlers.CsvAnalyzerHandler',
  {},
  async ({ context }) => {
    const path = csvPath(context);
    const { header, rows } = await readCsv(path);
    const missing = COLUMNS.filter((column) => !header.includes(column));
    if (missing.length > 0) {
      throw invalid(`CSV ${path} lacks the columns ${missing.join(', ')}`, { field: 'csv_file_path' });
    }
    const template = context.getConfig('worker_template_name');
    return {
      totalItems: rows.length,
      metadata: {
        csv_file_path: path,
        total_rows: rows.length,
        analysis_mode: optionalString(context.getInputOr('analysis_mode', 'inventory'), 'inventory'),
        worker_template_name: typeof template === 'string' ? template : null,
      },
    };
  },
);

export const CsvBatchProcessorHandler = defineBatchWorker(
  'CsvProcessing.StepHandlers.CsvBatchProcessorHandler',
  {},
  async ({ batch, context }) => {
    const start = requireNumber(batch.startCursor, 'cursor.start_cursor');
    const end = requireNumber(batch.endCursor, 'cursor.end_cursor');
    const { header, rows } = await readCsv(csvPath(context));
    if (
      !(
        Number.isSafeInteger(start) &&
        Number.isSafeInteger(end) &&
        0 <= start &&
        start <= end &&
        end <= rows.length
      )
    ) {
      throw invalid(`cursor [${start}, ${end}) is outside the ${rows.length} rows of the file`, {
        field: 'cursor',
      });
    }
    const at = Object.fromEntries(COLUMNS.map((column) => [column, header.indexOf(column)]));
    let valueCents = 0;
    let stock = 0;
    const categories: Record<string, number> = {};
    for (let row = start; row < end; row++) {
      const fields = splitLine(rows[row] ?? '', ',');
      const price = fields[at.price ?? -1] ?? '';
      const count = fields[at.stock ?? -1] ?? '';
      const category = fields[at.category ?? -1] ?? '';
      if (!(PRICE.test(price) && STOCK.test(count)) || category === '') {
        throw invalid(`row ${row + 1} of the CSV is malformed`, { row: row + 1 });
      }
      valueCents += toCents(Number(price)) * Number(count);
      stock += Number(count);
      categories[category] = (categories[category] ?? 0) + 1;
    }
    return {
      batch_id: batch.batchId,
      start_row: start,
      end_row: end,
      items_processed: end - start,
      total_stock: stock,
      inventory_value: fromCents(valueCents),
      category_counts: categories,
      processing_mode:
        context.getConfig('processing_mode') ?? context.getConfig('operation') ?? 'inventory_analysis',
    };
  },
);

/** The analyzer's result among the dependencies (the one with a batch_processing_outcome). */
function analyzerResult(ctx: StepContext): JsonObject {
  for (const name of ctx.getDependencyResultKeys()) {
    const result = ctx.getDependencyResult(name);
    if (isObject(result) && isObject(result.batch_processing_outcome)) return result;
  }
  throw invalid('the CSV analyzer result is missing from the dependencies');
}

export const CsvResultsAggregatorHandler = defineHandler(
  'CsvProcessing.StepHandlers.CsvResultsAggregatorHandler',
  {},
  ({ context }) => {
    const analysis = analyzerResult(context);
    const outcome = analysis.batch_processing_outcome as JsonObject;
    const template =
      typeof outcome.worker_template_name === 'string'
        ? outcome.worker_template_name
        : analysis.worker_template_name;
    const batch = aggregateBatchResults(context, requireString(template, 'worker_template_name'));
    let processed = 0;
    let stock = 0;
    let valueCents = 0;
    const categories: Record<string, number> = {};
    // continue_on_failure: a worker that failed permanently is here with its error
    const failed: JsonObject[] = batch.failed.map((worker) => ({
      step: worker.name,
      error: worker.error?.message ?? 'unknown error',
    }));
    for (const { name, result } of batch.succeeded) {
      if (!isObject(result)) {
        failed.push({ step: name, error: 'unknown error' });
        continue;
      }
      processed += requireNumber(result.items_processed, `${name}.items_processed`);
      stock += requireNumber(result.total_stock, `${name}.total_stock`);
      valueCents += toCents(requireNumber(result.inventory_value, `${name}.inventory_value`));
      const counts = isObject(result.category_counts) ? result.category_counts : {};
      for (const [category, count] of Object.entries(counts)) {
        categories[category] = (categories[category] ?? 0) + requireNumber(count, `${name}.category_counts`);
      }
    }
    return {
      no_batches: batch.isNoBatches,
      worker_count: batch.workers.length,
      total_rows: requireNumber(analysis.total_rows, 'total_rows'),
      total_processed: processed,
      total_stock: stock,
      total_inventory_value: fromCents(valueCents),
      category_counts: Object.fromEntries(Object.entries(categories).sort(([a], [b]) => a.localeCompare(b))),
      failed_batches: failed,
      aggregation_type: context.getConfig('aggregation_type') ?? 'inventory_metrics',
    };
  },
);
