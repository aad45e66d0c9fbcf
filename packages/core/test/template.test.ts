import assert from 'node:assert/strict';
import { basename, dirname, join, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  checkTemplateText,
  findCycles,
  initialStepEdges,
  initialStepSet,
  type JsonObject,
  type JsonValue,
  loadTemplateFile,
  loadTemplates,
  namespaceQueueNames,
  normalizeTemplateDocument,
  parseTemplate,
  type StepDefinition,
  type TaskTemplate,
  TEMPLATE_DEFAULTS,
  TEMPLATE_SCHEMA,
  type TemplateIssue,
  TemplateValidationError,
  templateKey,
} from '../src/template/index.ts';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(HERE, '../../..');
const EXAMPLES = join(ROOT, 'examples/templates');
const FIXTURES = join(HERE, 'fixtures/templates');
const BAD = join(FIXTURES, 'bad');
const GOOD = join(FIXTURES, 'good');

/** Step counts of every example template, keyed namespace/name (acceptance workflows, C §6). */
const EXAMPLE_STEP_COUNTS: Record<string, number> = {
  'linear_workflow_ts/mathematical_sequence_ts': 4,
  'diamond_workflow_ts/parallel_computation_ts': 4,
  'rust_e2e_tree/hierarchical_tree': 8,
  'rust_e2e_mixed_dag/complex_dag': 7,
  'rust_e2e_order_fulfillment/business_workflow': 4,
  'ecommerce_ts/ecommerce_order_processing_ts': 5,
  'data_pipeline_ts/analytics_pipeline_ts': 8,
  'microservices_ts/user_registration_ts': 5,
  'payments_ts/payments_process_refund_ts': 4,
  'customer_success_ts/customer_success_process_refund_ts': 5,
  'payments/process_refund': 4,
  'customer_success/process_refund': 5,
  'test_scenarios_ts/success_only_ts': 1,
  'test_scenarios_ts/permanent_error_only_ts': 1,
  'test_scenarios_ts/retryable_error_only_ts': 1,
  'test_errors_ts/error_testing_handler_ts': 3,
  'rust_e2e_retry/retry_mechanics_test': 1,
  'rust_e2e_retry/retry_exhaustion_test': 1,
  'test_sql/boundary_max_attempts_one': 1,
  'test_sql/boundary_max_attempts_three': 1,
  'test_sql/boundary_non_retryable_first': 1,
  'test_sql/boundary_non_retryable_retries': 1,
  'rust_e2e_linear/mathematical_sequence': 4,
  'dlq_test/dlq_staleness_test': 2,
  'resolver_tests_ts/method_dispatch_ts': 4,
  'resolver_tests_ts/resolver_hints_ts': 3,
  'conditional_approval_ts/approval_routing_ts': 6,
  'csv_processing_ts/csv_product_inventory_analyzer_ts': 3,
  'data_processing/large_dataset_processor': 3,
  'csv_processing_rust/csv_product_inventory_analyzer': 3,
  'combined_workflow_test/diamond_decision_batch_processor': 10,
  'ts_e2e_checkpoint/checkpoint_yield_test_ts': 3,
  'rust_e2e_batch_retry/batch_resumption_test': 2,
  'domain_events_ts/domain_event_publishing_ts': 4,
};

function exampleFile(key: string): string {
  return join(EXAMPLES, `${key}.yaml`);
}

/** The TemplateValidationError `action` throws. */
async function rejection(action: () => Promise<unknown>): Promise<TemplateValidationError> {
  try {
    await action();
  } catch (error) {
    assert.ok(
      error instanceof TemplateValidationError,
      `expected a TemplateValidationError, got ${String(error)}`,
    );
    assert.equal(error.code, 'TEMPLATE_INVALID');
    return error;
  }
  assert.fail('expected the template to be rejected');
}

async function badFixture(name: string): Promise<TemplateValidationError> {
  return rejection(() => loadTemplateFile(join(BAD, name)));
}

/**
 * The issue about `path` whose message matches `message`; asserts it names the file, the step (when
 * given) and sits on a line, and that the error message shows it.
 */
function expectIssue(
  error: TemplateValidationError,
  expected: { file: string; path: string; message: RegExp; step?: string },
): TemplateIssue {
  const issue = error.issues.find(
    (candidate) => candidate.path === expected.path && expected.message.test(candidate.message),
  );
  assert.ok(
    issue,
    `no issue at ${expected.path} matching ${expected.message}; got:\n${error.issues.map((i) => `${i.path}: ${i.message}`).join('\n')}`,
  );
  assert.equal(basename(issue.source), expected.file);
  assert.equal(issue.step, expected.step);
  assert.equal(typeof issue.line, 'number');
  assert.match(error.message, new RegExp(expected.file.replaceAll('.', '\\.')));
  if (expected.step !== undefined) assert.ok(error.message.includes(`step "${expected.step}"`));
  return issue;
}

function step(template: TaskTemplate, name: string): StepDefinition {
  const found = template.steps.find((candidate) => candidate.name === name);
  assert.ok(found, `step ${name} not in ${templateKey(template)}`);
  return found;
}

