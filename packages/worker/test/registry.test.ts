import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ConflictError } from '@tasker/core';
import {
  defineHandler,
  HandlerNotFoundError,
  HandlerRegistry,
  type HandlerResolver,
  parseModuleCallable,
  StepHandler,
  type StepHandlerResult,
} from '../src/index.ts';
import { GreetHandler, UnnamedHandler } from './fixtures/handlers/greet.ts';
import { SHOUT_SUFFIX, ShoutHandler } from './fixtures/handlers/shout.ts';
import { ImportedHandler, importedInstance, notAHandler } from './fixtures/import-target.ts';

const PACKAGE_DIR = join(dirname(fileURLToPath(import.meta.url)), '..');

class Named extends StepHandler {
  static override handlerName = 'named';
  readonly tag: string;
  constructor(tag = 'class') {
    super();
    this.tag = tag;
  }
  call(): StepHandlerResult {
    return this.success({ tag: this.tag });
  }
}

function resolverOf(
  name: string,
  priority: number,
  handler: StepHandler | undefined,
  seen?: string[],
): HandlerResolver {
  return {
    name,
    priority,
    canResolve: (spec) => spec.callable.startsWith('custom:'),
    resolve: () => {
      seen?.push(name);
      return handler;
    },
  };
}

async function notFound(promise: Promise<unknown>): Promise<HandlerNotFoundError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof HandlerNotFoundError);
    assert.equal(error.code, 'handler_not_found');
    return error;
  }
  assert.fail('expected HandlerNotFoundError');
}

describe('HandlerRegistry: explicit mapping', () => {
  it('registers classes (fresh instance per resolve), instances and factories', async () => {
    const registry = new HandlerRegistry();
    const instance = new Named('instance');
    registry.register('cls', Named);
    registry.register('inst', instance);
    registry.register('factory', () => new Named('factory'));
    const a = await registry.resolve('cls');
    const b = await registry.resolve('cls');
    assert.notEqual(a.handler, b.handler);
    assert.equal((await registry.resolve('inst')).handler, instance);
    assert.equal(((await registry.resolve('factory')).handler as Named).tag, 'factory');
    assert.equal(a.resolverName, 'explicit_mapping');
    assert.equal(a.method, 'call');
    assert.deepEqual(registry.listHandlers(), ['cls', 'factory', 'inst']);
    assert.equal(registry.handlerCount, 3);
    assert.equal(registry.isRegistered('cls'), true);
    assert.equal(registry.unregister('cls'), true);
    assert.equal(registry.unregister('cls'), false);
    assert.equal(registry.isRegistered('cls'), false);
  });

  it('refuses a duplicate name', () => {
    const registry = new HandlerRegistry();
    registry.register('x', Named);
    assert.throws(() => registry.register('x', Named), ConflictError);
  });

  it('reports a factory that returns no handler as handler_not_found', async () => {
    const registry = new HandlerRegistry();
    registry.register('broken', (() => ({})) as unknown as () => StepHandler);
    await notFound(registry.resolve('broken'));
  });

  it('reports an unknown handler and an unknown method as handler_not_found', async () => {
    const registry = new HandlerRegistry();
    registry.register('named', Named);
    assert.match((await notFound(registry.resolve('ghost'))).message, /no handler found for "ghost"/);
    assert.match(
      (await notFound(registry.resolve({ callable: 'named', method: 'refund' }))).message,
      /no method "refund"/,
    );
  });
});

describe('HandlerRegistry: resolver chain', () => {
  it('orders resolvers by priority, ties in insertion order', () => {
    const registry = new HandlerRegistry();
    registry.addResolver(resolverOf('late', 500, undefined));
    registry.addResolver(resolverOf('early', 1, undefined));
    registry.addResolver(resolverOf('middle', 100, undefined));
    assert.deepEqual(registry.listResolvers(), [
      'early',
      'explicit_mapping',
      'module_import',
      'middle',
      'late',
    ]);
    assert.throws(() => registry.addResolver(resolverOf('early', 2, undefined)), ConflictError);
  });

  it('returns the first resolver that finds a handler', async () => {
    const seen: string[] = [];
    const registry = new HandlerRegistry();
    registry.addResolver(resolverOf('second', 200, new Named('second'), seen));
    registry.addResolver(resolverOf('first', 150, undefined, seen));
    const resolved = await registry.resolve('custom:thing');
    assert.equal(resolved.resolverName, 'second');
    assert.deepEqual(seen, ['first', 'second']);
  });

  it('lets a low-priority custom resolver win over explicit mapping', async () => {
    const registry = new HandlerRegistry();
    registry.register('custom:x', () => new Named('explicit'));
    registry.addResolver(resolverOf('override', 5, new Named('custom')));
    assert.equal(((await registry.resolve('custom:x')).handler as Named).tag, 'custom');
  });

  it('honours the resolver hint, and reports an unknown hint', async () => {
    const registry = new HandlerRegistry();
    registry.register('custom:x', () => new Named('explicit'));
    registry.addResolver(resolverOf('override', 5, new Named('custom')));
    const hinted = await registry.resolve({ callable: 'custom:x', resolver: 'explicit_mapping' });
    assert.equal((hinted.handler as Named).tag, 'explicit');
    assert.match(
      (await notFound(registry.resolve({ callable: 'custom:x', resolver: 'nope' }))).message,
      /unknown resolver/,
    );
    await notFound(registry.resolve({ callable: 'custom:y', resolver: 'explicit_mapping' }));
  });

  it('wraps a throwing resolver into handler_not_found with the cause', async () => {
    const registry = new HandlerRegistry();
    const boom = new Error('boom');
    registry.addResolver({
      name: 'bad',
      priority: 1,
      canResolve: () => true,
      resolve: () => Promise.reject(boom),
    });
    assert.equal((await notFound(registry.resolve('anything'))).cause, boom);
  });
});

