/**
 * The server's Prometheus metrics (prom-client, one registry per server). Names are those of
 * D §6.1 with `.` as `_`. Labels are bounded: the route pattern (never the raw URL), method and
 * status; queue names of the measured orchestration queues; fixed outcome words. No uuid or
 * correlation id is ever a label value.
 *
 * The engine's counters, the queue depths and the breaker state are read on scrape (`collect`),
 * so nothing is kept twice.
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { EngineMetrics } from '../engine.ts';
import type { CircuitBreaker } from './circuit-breaker.ts';
import type { ApiEngine } from './context.ts';
import type { DepthTier, HealthEvaluator } from './health-evaluator.ts';

const TIERS: Record<DepthTier, number> = { unknown: -1, normal: 0, warning: 1, critical: 2, overflow: 3 };

/** Request latency buckets in milliseconds. */
const LATENCY_BUCKETS = [1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000, 30_000];

export interface ApiMetrics {
  registry: Registry;
  /** One finished request. `route` is the pattern, or `unmatched`. */
  observeRequest(method: string, route: string, status: number, durationMs: number): void;
  /** One request refused by load shedding. */
  rejected(endpoint: string, reason: 'backpressure' | 'circuit_breaker_open' | 'intake_queue_full'): void;
}

function engineMetricsOf(engine: ApiEngine): (() => EngineMetrics) | undefined {
  if (!('metrics' in engine) || typeof engine.metrics !== 'function') return undefined;
  const metrics = engine.metrics as () => EngineMetrics;
  return () => metrics.call(engine);
}

/** A positive numeric engine setting, or undefined (a stand-in engine has none). */
function engineCapacity(
  engine: ApiEngine,
  setting: 'maxRetryTimers' | 'createQueueCapacity',
): number | undefined {
  if (!('settings' in engine)) return undefined;
  const max = (engine.settings as Record<string, unknown> | undefined)?.[setting];
  return typeof max === 'number' && max > 0 ? max : undefined;
}

/** A counter whose value is read from a monotonic source on scrape. */
function sourcedCounter(
  registry: Registry,
  name: string,
  help: string,
  labelName: string,
  read: () => Record<string, number> | undefined,
): void {
  new Counter({
    name,
    help,
    labelNames: [labelName],
    registers: [registry],
    collect() {
      const values = read();
      if (values === undefined) return;
      this.reset();
      for (const [label, value] of Object.entries(values)) this.inc({ [labelName]: label }, value);
    },
  });
}

