// Turns the schema validator's (Ajv's) errors into django-graphql-auth's field errors:
// { field: [{ message, code }] }, with Django's messages where Django has one.
import type { FastifySchemaValidationError } from 'fastify/types/schema.js';
import { AppError, type FieldErrors } from './errors.js';

export function fromValidation(issues: FastifySchemaValidationError[]): AppError {
  // Field names come from the client (an unknown field is reported under its own name): a Map,
  // never a plain object, so that `constructor` or `toString` cannot resolve to Object.prototype.
  const byField = new Map<string, { message: string; code: string }[]>();
  for (const issue of issues) {
    const { field, message, code } = describe(issue);
    const list = byField.get(field) ?? [];
    byField.set(field, list);
    if (!list.some((e) => e.code === code)) list.push({ message, code });
  }
  // Object.fromEntries defines own properties, so even a field named `__proto__` stays a field.
  return validationFailed(Object.fromEntries(byField));
}

/** A 400 validation_failed whose detail names the fields at fault. */
export function validationFailed(errors: FieldErrors): AppError {
  const fields = Object.keys(errors);
  const detail = fields.length === 1 ? `Invalid field: ${fields[0]}.` : `Invalid fields: ${fields.join(', ')}.`;
  return new AppError('validation_failed', { detail, errors });
}

function describe(issue: FastifySchemaValidationError): { field: string; message: string; code: string } {
  const params = issue.params as Record<string, unknown>;
  const path = issue.instancePath.split('/').filter(Boolean);
  const field = path[0] ?? 'nonFieldErrors';
  switch (issue.keyword) {
    case 'required':
      return { field: String(params.missingProperty), message: 'This field is required.', code: 'required' };
    case 'additionalProperties':
      return { field: String(params.additionalProperty), message: 'Unknown field.', code: 'invalid' };
    case 'type':
      return path.length === 0
        ? { field, message: 'The body must be a JSON object.', code: 'invalid' }
        : { field, message: `Must be a ${params.type}.`, code: 'invalid' };
    case 'minLength':
      return { field, message: 'This field may not be blank.', code: 'required' };
    case 'maxLength':
      return { field, message: `Ensure this field has no more than ${params.limit} characters.`, code: 'max_length' };
    case 'format':
      return params.format === 'email'
        ? { field, message: 'Enter a valid email address.', code: 'invalid' }
        : { field, message: `Must be a valid ${params.format}.`, code: 'invalid' };
    case 'pattern':
      return field === 'username'
        ? { field, message: 'Enter a valid username. This value may contain only letters, numbers, and @/./+/-/_ characters.', code: 'invalid' }
        : { field, message: 'Invalid value.', code: 'invalid' };
    default:
      return { field, message: issue.message ?? 'Invalid value.', code: 'invalid' };
  }
}
