// What of the API the configuration decides. The running service documents (and validates) its
// own configuration's surface; the committed openapi/openapi.json documents ALL_CONFIGURATIONS:
// a field is listed if some configuration accepts or answers it, and required only if every
// configuration requires it, so a client generated from the file works against any deployment.
import { type Config, LOGIN_FIELDS, type LoginField, type ProfileField, REGISTER_FIELDS, UPDATE_FIELDS } from '../config.js';

/** true / false: always / never; 'depends': on the configuration or on the request. */
export type Presence = boolean | 'depends';

export interface ApiSurface {
  /** Profile fields register requires, and those it accepts without requiring them. */
  registerRequired: readonly ProfileField[];
  registerOptional: readonly ProfileField[];
  /** password1/password2 on register: required, or optional (ALLOW_PASSWORDLESS_REGISTRATION). */
  registerPasswords: 'required' | 'optional';
  /** Whether register's answer carries tokens (ALLOW_LOGIN_NOT_VERIFIED, and a password given). */
  registerTokens: Presence;
  /** Whether token answers carry a refresh token, and /token/refresh and /token/revoke exist. */
  refreshTokens: Presence;
  /** The identifiers a login may use, exactly one at a time (LOGIN_ALLOWED_FIELDS). */
  loginFields: readonly LoginField[];
  /** The fields update-account accepts (UPDATE_FIELDS). */
  updateFields: readonly ProfileField[];
  /**
   * Which limits can refuse a request (429), so that the document lists 429 exactly where it can
   * be answered: the per-client limits of routes/limits.ts ("guess": RATE_LIMIT_MAX, "token":
   * RATE_LIMIT_TOKEN_MAX) and the per-account count of password checks (LOGIN_FAILURE_LIMIT).
   */
  throttles: Throttles;
}

export interface Throttles {
  guess: boolean;
  token: boolean;
  passwordAttempts: boolean;
}

export function surfaceOf(config: Readonly<Config>): ApiSurface {
  return {
    registerRequired: config.registerFields,
    registerOptional: [],
    registerPasswords: config.allowPasswordlessRegistration ? 'optional' : 'required',
    registerTokens: !config.allowLoginNotVerified ? false : config.allowPasswordlessRegistration ? 'depends' : true,
    refreshTokens: config.jwt.longRunningRefreshToken,
    loginFields: config.loginAllowedFields,
    updateFields: config.updateFields,
    throttles: { guess: config.rateLimit.max > 0, token: config.rateLimit.tokenMax > 0, passwordAttempts: config.loginThrottle.limit > 0 },
  };
}

export const ALL_CONFIGURATIONS: ApiSurface = {
  registerRequired: [],
  registerOptional: REGISTER_FIELDS,
  registerPasswords: 'optional',
  registerTokens: 'depends',
  refreshTokens: 'depends',
  loginFields: LOGIN_FIELDS,
  updateFields: UPDATE_FIELDS,
  throttles: { guess: true, token: true, passwordAttempts: true },
};