describe('example templates (the acceptance workflows of C §6)', () => {
  it('all load and validate with no errors or warnings, with the expected step counts', async () => {
    const result = await loadTemplates([EXAMPLES]);
    assert.deepEqual(
      result.errors.map((error) => error.message),
      [],
    );
    const counts = Object.fromEntries(
      result.templates.map(({ template }) => [
        `${template.namespace_name}/${template.name}`,
        template.steps.length,
      ]),
    );
    assert.deepEqual(counts, EXAMPLE_STEP_COUNTS);
    for (const loaded of result.templates) {
      assert.deepEqual(loaded.warnings, [], `warnings in ${loaded.source}`);
      assert.equal(loaded.template.version, '1.0.0');
      assert.equal(
        basename(loaded.source),
        `${loaded.template.name}.yaml`,
        'files are named after the template, in a folder named after the namespace',
      );
      assert.equal(basename(dirname(loaded.source)), loaded.template.namespace_name);
    }
  });

  it('cover every one of the 30 acceptance workflows', async () => {
    const { templates } = await loadTemplates([EXAMPLES]);
    const numbers = new Set(
      templates.flatMap(({ template }) =>
        (template.metadata?.tags ?? []).flatMap((tag) =>
          tag.startsWith('acceptance:') ? [Number(tag.slice(11))] : [],
        ),
      ),
    );
    assert.deepEqual(
      [...numbers].sort((a, b) => a - b),
      Array.from({ length: 30 }, (_, index) => index + 1),
    );
  });

  it('load in the test environment too', async () => {
    const result = await loadTemplates([EXAMPLES], { environment: 'test' });
    assert.equal(result.errors.length, 0);
    assert.equal(result.templates.length, Object.keys(EXAMPLE_STEP_COUNTS).length);
    const retryable = result.templates.find(({ template }) => template.name === 'retryable_error_only_ts');
    assert.ok(retryable);
    assert.deepEqual(step(retryable.template, 'retryable_error_step_ts').retry, {
      retryable: true,
      max_attempts: 2,
      backoff: 'exponential',
      backoff_base_ms: 100,
      max_backoff_ms: 1000,
    });
  });

  it('keep the reference names, types and settings', async () => {
    const approval = await loadTemplateFile(exampleFile('conditional_approval_ts/approval_routing_ts'));
    assert.equal(step(approval, 'routing_decision_ts').type, 'decision');
    assert.equal(step(approval, 'finalize_approval_ts').type, 'deferred_convergence');
    assert.deepEqual(step(approval, 'finalize_approval_ts').dependencies, [
      'auto_approve_ts',
      'manager_approval_ts',
      'finance_review_ts',
    ]);

    const csv = await loadTemplateFile(exampleFile('csv_processing_ts/csv_product_inventory_analyzer_ts'));
    assert.deepEqual(step(csv, 'process_csv_batch_ts').batch_config, {
      batch_size: 200,
      parallelism: 5,
      cursor_field: 'row_number',
      worker_template: 'process_csv_batch_ts',
      failure_strategy: 'continue_on_failure',
    });

    const permanent = await loadTemplateFile(exampleFile('test_scenarios_ts/permanent_error_only_ts'));
    assert.equal(step(permanent, 'permanent_error_step_ts').retry.retryable, false);
    assert.equal(step(permanent, 'permanent_error_step_ts').retry.max_attempts, 1);

    const checkpoint = await loadTemplateFile(exampleFile('ts_e2e_checkpoint/checkpoint_yield_test_ts'));
    assert.equal(step(checkpoint, 'checkpoint_yield_batch_ts').retry.max_attempts, 5);

    const dispatch = await loadTemplateFile(exampleFile('resolver_tests_ts/method_dispatch_ts'));
    assert.deepEqual(
      dispatch.steps.map((s) => [s.handler.callable, s.handler.method]),
      [
        ['ResolverTests.StepHandlers.MultiMethodHandler', 'validate'],
        ['ResolverTests.StepHandlers.MultiMethodHandler', 'process'],
        ['ResolverTests.StepHandlers.MultiMethodHandler', 'refund'],
        ['ResolverTests.StepHandlers.MultiMethodHandler', 'call'],
      ],
    );
    const hints = await loadTemplateFile(exampleFile('resolver_tests_ts/resolver_hints_ts'));
    assert.deepEqual(
      hints.steps.map((s) => s.handler.resolver),
      ['explicit_mapping', 'explicit_mapping', null],
    );

    const events = await loadTemplateFile(exampleFile('domain_events_ts/domain_event_publishing_ts'));
    assert.deepEqual(
      events.steps.flatMap((s) =>
        s.publishes_events.map((e) => `${e.name}:${e.delivery_mode}:${e.condition}`),
      ),
      [
        'order.validated:fast:success',
        'payment.processed:durable:success',
        'payment.failed:durable:failure',
        'inventory.updated:fast:always',
        'notification.sent:fast:success',
      ],
    );

    const dlq = await loadTemplateFile(exampleFile('dlq_test/dlq_staleness_test'));
    assert.equal(dlq.lifecycle?.max_steps_in_process_minutes, 2);
    assert.equal(dlq.lifecycle?.staleness_action, 'dlq');

    const payments = await loadTemplateFile(exampleFile('payments/process_refund'));
    const support = await loadTemplateFile(exampleFile('customer_success/process_refund'));
    assert.equal(payments.name, support.name);
    assert.notEqual(payments.namespace_name, support.namespace_name);
  });

  it('round-trip through JSON unchanged (the stored configuration)', async () => {
    const { templates } = await loadTemplates([EXAMPLES]);
    for (const { template } of templates) {
      assert.deepEqual(JSON.parse(JSON.stringify(template)), template);
      assert.equal(Object.hasOwn(template, 'environments'), false);
    }
  });
});

