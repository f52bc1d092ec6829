// Errors of the kvrun JS package: one class per kind, all `KvrunError`s. Messages come from
// the component or the boundary and never carry a secret value or a token.

/** Every kvrun failure. `kind` is the stable name (as in `kvrun --output json`). */
export class KvrunError extends Error {
  constructor(message, { kind = 'error', status } = {}) {
    super(message);
    this.name = new.target.name;
    this.kind = kind;
    this.status = status;
  }
}
/** The secret, or the version, does not exist. */
export class NotFound extends KvrunError {}
/** The vault refused the request (HTTP 403). */
export class Denied extends KvrunError {}
/** The host's network policy refused the request; nothing was sent. */
export class PolicyDenied extends Denied {}
/** The vault did not accept the credential. */
export class Unauthenticated extends KvrunError {}
/** The operation conflicts with the secret's state. */
export class Conflict extends KvrunError {}
/** An argument is out of bounds, or the vault answered 400. */
export class InvalidArgument extends KvrunError {}
/** A secret name breaks ^[0-9A-Za-z-]{1,127}$. */
export class InvalidName extends InvalidArgument {}
/** The vault could not be reached, or kept failing. */
export class Unavailable extends KvrunError {}
/** Another error answer from the vault, or one that could not be read. */
export class ServiceError extends KvrunError {}
/** The vault client component failed (a trap); the next call starts a fresh one. */
export class ComponentError extends KvrunError {}
/** The options are wrong (vault URL, CA, token). */
export class ConfigError extends KvrunError {}

/** The error for the contract's `error` variant (`{ tag, val }`); `policyDenied` when the
 * boundary refused a request during the call, `tokenRefused` when the vault answered 401 to a
 * request that carried the token. */
export function fromContract(error, policyDenied, tokenRefused = false) {
  const message = typeof error.val === 'string' ? error.val : error.val?.message ?? error.tag;
  if (policyDenied && (error.tag === 'denied' || error.tag === 'transport' || error.tag === 'unavailable')) {
    return new PolicyDenied(`${message} (the host's network policy refused the request; nothing was sent)`, { kind: 'denied-by-policy' });
  }
  switch (error.tag) {
    case 'not-found':
      return new NotFound(message, { kind: 'not-found' });
    case 'denied':
      return new Denied(message, { kind: 'denied-by-vault' });
    case 'conflict':
      return new Conflict(message, { kind: 'conflict' });
    case 'unauthenticated':
      if (tokenRefused) {
        return new Unauthenticated(`the vault refused the token this package sent (check the token or credential given to Keyvault); the vault said: ${message}`, { kind: 'unauthenticated' });
      }
      return new Unauthenticated(message, { kind: 'unauthenticated' });
    case 'invalid-name':
      return new InvalidName(message, { kind: 'invalid-name' });
    case 'invalid-argument':
      return new InvalidArgument(message, { kind: 'invalid-argument' });
    case 'unavailable':
      return new Unavailable(message, { kind: 'unavailable' });
    case 'service':
      return new ServiceError(`${error.val.message} (${error.val.code}, HTTP ${error.val.status})`, { kind: 'service', status: error.val.status });
    default:
      return new Unavailable(message, { kind: 'network' });
  }
}
