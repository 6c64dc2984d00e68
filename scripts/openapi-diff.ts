// The breaking-change check: compares openapi/openapi.json with openapi/baseline.json (the
// document of the last release, README "Breaking changes") and fails on a change that can break a
// client generated from the baseline, unless info.version's major number went up.
//
// Breaking: a removed path, operation, response status or media type; a request that the old
// document accepted and the new one refuses (a removed or newly required field, a narrowed type,
// enum, length, pattern or format, a new required parameter); a response the old document did not
// allow (a required field removed or made optional, a widened type or enum, a new member where
// the old shape was closed).
//
// `npm run openapi:diff` (in .ci/run). `npm run openapi:baseline` makes the current document the
// baseline, when releasing.
import { copyFileSync, readFileSync } from 'node:fs';

type Schema = Record<string, any>;
type Doc = Record<string, any>;

export interface Change {
  where: string;
  message: string;
}

const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];

/** Follows local $refs. */
function resolve(doc: Doc, schema: Schema | undefined): Schema | undefined {
  let s = schema;
  for (let i = 0; s && typeof s.$ref === 'string' && i < 50; i++) {
    s = s.$ref
      .replace(/^#\//, '')
      .split('/')
      .reduce((node: any, part: string) => node?.[part.replace(/~1/g, '/').replace(/~0/g, '~')], doc);
  }
  return s;
}

/** An allOf as one schema (enough for ours: a Problem narrowed by a code enum). */
function flatten(doc: Doc, schema: Schema | undefined): Schema | undefined {
  const s = resolve(doc, schema);
  if (!s?.allOf) return s;
  const merged: Schema = { ...s, allOf: undefined };
  for (const part of s.allOf.map((p: Schema) => flatten(doc, p))) {
    for (const [k, v] of Object.entries(part ?? {})) {
      if (k === 'properties') merged.properties = { ...merged.properties, ...Object.fromEntries(Object.entries(v as Schema).map(([n, p]) => [n, { ...merged.properties?.[n], ...(p as Schema) }])) };
      else if (k === 'required') merged.required = [...new Set([...(merged.required ?? []), ...(v as string[])])];
      else merged[k] = v;
    }
  }
  delete merged.allOf;
  return merged;
}

const typeOfValue = (v: unknown) => (v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v);

function typesOf(s: Schema): Set<string> | undefined {
  if (s.type === undefined) {
    const values = valuesOf(s);
    return values ? new Set(values.map(typeOfValue)) : undefined;
  }
  const types = new Set<string>(Array.isArray(s.type) ? s.type : [s.type]);
  if (s.nullable) types.add('null');
  if (types.has('integer')) types.add('number-integer');
  return types;
}

function valuesOf(s: Schema): unknown[] | undefined {
  if (s.const !== undefined) return [s.const];
  return Array.isArray(s.enum) ? s.enum : undefined;
}

const alternatives = (s: Schema) => (s.oneOf ?? s.anyOf) as Schema[] | undefined;
const show = (v: unknown) => JSON.stringify(v);

/**
 * Where `narrow` (in docN) allows a value that `wide` (in docW) refuses: [] when every value
 * valid for `narrow` is valid for `wide`. Conservative where JSON Schema is subtle.
 */
export type Side = 'request' | 'response';
const SAY = {
  // request: narrow = old document, wide = new document; response: the other way round.
  request: { required: (n: string) => `"${n}" became required`, closed: (n: string) => `"${n}" is no longer accepted` },
  response: { required: (n: string) => `"${n}" is no longer always present`, closed: (n: string) => `"${n}" is a new member of a closed shape` },
};

export function notSubset(side: Side, docN: Doc, narrowIn: Schema | undefined, docW: Doc, wideIn: Schema | undefined, where: string, depth = 0): Change[] {
  const narrow = flatten(docN, narrowIn) ?? {};
  const wide = flatten(docW, wideIn) ?? {};
  if (depth > 40 || Object.keys(wide).filter((k) => !['description', 'example', 'examples', 'title', '$id'].includes(k)).length === 0) return [];

  const nAlts = alternatives(narrow);
  if (nAlts) return nAlts.flatMap((alt, i) => notSubset(side, docN, alt, docW, wide, `${where} (alternative ${i + 1})`, depth + 1));
  const wAlts = alternatives(wide);
  if (wAlts) {
    const tries = wAlts.map((alt) => notSubset(side, docN, narrow, docW, alt, where, depth + 1));
    return tries.some((c) => c.length === 0) ? [] : (tries.sort((a, b) => a.length - b.length)[0] ?? []);
  }

  const changes: Change[] = [];
  const add = (message: string, at = where) => changes.push({ where: at, message });

  const nTypes = typesOf(narrow);
  const wTypes = typesOf(wide);
  if (wTypes) {
    const extra = nTypes ? [...nTypes].filter((t) => !wTypes.has(t) && !(t === 'integer' && wTypes.has('number')) && t !== 'number-integer') : ['any type'];
    if (extra.length) add(`type ${nTypes ? [...nTypes].filter((t) => t !== 'number-integer').join('|') : 'any'} is not within ${[...wTypes].filter((t) => t !== 'number-integer').join('|')}`);
  }
  const wValues = valuesOf(wide);
  if (wValues) {
    const nValues = valuesOf(narrow);
    const extra = nValues ? nValues.filter((v) => !wValues.some((w) => show(w) === show(v))) : undefined;
    if (!nValues) add(`any value, not only ${wValues.map(show).join(', ')}`);
    else if (extra?.length) add(`value ${extra.map(show).join(', ')} is not among ${wValues.map(show).join(', ')}`);
  }
  for (const key of ['maxLength', 'maximum', 'exclusiveMaximum', 'maxItems', 'maxProperties'] as const) {
    if (wide[key] !== undefined && !(narrow[key] !== undefined && narrow[key] <= wide[key])) add(`${key} ${narrow[key] ?? 'none'} is beyond ${wide[key]}`);
  }
  for (const key of ['minLength', 'minimum', 'exclusiveMinimum', 'minItems', 'minProperties'] as const) {
    if (wide[key] !== undefined && !(narrow[key] !== undefined && narrow[key] >= wide[key])) add(`${key} ${narrow[key] ?? 'none'} is below ${wide[key]}`);
  }
  for (const key of ['pattern', 'format'] as const) {
    if (wide[key] !== undefined && narrow[key] !== wide[key]) add(`${key} ${show(narrow[key] ?? null)} is not ${show(wide[key])}`);
  }

  // Objects.
  const wRequired = new Set<string>(wide.required ?? []);
  const nRequired = new Set<string>(narrow.required ?? []);
  for (const name of wRequired) if (!nRequired.has(name)) add(SAY[side].required(name), `${where}.${name}`);
  const nProps: Schema = narrow.properties ?? {};
  const wProps: Schema = wide.properties ?? {};
  for (const [name, prop] of Object.entries(nProps)) {
    if (name in wProps) changes.push(...notSubset(side, docN, prop, docW, wProps[name], `${where}.${name}`, depth + 1));
    else if (wide.additionalProperties === false) add(SAY[side].closed(name), `${where}.${name}`);
    else if (wide.additionalProperties && typeof wide.additionalProperties === 'object') {
      changes.push(...notSubset(side, docN, prop, docW, wide.additionalProperties, `${where}.${name}`, depth + 1));
    }
  }
  if (wide.additionalProperties === false && narrow.additionalProperties !== false && (typesOf(narrow)?.has('object') ?? true)) {
    add(side === 'request' ? 'unknown members are no longer accepted' : 'the shape is no longer closed: other members may appear');
  } else if (wide.additionalProperties && typeof wide.additionalProperties === 'object' && narrow.additionalProperties && typeof narrow.additionalProperties === 'object') {
    changes.push(...notSubset(side, docN, narrow.additionalProperties, docW, wide.additionalProperties, `${where}.*`, depth + 1));
  }
  if (wide.items) changes.push(...notSubset(side, docN, narrow.items, docW, wide.items, `${where}[]`, depth + 1));
  return changes;
}

function major(version: unknown): number {
  const m = /^(\d+)\./.exec(String(version ?? ''));
  return m ? Number(m[1]) : NaN;
}

function parametersOf(doc: Doc, pathItem: Schema, op: Schema): Map<string, Schema> {
  const params = new Map<string, Schema>();
  for (const p of [...(pathItem.parameters ?? []), ...(op.parameters ?? [])]) {
    const param = resolve(doc, p) ?? {};
    params.set(`${param.in}:${param.name}`, param);
  }
  return params;
}

/** Every breaking change from `before` to `after`. */
export function breakingChanges(before: Doc, after: Doc): Change[] {
  const changes: Change[] = [];
  for (const [path, oldItem] of Object.entries<Schema>(before.paths ?? {})) {
    const newItem = after.paths?.[path];
    if (!newItem) {
      changes.push({ where: path, message: 'path removed' });
      continue;
    }
    for (const method of METHODS) {
      const oldOp = oldItem[method];
      if (!oldOp) continue;
      const where = `${method.toUpperCase()} ${path}`;
      const newOp = newItem[method];
      if (!newOp) {
        changes.push({ where, message: 'operation removed' });
        continue;
      }
      // Parameters: what the old client sends must still be accepted.
      const oldParams = parametersOf(before, oldItem, oldOp);
      const newParams = parametersOf(after, newItem, newOp);
      for (const [key, param] of newParams) {
        const old = oldParams.get(key);
        if (!old && param.required) changes.push({ where: `${where} ${key}`, message: 'new required parameter' });
        else if (old && param.required && !old.required) changes.push({ where: `${where} ${key}`, message: 'parameter became required' });
      }
      for (const [key, old] of oldParams) {
        const param = newParams.get(key);
        if (!param) changes.push({ where: `${where} ${key}`, message: 'parameter removed' });
        else changes.push(...notSubset('request', before, old.schema, after, param.schema, `${where} ${key}`).map((c) => ({ ...c, message: `request narrowed: ${c.message}` })));
      }
      // Request body.
      const oldBody = resolve(before, oldOp.requestBody);
      const newBody = resolve(after, newOp.requestBody);
      if (newBody?.required && !oldBody) changes.push({ where, message: 'a request body is now required' });
      for (const [type, media] of Object.entries<Schema>(oldBody?.content ?? {})) {
        const newMedia = newBody?.content?.[type];
        if (!newMedia) changes.push({ where: `${where} request ${type}`, message: 'request media type removed' });
        else {
          changes.push(
            ...notSubset('request', before, media.schema, after, newMedia.schema, `${where} request`).map((c) => ({ ...c, message: `request narrowed: ${c.message}` })),
          );
        }
      }
      // Responses: what the new service answers must be what the old client understands.
      for (const [status, oldResIn] of Object.entries<Schema>(oldOp.responses ?? {})) {
        const newResIn = newOp.responses?.[status];
        if (!newResIn) {
          changes.push({ where: `${where} ${status}`, message: 'response removed' });
          continue;
        }
        const oldRes = resolve(before, oldResIn) ?? {};
        const newRes = resolve(after, newResIn) ?? {};
        for (const [type, media] of Object.entries<Schema>(oldRes.content ?? {})) {
          const newMedia = newRes.content?.[type];
          if (!newMedia) changes.push({ where: `${where} ${status} ${type}`, message: 'response media type removed' });
          else {
            changes.push(
              ...notSubset('response', after, newMedia.schema, before, media.schema, `${where} ${status}`).map((c) => ({ ...c, message: `response widened: ${c.message}` })),
            );
          }
        }
      }
    }
  }
  return changes;
}

export interface Verdict {
  changes: Change[];
  majorBumped: boolean;
  ok: boolean;
}

export function check(before: Doc, after: Doc): Verdict {
  const changes = breakingChanges(before, after);
  const majorBumped = major(after.info?.version) > major(before.info?.version);
  return { changes, majorBumped, ok: changes.length === 0 || majorBumped };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const current = new URL('../openapi/openapi.json', import.meta.url);
  const baseline = new URL('../openapi/baseline.json', import.meta.url);
  if (process.argv[2] === '--accept') {
    copyFileSync(current, baseline);
    console.log('openapi/baseline.json is now openapi/openapi.json');
  } else {
    const before = JSON.parse(readFileSync(process.argv[2] ?? baseline, 'utf8'));
    const after = JSON.parse(readFileSync(process.argv[3] ?? current, 'utf8'));
    const { changes, majorBumped, ok } = check(before, after);
    for (const c of changes) console.log(`${ok ? 'breaking (allowed by the major version)' : 'BREAKING'}: ${c.where}: ${c.message}`);
    const versions = `${before.info?.version} → ${after.info?.version}`;
    if (!changes.length) console.log(`openapi: no breaking change against the baseline (${versions})`);
    else if (majorBumped) console.log(`openapi: ${changes.length} breaking change(s), allowed: the major version went up (${versions})`);
    else console.log(`openapi: ${changes.length} breaking change(s) against openapi/baseline.json (${versions}): restore compatibility, or raise the major version (src/openapi/document.ts API_VERSION)`);
    process.exit(ok ? 0 : 1);
  }
}