describe('initial step set (C §3.2)', () => {
  it('conditional approval: only the 2 steps before the decision exist at creation', async () => {
    const template = await loadTemplateFile(exampleFile('conditional_approval_ts/approval_routing_ts'));
    assert.deepEqual(
      initialStepSet(template).map((s) => s.name),
      ['validate_request_ts', 'routing_decision_ts'],
    );
    assert.deepEqual(initialStepEdges(template), [
      { from: 'validate_request_ts', to: 'routing_decision_ts', name: 'provides' },
    ]);
  });

  it('batch processing: 1 step (the batchable analyzer) at creation', async () => {
    const template = await loadTemplateFile(
      exampleFile('csv_processing_ts/csv_product_inventory_analyzer_ts'),
    );
    assert.deepEqual(
      initialStepSet(template).map((s) => s.name),
      ['analyze_csv_ts'],
    );
    assert.deepEqual(initialStepEdges(template), []);
    const checkpoint = await loadTemplateFile(exampleFile('ts_e2e_checkpoint/checkpoint_yield_test_ts'));
    assert.deepEqual(
      initialStepSet(checkpoint).map((s) => s.name),
      ['analyze_items_ts'],
    );
  });

  it('decision plus batch: the diamond and the decision, nothing below it', async () => {
    const template = await loadTemplateFile(
      exampleFile('combined_workflow_test/diamond_decision_batch_processor'),
    );
    assert.deepEqual(
      initialStepSet(template).map((s) => s.name),
      ['ddb_diamond_start', 'branch_evens', 'branch_odds', 'ddb_routing_decision'],
    );
    assert.equal(initialStepEdges(template).length, 4);
  });

  it('plain DAGs: every step, with every declared edge', async () => {
    const tree = await loadTemplateFile(exampleFile('rust_e2e_tree/hierarchical_tree'));
    assert.equal(initialStepSet(tree).length, 8);
    assert.equal(initialStepEdges(tree).length, 10);
    const order = await loadTemplateFile(exampleFile('rust_e2e_order_fulfillment/business_workflow'));
    assert.deepEqual(
      initialStepEdges(order).map((edge) => `${edge.from}>${edge.to}`),
      [
        'validate_order>reserve_inventory',
        'validate_order>process_payment',
        'reserve_inventory>process_payment',
        'validate_order>ship_order',
        'reserve_inventory>ship_order',
        'process_payment>ship_order',
      ],
    );
  });

  it('excludes nested decisions and everything below the first decision', () => {
    const template = parseTemplate(
      `name: nested
namespace_name: fixture_ns
version: 1.0.0
steps:
  - {name: root, handler: {callable: R}}
  - {name: side, handler: {callable: S}}
  - {name: d1, type: decision, dependencies: [root], handler: {callable: D1}}
  - {name: d2, type: decision, dependencies: [d1], handler: {callable: D2}}
  - {name: leaf, dependencies: [d2], handler: {callable: L}}
  - {name: after_side, dependencies: [side], handler: {callable: A}}
`,
      { source: 'nested.yaml' },
    );
    assert.deepEqual(
      initialStepSet(template).map((s) => s.name),
      ['root', 'side', 'd1', 'after_side'],
    );
  });
});

