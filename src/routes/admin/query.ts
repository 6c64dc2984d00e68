// Query strings and path parameters are text, and the app's Ajv does not coerce (an auth API must
// not guess what a body meant). The admin API's filters and ids are typed (limit and outbox ids
// are integers, verified a boolean), so this preValidation hook turns the values the route's
// schema types as integer or boolean from their one canonical spelling ("25", "true", "false")
// into that type; anything else stays a string and fails validation with a clear 400.
import type { FastifyRequest } from 'fastify';

type Props = Record<string, { type?: string }>;

export async function coerceQuery(request: FastifyRequest): Promise<void> {
  const schema = request.routeOptions.schema;
  coerce(schema?.querystring, request.query);
  coerce(schema?.params, request.params);
}

function coerce(schema: unknown, values: unknown): void {
  const props = (schema as { properties?: Props } | undefined)?.properties;
  const query = values as Record<string, unknown> | undefined;
  if (!props || !query || typeof query !== 'object') return;
  for (const [name, value] of Object.entries(query)) {
    if (typeof value !== 'string' || !Object.hasOwn(props, name)) continue;
    const type = props[name].type;
    if (type === 'integer' && /^(0|[1-9][0-9]{0,15})$/.test(value)) query[name] = Number(value);
    else if (type === 'boolean' && (value === 'true' || value === 'false')) query[name] = value === 'true';
  }
}
