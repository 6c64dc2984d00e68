// Every error a client can see, in one table: code → HTTP status → title → default message
// (listed in the README, "Errors"). Services throw AppError(code); one error handler (app.ts) turns it into an
// RFC 9457 problem document. Codes are stable and snake_case: clients branch on them.

export const ERRORS = {
  validation_failed: { status: 400, title: 'Validation failed', detail: 'The request is not valid.' },
  invalid_token: { status: 400, title: 'Invalid token', detail: 'Invalid token.' },
  expired_token: { status: 400, title: 'Expired token', detail: 'Expired token.' },
  invalid_password: { status: 400, title: 'Invalid password', detail: 'Invalid password.' },
  invalid_credentials: { status: 401, title: 'Invalid credentials', detail: 'Please, enter valid credentials.' },
  unauthenticated: { status: 401, title: 'Unauthenticated', detail: 'Unauthenticated.' },
  not_verified: { status: 403, title: 'Not verified', detail: 'Please verify your account.' },
  not_found: { status: 404, title: 'Not found', detail: 'No such endpoint.' },
  user_not_found: { status: 404, title: 'User not found', detail: 'No user with that id.' },
  session_not_found: { status: 404, title: 'Session not found', detail: 'No live session with that id on this account.' },
  email_not_found: { status: 404, title: 'Email not found', detail: 'No email with that id in the outbox.' },
  webhook_not_found: { status: 404, title: 'Webhook delivery not found', detail: 'No webhook delivery with that id.' },
  method_not_allowed: { status: 405, title: 'Method not allowed', detail: 'This endpoint does not accept that method.' },
  already_verified: { status: 409, title: 'Already verified', detail: 'Account already verified.' },
  password_already_set: { status: 409, title: 'Password already set', detail: 'Password already set for account.' },
  email_not_failed: { status: 409, title: 'Email not failed', detail: 'Only a failed email can be requeued.' },
  email_not_pending: { status: 409, title: 'Email not pending', detail: 'Only a pending email can be cancelled.' },
  webhook_not_failed: { status: 409, title: 'Webhook delivery not failed', detail: 'Only a failed webhook delivery can be requeued.' },
  no_email_address: { status: 409, title: 'No email address', detail: 'The account has no email address.' },
  account_inactive: { status: 409, title: 'Account inactive', detail: 'The account is deactivated: reactivate it first.' },
  unique: { status: 409, title: 'Already exists', detail: 'A user with that value already exists.' },
  key_rotation_unavailable: { status: 409, title: 'Key rotation unavailable', detail: 'These signing keys cannot be rotated by the service.' },
  key_rotation_too_soon: { status: 409, title: 'Key rotation too soon', detail: 'The next signing key has not been published long enough.' },
  request_timeout: { status: 408, title: 'Request timeout', detail: 'The request was not received in time.' },
  payload_too_large: { status: 413, title: 'Payload too large', detail: 'The request body is too large.' },
  unsupported_media_type: { status: 415, title: 'Unsupported media type', detail: 'Send the body as application/json.' },
  rate_limited: { status: 429, title: 'Too many requests', detail: 'Too many requests, try again later.' },
  headers_too_large: { status: 431, title: 'Request headers too large', detail: 'The request headers are too large.' },
  internal_error: { status: 500, title: 'Internal error', detail: 'Something went wrong on our side.' },
  service_unavailable: { status: 503, title: 'Service unavailable', detail: 'The service is unavailable, try again later.' },
} as const;

export type ErrorCode = keyof typeof ERRORS;

/** Field-level errors in django-graphql-auth's shape: { field: [{ message, code }] }. */
export type FieldErrors = Record<string, { message: string; code: string }[]>;

export class AppError extends Error {
  readonly status: number;
  readonly errors: FieldErrors | undefined;
  /** Seconds the client should wait (rate_limited, some 503s): the body's retryAfter. */
  readonly retryAfter: number | undefined;
  constructor(
    readonly code: ErrorCode,
    options: { detail?: string; errors?: FieldErrors; retryAfter?: number; cause?: unknown } = {},
  ) {
    super(options.detail ?? ERRORS[code].detail, { cause: options.cause });
    this.name = 'AppError';
    this.status = ERRORS[code].status;
    this.errors = options.errors;
    this.retryAfter = options.retryAfter;
  }
}

/** An error about one request field; for validation_failed its message is the detail too. */
export function fieldError(code: ErrorCode, field: string, fieldCode: string, message: string): AppError {
  return new AppError(code, { detail: code === 'validation_failed' ? message : undefined, errors: { [field]: [{ message, code: fieldCode }] } });
}

export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  code: ErrorCode;
  errors?: FieldErrors;
  retryAfter?: number;
  requestId: string;
}

export function toProblem(err: AppError, requestId: string, baseUrl: string): Problem {
  const { title, status } = ERRORS[err.code];
  return {
    type: `${baseUrl}/problems/${err.code}`,
    title,
    status,
    detail: err.message,
    code: err.code,
    ...(err.errors ? { errors: err.errors } : {}),
    ...(err.retryAfter !== undefined ? { retryAfter: err.retryAfter } : {}),
    requestId,
  };
}