describe('aliases and defaults', () => {
  it('resolves step_type, depends_on and context_schema and fills every default explicitly', async () => {
    const template = await loadTemplateFile(join(GOOD, 'aliases-defaults.yaml'));
    assert.deepEqual(template, {
      name: 'aliases_defaults',
      namespace_name: 'fixture_ns',
      version: '1.0.0',
      description: null,
      metadata: null,
      task_handler: null,
      system_dependencies: { primary: 'default', secondary: [] },
      domain_events: [],
      input_schema: { type: 'object' },
      default_context: {},
      identity_strategy: 'strict',
      lifecycle: null,
      steps: [
        {
          name: 'root',
          description: null,
          type: 'standard',
          handler: { callable: 'Fixture.Root', method: 'call', resolver: null, initialization: {} },
          dependencies: [],
          retry: {
            retryable: true,
            max_attempts: 3,
            backoff: 'exponential',
            backoff_base_ms: 1000,
            max_backoff_ms: 30000,
          },
          timeout_seconds: null,
          system_dependency: null,
          publishes_events: [],
          batch_config: null,
          result_schema: null,
          composition: null,
        },
        {
          name: 'gate',
          description: null,
          type: 'decision',
          handler: { callable: 'Fixture.Gate', method: 'call', resolver: null, initialization: {} },
          dependencies: ['root'],
          retry: {
            retryable: true,
            max_attempts: 3,
            backoff: 'exponential',
            backoff_base_ms: 1000,
            max_backoff_ms: 30000,
          },
          timeout_seconds: null,
          system_dependency: null,
          publishes_events: [],
          batch_config: null,
          result_schema: null,
          composition: null,
        },
        {
          name: 'branch',
          description: null,
          type: 'standard',
          handler: { callable: 'Fixture.Branch', method: 'call', resolver: null, initialization: {} },
          dependencies: ['gate'],
          retry: {
            retryable: true,
            max_attempts: 3,
            backoff: 'exponential',
            backoff_base_ms: 1000,
            max_backoff_ms: 30000,
          },
          timeout_seconds: null,
          system_dependency: null,
          publishes_events: [],
          batch_config: null,
          result_schema: null,
          composition: null,
        },
      ],
    });
  });

  it('fills event, batch and lifecycle defaults', () => {
    const template = parseTemplate(`name: defaults
namespace_name: fixture_ns
version: 1.0.0
lifecycle: {max_duration_minutes: 60}
steps:
  - name: split
    type: batchable
    handler: {callable: S, initialization: {worker_template_name: work}}
    publishes_events: [{name: split.done, schema: {type: object}}]
  - name: work
    type: batch_worker
    dependencies: [split]
    handler: {callable: W}
    batch_config: {worker_template: work}
  - {name: merge, type: deferred_convergence, dependencies: [work], handler: {callable: M}}
`);
    assert.deepEqual(step(template, 'split').publishes_events, [
      {
        name: 'split.done',
        description: null,
        condition: 'success',
        schema: { type: 'object' },
        delivery_mode: 'durable',
        publisher: null,
      },
    ]);
    assert.deepEqual(step(template, 'work').batch_config, {
      batch_size: 1000,
      parallelism: 10,
      cursor_field: 'id',
      worker_template: 'work',
      failure_strategy: 'continue_on_failure',
    });
    assert.deepEqual(template.lifecycle, {
      max_duration_minutes: 60,
      max_waiting_for_dependencies_minutes: null,
      max_waiting_for_retry_minutes: null,
      max_steps_in_process_minutes: null,
      staleness_action: 'dlq',
      auto_fail_on_timeout: null,
      auto_dlq_on_timeout: null,
    });
  });

  it('tolerates the original fixtures’ shape: nulls, task_handler, metadata extras; unknown keys are warnings', async () => {
    const warnings: TemplateIssue[] = [];
    const template = await loadTemplateFile(join(GOOD, 'legacy-keys.yaml'), {
      onWarning: (warning) => warnings.push(warning),
    });
    assert.deepEqual(
      warnings.map((w) => [w.path, w.step, w.message]),
      [
        ['/steps/0/retry/limit', 'only_step', 'unknown key, ignored'],
        ['/steps/0/lifecycle', 'only_step', 'unknown key, ignored'],
      ],
    );
    assert.ok(warnings.every((w) => basename(w.source) === 'legacy-keys.yaml' && typeof w.line === 'number'));
    assert.equal(template.metadata?.notes, 'kept: metadata is open');
    assert.equal(template.metadata?.documentation_url, null);
    assert.deepEqual(template.task_handler, { callable: 'typescript_ffi_handler', initialization: {} });
    const only = step(template, 'only_step');
    assert.equal(only.handler.method, 'call');
    assert.equal(only.system_dependency, null);
    assert.equal(only.timeout_seconds, null);
    assert.equal(Object.hasOwn(only.retry, 'limit'), false);
    assert.equal(Object.hasOwn(only, 'lifecycle'), false);
  });

  it('says the same defaults as the JSON Schema annotations', () => {
    const definitions = TEMPLATE_SCHEMA.definitions as JsonObject;
    const defaultsOf = (definition: string): Record<string, JsonValue> => {
      const properties = (definitions[definition] as JsonObject).properties as JsonObject;
      return Object.fromEntries(
        Object.entries(properties).flatMap(([key, value]) =>
          (value as JsonObject).default === undefined
            ? []
            : [[key, (value as JsonObject).default as JsonValue]],
        ),
      );
    };
    assert.deepEqual(defaultsOf('retry'), TEMPLATE_DEFAULTS.retry);
    assert.deepEqual(defaultsOf('batch_config'), TEMPLATE_DEFAULTS.batch);
    assert.deepEqual(defaultsOf('event_declaration'), TEMPLATE_DEFAULTS.event);
    assert.equal(defaultsOf('handler').method, TEMPLATE_DEFAULTS.handlerMethod);
    assert.equal(defaultsOf('lifecycle').staleness_action, TEMPLATE_DEFAULTS.stalenessAction);
    assert.equal(defaultsOf('system_dependencies').primary, TEMPLATE_DEFAULTS.systemDependencyPrimary);
    assert.equal(defaultsOf('step').type, TEMPLATE_DEFAULTS.stepType);
  });

  it('validates an already parsed document (e.g. JSON from an API) the same way', () => {
    const template = normalizeTemplateDocument(
      {
        name: 'from_json',
        namespace_name: 'fixture_ns',
        version: '2.1.0',
        steps: [{ name: 's', handler: { callable: 'S' } }],
      },
      { source: 'api' },
    );
    assert.equal(template.steps[0]?.retry.max_attempts, 3);
    assert.throws(
      () =>
        normalizeTemplateDocument(
          { name: 'x', namespace_name: 'fixture_ns', version: '1', steps: [] },
          { source: 'api' },
        ),
      (error: unknown) =>
        error instanceof TemplateValidationError &&
        error.issues.some((issue) => issue.path === '/version') &&
        error.issues.some((issue) => issue.path === '/steps'),
    );
  });
});