export function createApiMetrics(sources: {
  engine: ApiEngine;
  breaker: CircuitBreaker;
  evaluator: HealthEvaluator;
  version: string;
}): ApiMetrics {
  const { engine, breaker, evaluator } = sources;
  const registry = new Registry();
  const registers = [registry];

  const requests = new Counter({
    name: 'tasker_api_requests_total',
    help: 'HTTP requests answered, by route pattern, method and status',
    labelNames: ['method', 'route', 'status'],
    registers,
  });
  const latency = new Histogram({
    name: 'tasker_api_request_duration_milliseconds',
    help: 'HTTP request latency in milliseconds, by route pattern, method and status',
    labelNames: ['method', 'route', 'status'],
    buckets: LATENCY_BUCKETS,
    registers,
  });
  const rejections = new Counter({
    name: 'tasker_api_requests_rejected_total',
    help: 'Requests refused by load shedding, by endpoint and reason',
    labelNames: ['endpoint', 'reason'],
    registers,
  });

  new Gauge({
    name: 'tasker_orchestration_info',
    help: 'Build information (always 1)',
    labelNames: ['version'],
    registers,
    collect() {
      this.set({ version: sources.version }, 1);
    },
  });
  new Gauge({
    name: 'tasker_orchestration_running',
    help: '1 when the orchestration engine runs, else 0',
    registers,
    collect() {
      this.set(engine.health().status === 'stopped' ? 0 : 1);
    },
  });
  new Gauge({
    name: 'tasker_api_circuit_breaker_state',
    help: 'API database circuit breaker: 0 closed, 1 half-open, 2 open',
    registers,
    collect() {
      this.set(breaker.stateValue);
    },
  });
  sourcedCounter(
    registry,
    'tasker_api_circuit_breaker_rejections_total',
    'Database calls refused by the open API circuit breaker',
    'breaker',
    () => ({ api_database: breaker.rejected }),
  );

  // the health evaluator
  new Gauge({
    name: 'tasker_health_backpressure_active',
    help: '1 while task creation is shed, else 0',
    registers,
    collect() {
      this.set(evaluator.decision().accept_tasks ? 0 : 1);
    },
  });
  sourcedCounter(
    registry,
    'tasker_health_backpressure_activations_total',
    'Times backpressure became active',
    'source',
    () => ({ evaluator: evaluator.stats.activations }),
  );
  sourcedCounter(
    registry,
    'tasker_health_evaluations_total',
    'Health evaluations run, by outcome',
    'outcome',
    () => ({ ok: evaluator.stats.evaluations - evaluator.stats.errors, error: evaluator.stats.errors }),
  );
  new Gauge({
    name: 'tasker_health_evaluation_duration_milliseconds',
    help: 'Duration of the last health evaluation',
    registers,
    collect() {
      this.set(evaluator.stats.lastDurationMs);
    },
  });
  new Gauge({
    name: 'tasker_health_database_connected',
    help: "1 when the evaluator's last database check passed, else 0",
    registers,
    collect() {
      this.set(evaluator.decision().database === 'healthy' ? 1 : 0);
    },
  });
  new Gauge({
    name: 'tasker_health_queue_depth_current',
    help: 'Deepest measured orchestration queue at the last evaluation',
    registers,
    collect() {
      this.set(Math.max(0, ...evaluator.decision().queues.map((queue) => queue.depth)));
    },
  });
  new Gauge({
    name: 'tasker_health_queue_depth_tier',
    help: 'Queue depth tier: -1 unknown, 0 normal, 1 warning, 2 critical, 3 overflow',
    registers,
    collect() {
      this.set(TIERS[evaluator.decision().queue_depth_tier]);
    },
  });
  new Gauge({
    name: 'tasker_queue_depth',
    help: 'Messages in an orchestration queue at the last evaluation',
    labelNames: ['queue'],
    registers,
    collect() {
      this.reset();
      for (const queue of evaluator.decision().queues) this.set({ queue: queue.queue }, queue.depth);
    },
  });
  new Gauge({
    name: 'tasker_queue_oldest_message_age_seconds',
    help: 'Age of the oldest message of an orchestration queue at the last evaluation',
    labelNames: ['queue'],
    registers,
    collect() {
      this.reset();
      for (const queue of evaluator.decision().queues) {
        if (queue.oldest_message_age_seconds !== null) {
          this.set({ queue: queue.queue }, queue.oldest_message_age_seconds);
        }
      }
    },
  });

  // supervised loops of the engine and the evaluator (loop names are fixed words)
  sourcedCounter(
    registry,
    'tasker_loop_restarts_total',
    'Supervised loop restarts after a crash',
    'loop',
    () =>
      Object.fromEntries(
        [...engine.health().loops, ...evaluator.loops()].map((loop) => [loop.name, loop.restarts]),
      ),
  );

  // the engine's own counters
  const read = engineMetricsOf(engine);
  if (read !== undefined) {
    sourcedCounter(
      registry,
      'tasker_tasks_requests_total',
      'Task requests taken in by the engine, by outcome',
      'outcome',
      () => {
        const m = read();
        return { created: m.tasksCreated, rejected: m.requestsRejected };
      },
    );
    sourcedCounter(
      registry,
      'tasker_steps_results_processed_total',
      'Step result messages processed, by outcome',
      'outcome',
      () => {
        const m = read();
        return {
          applied: m.resultsApplied,
          duplicate: m.resultsDuplicate,
          malformed: m.resultsMalformed,
          failed: m.resultsFailed,
        };
      },
    );
    sourcedCounter(
      registry,
      'tasker_tasks_ready_evaluated_total',
      'Tasks evaluated by readiness discovery',
      'source',
      () => ({ poller: read().readyTasksEvaluated }),
    );
    sourcedCounter(registry, 'tasker_retry_timers_total', 'Retry timers, by event', 'event', () => {
      const m = read();
      return { scheduled: m.retryTimersScheduled, fired: m.retryTimersFired, dropped: m.retryTimersDropped };
    });
    new Gauge({
      name: 'tasker_retry_timers_pending',
      help: 'Retry timers held in memory',
      registers,
      collect() {
        this.set(read().retryTimersPending);
      },
    });
    const timers = engineCapacity(engine, 'maxRetryTimers');
    const intake = engineCapacity(engine, 'createQueueCapacity');
    if (timers !== undefined || intake !== undefined) {
      new Gauge({
        name: 'tasker_channel_saturation',
        help: 'Fill of an internal bounded queue in percent',
        labelNames: ['channel'],
        registers,
        collect() {
          const m = read();
          if (timers !== undefined)
            this.set({ channel: 'retry_timers' }, (m.retryTimersPending / timers) * 100);
          if (intake !== undefined) this.set({ channel: 'task_intake' }, (m.createsWaiting / intake) * 100);
        },
      });
    }
  }

  return {
    registry,
    observeRequest(method, route, status, durationMs) {
      const labels = { method, route, status: String(status) };
      requests.inc(labels);
      latency.observe(labels, durationMs);
    },
    rejected(endpoint, reason) {
      rejections.inc({ endpoint, reason });
    },
  };
}
