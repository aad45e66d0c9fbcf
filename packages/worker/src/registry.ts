/**
 * Handler registration and resolution (reference C §2.6).
 *
 * A step's `handler` block (`callable`, `method`, `resolver`) is resolved through a chain of resolvers
 * tried in ascending `priority` (ties: the order they were added):
 * - `explicit_mapping` (10): handlers registered by name (`register(name, entry)`, `loadDirectory`);
 * - `module_import` (100): imports a module named by the callable, in one of two forms only —
 *   `<path>#<Export>` with a path starting `./`, `../` or `/` (relative paths from the registry's
 *   `baseDir`), or `<package>:<Export>` with an npm package specifier (e.g. `@acme/handlers:Refund`).
 *   Nothing else is imported; no string is ever evaluated. Importing runs the module's top-level code,
 *   so templates are trusted input, as in every reference SDK.
 * - custom resolvers added with `addResolver`.
 * A template `resolver` hint bypasses the chain and uses that resolver alone. A `method` other than
 * `call` selects that method of the handler. Anything that cannot be resolved is a
 * `HandlerNotFoundError` (permanent, `handler_not_found`).
 */
import { readdir } from 'node:fs/promises';
import { isBuiltin } from 'node:module';
import { isAbsolute, join, resolve as resolvePath } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ConflictError, type HandlerDefinition, ValidationError } from '@tasker/core';
import type { StepContext } from './context.ts';
import { HandlerNotFoundError } from './errors.ts';
import {
  findEntryPoint,
  type HandlerReturn,
  isStepHandlerClass,
  StepHandler,
  type StepHandlerClass,
} from './handler.ts';

/** What a step asks for: the template's `handler` block, or just a callable. */
export type HandlerSpec = Pick<HandlerDefinition, 'callable'> & Partial<Omit<HandlerDefinition, 'callable'>>;

/** A registered handler: a class (instantiated per resolve), an instance, or a factory. */
export type HandlerEntry = StepHandlerClass | StepHandler | (() => StepHandler);

export interface HandlerResolver {
  readonly name: string;
  /** Lower runs first. */
  readonly priority: number;
  canResolve(spec: HandlerSpec): boolean;
  /** The handler, or undefined when this resolver does not know it. */
  resolve(spec: HandlerSpec): StepHandler | undefined | Promise<StepHandler | undefined>;
}

/** A handler ready to run: the instance and the entry point the template selected. */
export interface ResolvedHandler {
  callable: string;
  handler: StepHandler;
  /** `call` or the template's `handler.method`. */
  method: string;
  /** Name of the resolver that found it. */
  resolverName: string;
  invoke(ctx: StepContext): HandlerReturn;
}

export interface HandlerRegistryOptions {
  /** Directory relative `./…#Export` callables are read from; the working directory by default. */
  baseDir?: string;
}

const EXPORT_NAME = /^[A-Za-z_$][\w$]*$/;
const PACKAGE_SPECIFIER = /^(?:@[a-z0-9][\w.-]*\/)?[a-z0-9][\w.-]*(?:\/[\w.-]+)*$/;
const LOADABLE_FILE = /\.(?:ts|mts|js|mjs)$/;
const SKIPPED_FILE = /\.(?:test|spec)\.[mc]?[jt]s$|\.d\.[mc]?ts$/;

/** Where a callable says to import from, when it has one of the documented forms. */
export function parseModuleCallable(
  callable: string,
): { specifier: string; exportName: string; kind: 'file' | 'package' } | undefined {
  const hash = callable.lastIndexOf('#');
  if (hash > 0) {
    const path = callable.slice(0, hash);
    const exportName = callable.slice(hash + 1);
    if (!EXPORT_NAME.test(exportName)) return undefined;
    if (!(path.startsWith('./') || path.startsWith('../') || isAbsolute(path))) return undefined;
    return { specifier: path, exportName, kind: 'file' };
  }
  const parts = callable.split(':');
  if (parts.length !== 2) return undefined;
  const [specifier = '', exportName = ''] = parts;
  if (!(PACKAGE_SPECIFIER.test(specifier) && EXPORT_NAME.test(exportName))) return undefined;
  if (specifier === 'node' || isBuiltin(specifier)) return undefined;
  return { specifier, exportName, kind: 'package' };
}

function instantiate(entry: HandlerEntry): StepHandler {
  if (entry instanceof StepHandler) return entry;
  if (isStepHandlerClass(entry)) return new entry();
  const made: unknown = entry();
  if (!(made instanceof StepHandler)) throw new TypeError('handler factory did not return a StepHandler');
  return made;
}

/** Registry name of a module export that is a handler (a class or instance with a name), else undefined. */
function handlerExportName(value: unknown): string | undefined {
  if (isStepHandlerClass(value)) return typeof value.handlerName === 'string' ? value.handlerName : undefined;
  if (value instanceof StepHandler) {
    const ctor: unknown = value.constructor;
    return isStepHandlerClass(ctor) && typeof ctor.handlerName === 'string' ? ctor.handlerName : undefined;
  }
  return undefined;
}

export class HandlerRegistry {
  readonly #entries = new Map<string, HandlerEntry>();
  readonly #resolvers: HandlerResolver[] = [];
  readonly #baseDir: string;