describe('environment overrides', () => {
  const file = join(GOOD, 'environments.yaml');

  it('applies nothing without an environment, and drops the environments key', async () => {
    const template = await loadTemplateFile(file);
    assert.equal(Object.hasOwn(template, 'environments'), false);
    assert.equal(step(template, 'first').timeout_seconds, 30);
    assert.equal(step(template, 'second').timeout_seconds, 60);
    assert.equal(step(template, 'first').retry.max_attempts, 5);
  });

  it('applies ALL, merges initialization and replaces retry as a whole, in order', async () => {
    const template = await loadTemplateFile(file, { environment: 'test' });
    const first = step(template, 'first');
    assert.equal(first.timeout_seconds, 10);
    assert.equal(step(template, 'second').timeout_seconds, 10);
    assert.deepEqual(first.handler.initialization, { url: 'http://localhost:3000', keep: true, mock: true });
    // Replaced, not merged: the fields the override leaves out take the defaults.
    assert.deepEqual(first.retry, { ...TEMPLATE_DEFAULTS.retry, max_attempts: 2 });
    assert.equal(step(template, 'second').retry.max_attempts, 3);
  });

  it('applies only the selected environment', async () => {
    const template = await loadTemplateFile(file, { environment: 'development' });
    assert.equal(step(template, 'second').timeout_seconds, 600);
    assert.equal(step(template, 'second').retry.max_attempts, 9);
    assert.equal(step(template, 'first').timeout_seconds, 30);
    const unknown = await loadTemplateFile(file, { environment: 'production' });
    assert.deepEqual(unknown, await loadTemplateFile(file));
  });
});