describe('HandlerRegistry: module import', () => {
  it('parses only the documented callable forms', () => {
    assert.deepEqual(parseModuleCallable('./h/file.ts#Handler'), {
      specifier: './h/file.ts',
      exportName: 'Handler',
      kind: 'file',
    });
    assert.deepEqual(parseModuleCallable('@acme/handlers:Refund'), {
      specifier: '@acme/handlers',
      exportName: 'Refund',
      kind: 'package',
    });
    for (const callable of [
      'plain_key',
      'Payments::Process',
      'pkg.module.Class',
      'h/file.ts#Handler',
      './file.ts#not-an-identifier',
      './file.ts#',
      'node:fs',
      'fs:readFileSync',
      'node:exec',
      'a:b:c',
      'require("x")',
    ]) {
      assert.equal(parseModuleCallable(callable), undefined, callable);
    }
  });

  it('imports a handler class or instance from a file path', async () => {
    const registry = new HandlerRegistry({ baseDir: PACKAGE_DIR });
    const resolved = await registry.resolve('./test/fixtures/import-target.ts#ImportedHandler');
    assert.ok(resolved.handler instanceof ImportedHandler);
    assert.equal(resolved.resolverName, 'module_import');
    const instance = await registry.resolve({
      callable: './test/fixtures/import-target.ts#importedInstance',
      method: 'refund',
    });
    assert.equal(instance.handler, importedInstance);
    assert.deepEqual(
      (await instance.invoke(undefined as never)) as StepHandlerResult,
      (instance.handler as ImportedHandler).refund(),
    );
    const absolute = await registry.resolve(
      `${join(PACKAGE_DIR, 'test/fixtures/import-target.ts')}#ImportedHandler`,
    );
    assert.ok(absolute.handler instanceof ImportedHandler);
  });

  it('reports a missing file, a missing export or a non-handler export as handler_not_found', async () => {
    assert.equal(typeof notAHandler, 'string');
    const registry = new HandlerRegistry({ baseDir: PACKAGE_DIR });
    await notFound(registry.resolve('./test/fixtures/import-target.ts#notAHandler'));
    await notFound(registry.resolve('./test/fixtures/import-target.ts#Missing'));
    await notFound(registry.resolve('./test/fixtures/no-such-file.ts#X'));
    await notFound(registry.resolve('@tasker/no-such-package:X'));
    const dir = await mkdtemp(join(tmpdir(), 'tasker-worker-'));
    try {
      await writeFile(
        join(dir, 'broken.mjs'),
        "export const loaded = true;\nthrow new Error('fails to load');\n",
      );
      const broken = await notFound(registry.resolve(`${join(dir, 'broken.mjs')}#loaded`));
      assert.match(broken.message, /failed to load handler/);
      assert.ok(broken.cause instanceof Error);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('HandlerRegistry: loadDirectory', () => {
  it('registers every named handler a directory exports', async () => {
    const registry = new HandlerRegistry({ baseDir: PACKAGE_DIR });
    assert.deepEqual(await registry.loadDirectory('test/fixtures/handlers'), [
      'fixtures.greet',
      'fixtures.shout',
    ]);
    assert.equal(registry.isRegistered(UnnamedHandler.name), false);
    assert.equal(SHOUT_SUFFIX, '!');
    assert.ok((await registry.resolve('fixtures.greet')).handler instanceof GreetHandler);
    assert.ok((await registry.resolve('fixtures.shout')).handler instanceof ShoutHandler);
    const other = defineHandler('fixtures.other', {}, () => undefined);
    registry.register('fixtures.other', other);
    assert.equal(registry.handlerCount, 3);
  });

  it('rejects loading a name that is already registered', async () => {
    const registry = new HandlerRegistry({ baseDir: PACKAGE_DIR });
    registry.register('fixtures.greet', Named);
    await assert.rejects(registry.loadDirectory('test/fixtures/handlers'), ConflictError);
  });
});