  constructor(options: HandlerRegistryOptions = {}) {
    this.#baseDir = resolvePath(options.baseDir ?? process.cwd());
    this.#resolvers.push(
      {
        name: 'explicit_mapping',
        priority: 10,
        canResolve: (spec) => this.#entries.has(spec.callable),
        resolve: (spec) => {
          const entry = this.#entries.get(spec.callable);
          return entry === undefined ? undefined : instantiate(entry);
        },
      },
      {
        name: 'module_import',
        priority: 100,
        canResolve: (spec) => parseModuleCallable(spec.callable) !== undefined,
        resolve: (spec) => this.#importHandler(spec.callable),
      },
    );
  }

  /** Registers `entry` under `name` (the template's `handler.callable`); a taken name is a `ConflictError`. */
  register(name: string, entry: HandlerEntry): void {
    if (name.trim() === '') throw new ValidationError([{ field: 'name', message: 'must not be empty' }]);
    if (this.#entries.has(name)) throw new ConflictError(`handler "${name}" is already registered`);
    this.#entries.set(name, entry);
  }

  unregister(name: string): boolean {
    return this.#entries.delete(name);
  }

  isRegistered(name: string): boolean {
    return this.#entries.has(name);
  }

  /** Registered names, sorted. */
  listHandlers(): string[] {
    return [...this.#entries.keys()].sort();
  }

  get handlerCount(): number {
    return this.#entries.size;
  }

  /** Adds a custom resolver; resolver names are unique. */
  addResolver(resolver: HandlerResolver): void {
    if (this.#resolvers.some((existing) => existing.name === resolver.name)) {
      throw new ConflictError(`resolver "${resolver.name}" is already added`);
    }
    if (!Number.isFinite(resolver.priority)) {
      throw new ValidationError([{ field: 'priority', message: 'must be a finite number' }]);
    }
    this.#resolvers.push(resolver);
  }

  /** Resolver names in the order the chain tries them. */
  listResolvers(): string[] {
    return this.#chain().map((resolver) => resolver.name);
  }

  /**
   * Imports every handler module under `dir` (recursively; `.ts`/`.js`, not tests or declarations) and
   * registers each export that is a `StepHandler` class (or instance) with a string `handlerName`.
   * Returns the names registered, sorted. A module that fails to import rejects the whole load.
   */
  async loadDirectory(dir: string): Promise<string[]> {
    const root = resolvePath(this.#baseDir, dir);
    const files = (await readdir(root, { recursive: true }))
      .filter((file) => LOADABLE_FILE.test(file) && !SKIPPED_FILE.test(file))
      .sort();
    const registered: string[] = [];
    for (const file of files) {
      const module: Record<string, unknown> = await import(pathToFileURL(join(root, file)).href);
      for (const value of Object.values(module)) {
        const name = handlerExportName(value);
        if (name === undefined || this.#entries.get(name) === value) continue;
        this.register(name, value as HandlerEntry);
        registered.push(name);
      }
    }
    return registered.sort();
  }

  /** Resolves a step's handler block (or a bare callable); throws `HandlerNotFoundError` when it cannot. */
  async resolve(spec: HandlerSpec | string): Promise<ResolvedHandler> {
    const handlerSpec: HandlerSpec = typeof spec === 'string' ? { callable: spec } : spec;
    const { callable } = handlerSpec;
    const method = handlerSpec.method ?? 'call';
    let candidates: HandlerResolver[];
    if (handlerSpec.resolver !== undefined && handlerSpec.resolver !== null) {
      const hinted = this.#resolvers.find((resolver) => resolver.name === handlerSpec.resolver);
      if (hinted === undefined) {
        throw new HandlerNotFoundError(
          callable,
          `unknown resolver "${handlerSpec.resolver}" for handler "${callable}"`,
        );
      }
      candidates = [hinted];
    } else {
      candidates = this.#chain();
    }
    for (const resolver of candidates) {
      let handler: StepHandler | undefined;
      try {
        if (!resolver.canResolve(handlerSpec)) continue;
        handler = await resolver.resolve(handlerSpec);
      } catch (error) {
        if (error instanceof HandlerNotFoundError) throw error;
        throw new HandlerNotFoundError(
          callable,
          `resolver "${resolver.name}" failed to load handler "${callable}"`,
          {
            cause: error,
          },
        );
      }
      if (handler === undefined) continue;
      const entryPoint = findEntryPoint(handler, method);
      if (entryPoint === undefined) {
        throw new HandlerNotFoundError(callable, `handler "${callable}" has no method "${method}"`);
      }
      return { callable, handler, method, resolverName: resolver.name, invoke: entryPoint };
    }
    const where = candidates.length === 1 ? ` by resolver "${candidates[0]?.name}"` : '';
    throw new HandlerNotFoundError(callable, `no handler found for "${callable}"${where}`);
  }

  #chain(): HandlerResolver[] {
    // Array.prototype.sort is stable: equal priorities keep the order they were added.
    return [...this.#resolvers].sort((a, b) => a.priority - b.priority);
  }

  async #importHandler(callable: string): Promise<StepHandler | undefined> {
    const target = parseModuleCallable(callable);
    if (target === undefined) return undefined;
    const specifier =
      target.kind === 'file'
        ? pathToFileURL(resolvePath(this.#baseDir, target.specifier)).href
        : target.specifier;
    let module: Record<string, unknown>;
    try {
      module = await import(specifier);
    } catch (error) {
      // An absent module lets later resolvers try (`custom:thing` may be meant for a custom resolver);
      // a module that exists but fails to load is an error (wrapped into HandlerNotFoundError by resolve).
      if (error instanceof Error && 'code' in error && error.code === 'ERR_MODULE_NOT_FOUND')
        return undefined;
      throw error;
    }
    const exported = module[target.exportName];
    if (isStepHandlerClass(exported)) return new exported();
    if (exported instanceof StepHandler) return exported;
    return undefined;
  }
}