describe('validation rules (one bad fixture each)', () => {
  it('step names are unique', async () => {
    const error = await badFixture('duplicate-step-names.yaml');
    expectIssue(error, {
      file: 'duplicate-step-names.yaml',
      path: '/steps/1/name',
      step: 'fetch',
      message: /duplicate step name: steps 0 and 1/,
    });
  });

  it('every dependency names a step', async () => {
    const error = await badFixture('missing-dependency.yaml');
    expectIssue(error, {
      file: 'missing-dependency.yaml',
      path: '/steps/1/dependencies/1',
      step: 'save',
      message: /depends on "transform", which is not a step of this template/,
    });
  });

  it('no cycles, reported with the cycle path', async () => {
    const error = await badFixture('cycle.yaml');
    expectIssue(error, {
      file: 'cycle.yaml',
      path: '/steps/1/dependencies',
      step: 'alpha',
      message: /^dependency cycle: "alpha" → "beta" → "gamma" → "alpha"$/,
    });
    assert.equal(error.issues.length, 1);
  });

  it('no step depends on itself', async () => {
    const error = await badFixture('self-dependency.yaml');
    expectIssue(error, {
      file: 'self-dependency.yaml',
      path: '/steps/0/dependencies/0',
      step: 'loop',
      message: /depends on itself/,
    });
    assert.equal(error.issues.length, 1);
  });

  it('decision steps have at least one dependency', async () => {
    const error = await badFixture('decision-without-dependency.yaml');
    expectIssue(error, {
      file: 'decision-without-dependency.yaml',
      path: '/steps/0/dependencies',
      step: 'choose',
      message: /decision step needs at least one dependency/,
    });
  });

  it('batch_worker steps have batch_config', async () => {
    const error = await badFixture('batch-worker-without-config.yaml');
    expectIssue(error, {
      file: 'batch-worker-without-config.yaml',
      path: '/steps/1/batch_config',
      step: 'work',
      message: /batch_worker step needs batch_config/,
    });
  });

  it('batch_worker steps depend only on batchable steps', async () => {
    const error = await badFixture('batch-worker-parent-not-batchable.yaml');
    expectIssue(error, {
      file: 'batch-worker-parent-not-batchable.yaml',
      path: '/steps/1/dependencies',
      step: 'work',
      message: /may depend only on batchable steps.*"prepare" \(standard\)/,
    });
  });

  it("a batch_worker's worker_template is its own name", async () => {
    const error = await badFixture('batch-worker-template-mismatch.yaml');
    expectIssue(error, {
      file: 'batch-worker-template-mismatch.yaml',
      path: '/steps/1/batch_config/worker_template',
      step: 'work',
      message: /must be the step's own name "work"/,
    });
  });

  it("a batchable step's worker_template_name names a batch_worker step", async () => {
    const error = await badFixture('batchable-unknown-worker-template.yaml');
    expectIssue(error, {
      file: 'batchable-unknown-worker-template.yaml',
      path: '/steps/0/handler/initialization/worker_template_name',
      step: 'split',
      message: /"wrok" is not a batch_worker step/,
    });
  });

  it('only deferred_convergence steps depend on a batch_worker template', async () => {
    const error = await badFixture('depends-on-batch-worker.yaml');
    expectIssue(error, {
      file: 'depends-on-batch-worker.yaml',
      path: '/steps/2/dependencies/0',
      step: 'report',
      message: /depends on batch_worker template "work": only deferred_convergence steps may/,
    });
  });

  it('a deferred_convergence step converges decision branches or batch workers (else it is never created)', async () => {
    const error = await badFixture('deferred-never-created.yaml');
    expectIssue(error, {
      file: 'deferred-never-created.yaml',
      path: '/steps/2/dependencies',
      step: 'join',
      message: /created only by a decision or by batch processing/,
    });
  });

  it('a deferred_convergence step has dependencies', async () => {
    const error = await badFixture('deferred-without-dependencies.yaml');
    expectIssue(error, {
      file: 'deferred-without-dependencies.yaml',
      path: '/steps/1/dependencies',
      step: 'join',
      message: /deferred_convergence step needs dependencies/,
    });
  });

  it('nothing depends on a batch convergence step outside a decision branch (it would never be created)', async () => {
    const error = await badFixture('after-batch-convergence.yaml');
    expectIssue(error, {
      file: 'after-batch-convergence.yaml',
      path: '/steps/3/dependencies/0',
      step: 'publish',
      message: /depends on deferred_convergence step "merge" but is not below a decision step/,
    });
  });

  it('the namespace is an identifier of at most 29 characters (AUDIT S-1)', async () => {
    const error = await badFixture('namespace-invalid.yaml');
    expectIssue(error, {
      file: 'namespace-invalid.yaml',
      path: '/namespace_name',
      message: /namespace name "a-b" must match/,
    });
    assert.equal(error.issues.length, 1, 'reported once, by the shared validator');
    for (const namespace of [';DROP TABLE tasks', 'a-b', 'naïve', '名前', '1abc', 'a'.repeat(30), '']) {
      const result = checkTemplateText(
        `name: t\nnamespace_name: ${JSON.stringify(namespace)}\nversion: 1.0.0\nsteps: [{name: s, handler: {callable: S}}]\n`,
        { source: 'inline.yaml' },
      );
      assert.equal(result.template, null, `namespace ${JSON.stringify(namespace)} accepted`);
      assert.ok(result.errors.some((issue) => issue.path === '/namespace_name'));
    }
    const longest = 'a'.repeat(29);
    assert.ok(
      checkTemplateText(
        `name: t\nnamespace_name: ${longest}\nversion: 1.0.0\nsteps: [{name: s, handler: {callable: S}}]\n`,
      ).template,
    );
    assert.deepEqual(namespaceQueueNames('payments'), [
      'worker_payments_queue',
      'payments_domain_events',
      'payments_domain_events_dlq',
    ]);
    assert.ok(namespaceQueueNames(longest).every((queue) => queue.length <= 47));
  });

  it('the version is x.y.z', async () => {
    const error = await badFixture('version-invalid.yaml');
    expectIssue(error, {
      file: 'version-invalid.yaml',
      path: '/version',
      message: /"1\.0" is not valid: expected a semantic version/,
    });
  });

  it('retry limits: max_attempts 1..100, backoff_base_ms 100..3 600 000, max_backoff_ms 1000..3 600 000 (A §5.1)', async () => {
    const error = await badFixture('retry-out-of-range.yaml');
    const file = 'retry-out-of-range.yaml';
    expectIssue(error, {
      file,
      path: '/steps/0/retry/max_attempts',
      step: 'zero_attempts',
      message: /must be >= 1 \(got 0\)/,
    });
    expectIssue(error, {
      file,
      path: '/steps/1/retry/max_attempts',
      step: 'too_many_attempts',
      message: /must be <= 100 \(got 101\)/,
    });
    expectIssue(error, {
      file,
      path: '/steps/2/retry/backoff',
      step: 'fast_backoff',
      message: /must be one of: none, linear, exponential, fibonacci/,
    });
    expectIssue(error, {
      file,
      path: '/steps/2/retry/backoff_base_ms',
      step: 'fast_backoff',
      message: /must be >= 100 \(got 50\)/,
    });
    expectIssue(error, {
      file,
      path: '/steps/2/retry/max_backoff_ms',
      step: 'fast_backoff',
      message: /must be >= 1000 \(got 200\)/,
    });
  });

  it('max_backoff_ms is not below backoff_base_ms', async () => {
    const error = await badFixture('backoff-cap-below-base.yaml');
    expectIssue(error, {
      file: 'backoff-cap-below-base.yaml',
      path: '/steps/0/retry/max_backoff_ms',
      step: 'slow',
      message: /max_backoff_ms \(30000\) is below backoff_base_ms \(60000\)/,
    });
  });

  it('a field and its alias are not both given', async () => {
    const error = await badFixture('alias-conflict.yaml');
    const file = 'alias-conflict.yaml';
    expectIssue(error, { file, path: '/steps/1/step_type', step: 'child', message: /alias of "type"/ });
    expectIssue(error, {
      file,
      path: '/steps/1/depends_on',
      step: 'child',
      message: /alias of "dependencies"/,
    });
  });

  it('event declarations: dotted lowercase name, known condition and delivery mode, a valid schema', async () => {
    const error = await badFixture('event-invalid.yaml');
    const file = 'event-invalid.yaml';
    expectIssue(error, {
      file,
      path: '/steps/0/publishes_events/0/name',
      step: 'pay',
      message: /"PaymentDone" is not valid: expected lowercase dotted name/,
    });
    expectIssue(error, {
      file,
      path: '/steps/0/publishes_events/1/condition',
      step: 'pay',
      message: /must be one of: success, failure, retryable_failure, permanent_failure, always/,
    });
    expectIssue(error, {
      file,
      path: '/steps/0/publishes_events/1/delivery_mode',
      step: 'pay',
      message: /must be one of: durable, fast, broadcast/,
    });
    expectIssue(error, {
      file,
      path: '/steps/0/publishes_events/2/schema',
      step: 'pay',
      message: /is required/,
    });
    expectIssue(error, {
      file,
      path: '/steps/0/publishes_events/3/schema',
      step: 'pay',
      message: /is not a valid JSON Schema/,
    });
  });

  it('batch_config values are in range and failure_strategy is known', async () => {
    const error = await badFixture('batch-config-invalid.yaml');
    const file = 'batch-config-invalid.yaml';
    expectIssue(error, {
      file,
      path: '/steps/1/batch_config/batch_size',
      step: 'work',
      message: /must be >= 1 \(got 0\)/,
    });
    expectIssue(error, {
      file,
      path: '/steps/1/batch_config/failure_strategy',
      step: 'work',
      message: /continue_on_failure, fail_fast, isolate \(got "halt_on_first"\)/,
    });
  });

  it('environment overrides name existing steps (checked for every environment)', async () => {
    const error = await badFixture('override-unknown-step.yaml');
    expectIssue(error, {
      file: 'override-unknown-step.yaml',
      path: '/environments/staging/steps/0/name',
      step: 'reel_step',
      message: /environment "staging" overrides step "reel_step", which is not a step of this template/,
    });
  });

  it('required fields are required', async () => {
    const error = await badFixture('missing-required.yaml');
    const file = 'missing-required.yaml';
    expectIssue(error, { file, path: '/namespace_name', message: /^is required$/ });
    assert.equal(error.issues.filter((issue) => issue.path === '/namespace_name').length, 1);
    expectIssue(error, { file, path: '/steps/0/handler', step: 'no_handler', message: /is required/ });
    expectIssue(error, {
      file,
      path: '/steps/1/handler/callable',
      step: 'no_callable',
      message: /is required/,
    });
  });

  it('YAML syntax errors carry their line', async () => {
    const error = await badFixture('yaml-syntax.yaml');
    const issue = error.issues[0];
    assert.ok(issue);
    assert.equal(basename(issue.source), 'yaml-syntax.yaml');
    assert.match(issue.message, /^YAML: /);
    assert.equal(typeof issue.line, 'number');
  });

  it('one template per file', async () => {
    const error = await badFixture('multiple-documents.yaml');
    expectIssue(error, {
      file: 'multiple-documents.yaml',
      path: '',
      message: /holds 2 YAML documents; put one template per file/,
    });
  });

  it('timestamps are valid', async () => {
    const error = await badFixture('invalid-timestamp.yaml');
    const file = 'invalid-timestamp.yaml';
    expectIssue(error, {
      file,
      path: '/metadata/created_at',
      message: /"2025-13-45T00:00:00Z" is not a valid timestamp/,
    });
    expectIssue(error, { file, path: '/metadata/updated_at', message: /expected an RFC 3339 timestamp/ });
  });

  it('input_schema is a valid JSON Schema', async () => {
    const error = await badFixture('invalid-input-schema.yaml');
    expectIssue(error, {
      file: 'invalid-input-schema.yaml',
      path: '/input_schema',
      message: /is not a valid JSON Schema/,
    });
  });

  it('lifecycle thresholds are in range and staleness_action is known', async () => {
    const error = await badFixture('lifecycle-invalid.yaml');
    const file = 'lifecycle-invalid.yaml';
    expectIssue(error, {
      file,
      path: '/lifecycle/max_steps_in_process_minutes',
      message: /must be >= 1 \(got 0\)/,
    });
    expectIssue(error, {
      file,
      path: '/lifecycle/staleness_action',
      message: /must be one of: dlq, error, none/,
    });
  });

  it('values are JSON (no infinities)', async () => {
    const error = await badFixture('not-json.yaml');
    expectIssue(error, {
      file: 'not-json.yaml',
      path: '/steps/0/handler/initialization/limit',
      step: 's',
      message: /Infinity is not a JSON number/,
    });
  });

  it('an empty file is an error', async () => {
    const error = await badFixture('empty.yaml');
    assert.deepEqual(
      error.issues.map((issue) => issue.message),
      ['the template is empty'],
    );
  });

  it('oversized sources are refused', () => {
    const result = checkTemplateText('name: x\n'.repeat(100), { source: 'big.yaml', maxBytes: 64 });
    assert.equal(result.template, null);
    assert.match(result.errors[0]?.message ?? '', /the template is 800 bytes, the limit is 64/);
  });

  it('reports several errors together, in file order, each naming file, step and problem', async () => {
    const error = await badFixture('many-errors.yaml');
    const file = 'many-errors.yaml';
    expectIssue(error, { file, path: '/namespace_name', message: /"many-errors" must match/ });
    expectIssue(error, { file, path: '/version', message: /"one" is not valid/ });
    expectIssue(error, {
      file,
      path: '/steps/0/retry/max_attempts',
      step: 'ingest',
      message: /must be <= 100 \(got 500\)/,
    });
    expectIssue(error, {
      file,
      path: '/steps/1/dependencies',
      step: 'route',
      message: /decision step needs at least one dependency/,
    });
    expectIssue(error, {
      file,
      path: '/steps/2/dependencies/1',
      step: 'enrich',
      message: /depends on "lookup"/,
    });
    expectIssue(error, {
      file,
      path: '/steps/3/dependencies',
      step: 'score',
      message: /dependency cycle: "score" → "rank" → "score"/,
    });
    expectIssue(error, {
      file,
      path: '/steps/5/name',
      step: 'enrich',
      message: /duplicate step name: steps 2 and 5/,
    });
    assert.equal(error.issues.length, 7);
    const lines = error.issues.map((issue) => issue.line ?? 0);
    assert.deepEqual(
      lines,
      [...lines].sort((a, b) => a - b),
    );
    assert.match(error.message, /\(7 problems\)/);
  });
});

