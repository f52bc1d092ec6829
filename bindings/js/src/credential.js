// Credentials held by the JS host, never by the component (the same rules as the Rust host's
// `auth/credential.rs`).
//
// A static `token` is the caller's explicit choice for an explicit vault: it goes with every
// request to the vault's origin, and nowhere else. A `getToken(scope, { tenantId })` callback
// (Azure credentials) follows the challenge protocol, as the Azure SDKs do: the first request
// carries no token; the vault's 401 names the resource (and tenant) it wants, and a token is
// fetched only when that resource is a Key Vault domain that covers the vault's host. The
// accepted challenge is remembered per host, so later requests carry the token at once.

/** The Key Vault domains of the Azure clouds. */
export const KEY_VAULT_DOMAINS = ['vault.azure.net', 'vault.azure.cn', 'vault.usgovcloudapi.net', 'vault.microsoftazure.de'];

/** Whether `host` is inside one of the Key Vault domains. */
export function isKeyVaultHost(host) {
  const h = host.toLowerCase().replace(/\.$/, '');
  return KEY_VAULT_DOMAINS.some((d) => h.endsWith(`.${d}`) && h.length > d.length + 1);
}

/** Parses a `WWW-Authenticate: Bearer …` challenge; `null` when it is not one. */
export function parseChallenge(header) {
  const text = String(header ?? '').trim();
  if (!text.startsWith('Bearer')) return null;
  const params = new Map();
  for (const part of text.slice('Bearer'.length).split(',')) {
    const eq = part.indexOf('=');
    if (eq < 0) return null;
    params.set(part.slice(0, eq).trim().toLowerCase(), part.slice(eq + 1).trim().replace(/^"|"$/g, ''));
  }
  const authority = params.get('authorization') ?? params.get('authorization_uri');
  if (!authority) return null;
  const tenantId = authority.split('://')[1]?.split('/')[1] || undefined;
  let scope = params.get('scope');
  if (!scope) {
    const resource = params.get('resource');
    if (!resource) return null;
    scope = `${resource.replace(/\/+$/, '')}/.default`;
  }
  const resourceHost = (scope.split('://')[1]?.split('/')[0] ?? '').toLowerCase();
  return { scope, tenantId, resourceHost };
}

/** Whether a token for `challenge` may go to a vault on `host`. */
export function challengeAllowed(challenge, host) {
  return KEY_VAULT_DOMAINS.includes(challenge.resourceHost) && host.toLowerCase().endsWith(`.${challenge.resourceHost}`);
}

/** The credential of one Keyvault. */
export class Credential {
  /**
   * @param {{ token?: string, getToken?: (scope: string, options: { tenantId?: string }) => Promise<string | { token: string }>, unsafeTokenToAnyHost?: boolean }} options
   */
  constructor({ token, getToken, unsafeTokenToAnyHost = false } = {}) {
    if (token !== undefined && getToken !== undefined) throw new TypeError('give either token or getToken, not both');
    if (token !== undefined) {
      token = String(token).trim();
      if (!token || !/^[\x21-\x7e]+$/.test(token)) throw new TypeError('the token is empty or has characters an HTTP header cannot carry');
    }
    if (getToken !== undefined && typeof getToken !== 'function') throw new TypeError('getToken must be a function');
    this.#token = token;
    this.#getToken = getToken;
    this.#anyHost = unsafeTokenToAnyHost;
  }

  #token;
  #getToken;
  #anyHost;
  #accepted = new Map();
  #cache = new Map();

  /** Whether there is any credential at all. */
  get present() {
    return this.#token !== undefined || this.#getToken !== undefined;
  }

  /** The `Authorization` value for a first request to `host`, or `undefined` (challenge first). */
  async header(host) {
    if (this.#token !== undefined) return `Bearer ${this.#token}`;
    const challenge = this.#accepted.get(host.toLowerCase());
    return challenge ? this.#fetch(challenge, false) : undefined;
  }

  /**
   * After a 401 with `wwwAuthenticate` from `host`: the header to retry with, or `undefined`
   * when the challenge must not be answered (not a Key Vault domain covering the host).
   */
  async answer(host, wwwAuthenticate, hadToken) {
    if (this.#getToken === undefined) return undefined;
    const challenge = parseChallenge(wwwAuthenticate);
    if (!challenge) return undefined;
    if (!this.#anyHost && !challengeAllowed(challenge, host)) return undefined;
    this.#accepted.set(host.toLowerCase(), challenge);
    return this.#fetch(challenge, hadToken);
  }

  async #fetch(challenge, force) {
    const key = `${challenge.scope} ${challenge.tenantId ?? ''}`;
    const cached = this.#cache.get(key);
    if (!force && cached && cached.expires > Date.now() + 60_000) return cached.header;
    const got = await this.#getToken(challenge.scope, { tenantId: challenge.tenantId });
    const token = typeof got === 'string' ? got : got?.token;
    if (typeof token !== 'string' || !/^[\x21-\x7e]+$/.test(token)) {
      throw new TypeError('getToken must return a token string (or { token, expiresOnTimestamp })');
    }
    const expires = typeof got === 'object' && got.expiresOnTimestamp ? got.expiresOnTimestamp : Date.now() + 5 * 60_000;
    const header = `Bearer ${token}`;
    this.#cache.set(key, { header, expires });
    return header;
  }

  toString() {
    return this.#token !== undefined ? 'Credential(Bearer ***)' : this.#getToken ? 'Credential(getToken)' : 'Credential(none)';
  }

  [Symbol.for('nodejs.util.inspect.custom')]() {
    return this.toString();
  }
}
