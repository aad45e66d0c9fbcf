/**
 * A pino-backed `Logger` whose fields come out in the order of DESIGN.md §7 (D §6.2):
 * `correlation_id` first, then entity ids, then operation and state, then measurements, then the
 * error, then anything else. A pino instance passed as `logger` works too (it has the same
 * methods); this one adds the order and serializes `error` with pino's error serializer.
 */
import type { Logger } from '@tasker/core';
import { type DestinationStream, type Level, pino } from 'pino';

const OPERATION_KEYS = new Set([
  'operation',
  'method',
  'route',
  'loop',
  'queue',
  'from_state',
  'to_state',
  'state',
  'status',
  'outcome',
  'code',
]);
const ERROR_KEYS = new Set(['error', 'error_type', 'err']);

/** The rank of a field in DESIGN §7 order (lower first). */
function rank(key: string): number {
  if (key === 'correlation_id') return 0;
  if (key === 'parent_correlation_id') return 1;
  if (key.endsWith('_uuid') || key.endsWith('_id') || key === 'namespace') return 2;
  if (OPERATION_KEYS.has(key)) return 3;
  if (
    key.endsWith('_ms') ||
    key.endsWith('_seconds') ||
    key.endsWith('_count') ||
    key === 'count' ||
    key === 'restarts' ||
    key === 'retry_count' ||
    key === 'max_retries' ||
    key === 'attempts'
  ) {
    return 4;
  }
  if (ERROR_KEYS.has(key)) return 5;
  return 6;
}

/** The fields re-keyed in DESIGN §7 order (stable within a rank). */
export function orderFields(fields: object): Record<string, unknown> {
  const entries = Object.entries(fields).map((entry, index) => ({ entry, index, rank: rank(entry[0]) }));
  entries.sort((a, b) => a.rank - b.rank || a.index - b.index);
  return Object.fromEntries(entries.map(({ entry }) => entry));
}

/**
 * A `Logger` writing JSON lines through pino at `level` and above (to stdout, or `destination`).
 * Each line: `level`, `time` (ISO), the ordered fields, `msg`.
 */
export function pinoLogger(
  level: 'debug' | 'info' | 'warn' | 'error' = 'info',
  destination?: DestinationStream,
): Logger {
  const options = {
    level,
    base: undefined,
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label: string) => ({ level: label }) },
    serializers: { error: pino.stdSerializers.err, err: pino.stdSerializers.err },
  };
  const instance = destination === undefined ? pino(options) : pino(options, destination);
  const write = (at: Level) => (fields: object, message: string) =>
    instance[at](orderFields(fields), message);
  return { debug: write('debug'), info: write('info'), warn: write('warn'), error: write('error') };
}