describe('warnings', () => {
  it('flags legal but suspicious structure without rejecting the template', () => {
    const warnings: TemplateIssue[] = [];
    parseTemplate(
      `name: warned
namespace_name: fixture_ns
version: 1.0.0
steps:
  - {name: root, handler: {callable: R}, batch_config: {worker_template: work}}
  - {name: lonely_decision, type: decision, dependencies: [root], handler: {callable: D}}
  - {name: split, type: batchable, handler: {callable: S}}
  - {name: work, type: batch_worker, dependencies: [split], handler: {callable: W}, batch_config: {worker_template: work}}
`,
      { source: 'warned.yaml', onWarning: (warning) => warnings.push(warning) },
    );
    assert.deepEqual(
      warnings.map((w) => [w.step, w.path]),
      [
        ['root', '/steps/0/batch_config'],
        ['lonely_decision', '/steps/1'],
        ['split', '/steps/2/handler/initialization'],
      ],
    );
  });
});

describe('loadTemplates', () => {
  it('loads directories recursively; one bad file does not hide the others', async () => {
    const result = await loadTemplates([GOOD, BAD]);
    assert.deepEqual(
      result.templates.map((loaded) => basename(loaded.source)),
      ['aliases-defaults.yaml', 'environments.yaml', 'legacy-keys.yaml'],
    );
    assert.equal(result.errors.length, 30);
    assert.ok(result.errors.every((error) => error.source.startsWith(BAD)));
  });

  it('accepts files and glob patterns, and reports paths that name nothing', async () => {
    const result = await loadTemplates(
      [
        'examples/templates/test_scenarios_ts/*.yaml',
        'examples/templates/payments/process_refund.yaml',
        'no/such/dir',
      ],
      { cwd: ROOT },
    );
    assert.deepEqual(
      result.templates.map((loaded) => loaded.template.name),
      ['process_refund', 'permanent_error_only_ts', 'retryable_error_only_ts', 'success_only_ts'],
    );
    assert.equal(result.errors.length, 1);
    assert.equal(result.errors[0]?.source, 'no/such/dir');
  });

  it('rejects a second template with the same identity and keeps the first', async () => {
    const result = await loadTemplates([join(FIXTURES, 'duplicates')]);
    assert.deepEqual(
      result.templates.map((loaded) => basename(loaded.source)),
      ['one.yaml'],
    );
    assert.equal(result.errors.length, 1);
    assert.match(
      result.errors[0]?.message ?? '',
      /two\.yaml: template fixture_ns\/duplicated@1\.0\.0 is already defined in .*one\.yaml/,
    );
  });

  it('loadTemplateFile reports an unreadable path as a template error', async () => {
    const error = await rejection(() => loadTemplateFile(join(FIXTURES, 'missing.yaml')));
    assert.match(error.message, /cannot read the file \(ENOENT\)/);
  });
});

describe('findCycles', () => {
  it('finds each cycle once, in execution order', () => {
    const make = (name: string, dependencies: string[]): StepDefinition => ({
      name,
      description: null,
      type: 'standard',
      handler: { callable: name, method: 'call', resolver: null, initialization: {} },
      dependencies,
      retry: { ...TEMPLATE_DEFAULTS.retry },
      timeout_seconds: null,
      system_dependency: null,
      publishes_events: [],
      batch_config: null,
      result_schema: null,
      composition: null,
    });
    assert.deepEqual(findCycles([make('a', ['b']), make('b', ['a']), make('c', ['c']), make('d', [])]), [
      ['a', 'b', 'a'],
      ['c', 'c'],
    ]);
    assert.deepEqual(findCycles([make('a', []), make('b', ['a'])]), []);
  });
});
