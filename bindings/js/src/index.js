// kvrun for Node: the unmodified kvrun vault client component (`kvrun_guest.wasm`, transpiled
// by jco) behind a JS host that enforces, at the HTTP boundary, what the Rust host does.
//
// The component runs in worker threads (`./lane.js`, more than one only for calls that
// overlap) with only the `wasi:*` imports of `./wasi/`; every request it makes goes to this
// thread's boundary (`./boundary.js`): the frame's shape checked, allow-list (only the
// vault's origin), no `Authorization` from the component, the credential added by the host
// for the vault only (challenge first for Azure tokens), TLS with the given CA, timeouts and
// a response cap. There is no training sandbox in Node: use the Rust host or the Python
// package for untrusted code.

import { DEFAULT_SPIN_MICROSECONDS, MAX_SPIN_MICROSECONDS, SpinGate } from './handoff.js';
import { Lane } from './lane.js';
import { Boundary } from './boundary.js';
import { Credential } from './credential.js';
import { AllowList, parseOrigin, PolicyError } from './policy.js';
import { ComponentError, ConfigError, KvrunError, fromContract } from './errors.js';

export * from './errors.js';
export { AllowList, PolicyError, parseOrigin } from './policy.js';
export { isKeyVaultHost, parseChallenge, challengeAllowed, KEY_VAULT_DOMAINS } from './credential.js';

const date = (seconds) => (seconds === undefined ? undefined : new Date(Number(seconds) * 1000));
const seconds = (d) => (d === undefined ? undefined : BigInt(Math.floor(new Date(d).getTime() / 1000)));
const tagList = (tags) => (tags === undefined ? undefined : Object.entries(tags).map(([k, v]) => [String(k), String(v)]));

function properties(p) {
  return {
    name: p.name,
    version: p.version,
    id: p.id,
    contentType: p.contentType,
    enabled: p.enabled,
    notBefore: date(p.notBefore),
    expires: date(p.expires),
    created: date(p.created),
    updated: date(p.updated),
    tags: Object.fromEntries(p.tags),
  };
}

function deleted(d) {
  return {
    name: d.properties.name,
    properties: properties(d.properties),
    recoveryId: d.recoveryId,
    deletedDate: date(d.deletedDate),
    scheduledPurgeDate: date(d.scheduledPurgeDate),
  };
}

/** How many workers a Keyvault may run by default, and at most. */
const DEFAULT_WORKERS = 4;
const MAX_WORKERS = 64;

/** A Key Vault (or the local kvrun vault), reached through the kvrun component. */
export class Keyvault {
  /**
   * @param {object} options
   * @param {string} options.vaultUrl `https://NAME.vault.azure.net` or the local vault's URL.
   * @param {string} [options.token] a static token, sent to `vaultUrl` only.
   * @param {(scope: string, options: { tenantId?: string }) => Promise<string | { token: string, expiresOnTimestamp?: number }>} [options.getToken]
   *   Azure-style credentials: called only after the vault's challenge names a Key Vault domain.
   * @param {string | Buffer} [options.caCert] a PEM CA to trust besides the public roots.
   * @param {string} [options.apiVersion] the Key Vault `api-version` (default 7.5).
   * @param {boolean} [options.unsafeTokenToAnyHost] answer any host's challenge (test servers only).
   * @param {{ maxAttempts?: number, baseDelayMs?: number, maxDelayMs?: number, deadlineMs?: number }} [options.retry]
   *   the component's retry budget.
   * @param {number} [options.callTimeoutMs] how long one operation may take, retries included
   *   (default 90 s, as the Rust host); past it the component's worker is stopped and the call
   *   fails with `Unavailable` (kind `timeout`).
   * @param {number} [options.spinMicroseconds] how long the main thread and the component's
   *   worker busy-wait for each other's next message before they sleep, while the machine has
   *   a core to spare (default 200; 0 never spins, at about 0.2 ms more per call on an idle
   *   virtual machine; see `./handoff.js`).
   * @param {number} [options.workers] how many worker threads, each with its own instance of
   *   the component, may run calls that overlap (default 4, from 1 to 64); one is started at
   *   the first call and another only when a call finds every one busy (about 12 MB and 60 ms
   *   each).
   * @param {string | URL} [options.componentModule] another transpiled implementation of the
   *   `vault-client` world (a test double); it runs in the same workers under the same boundary.
   */
  constructor({ vaultUrl, token, getToken, caCert, apiVersion, unsafeTokenToAnyHost = false, retry = {}, callTimeoutMs = 90_000, spinMicroseconds = DEFAULT_SPIN_MICROSECONDS, workers = DEFAULT_WORKERS, componentModule } = {}) {
    if (!vaultUrl) throw new ConfigError('vaultUrl is required', { kind: 'config' });
    let origin;
    let allow;
    try {
      origin = parseOrigin(vaultUrl);
      allow = new AllowList([vaultUrl]);
    } catch (e) {
      throw new ConfigError(e instanceof PolicyError ? e.message : String(e), { kind: 'config' });
    }
    const url = `${origin.scheme}://${vaultUrl.split('://')[1].replace(/\/$/, '')}`;
    this.vaultUrl = url;
    this.#boundary = new Boundary({
      vaultOrigin: origin,
      allow,
      credential: new Credential({ token, getToken, unsafeTokenToAnyHost }),
      caCert,
    });
    this.#callTimeoutMs = callTimeoutMs;
    if (typeof spinMicroseconds !== 'number' || !(spinMicroseconds >= 0 && spinMicroseconds <= MAX_SPIN_MICROSECONDS)) {
      throw new ConfigError(`spinMicroseconds must be a number from 0 to ${MAX_SPIN_MICROSECONDS}, not ${String(spinMicroseconds)}`, { kind: 'config' });
    }
    this.#spinMicroseconds = spinMicroseconds;
    if (!Number.isInteger(workers) || workers < 1 || workers > MAX_WORKERS) {
      throw new ConfigError(`workers must be a whole number from 1 to ${MAX_WORKERS}, not ${String(workers)}`, { kind: 'config' });
    }
    this.#maxWorkers = workers;
    this.#module = componentModule === undefined ? undefined : String(componentModule);
    this.#env = [['KVRUN_VAULT_URL', url]];
    if (apiVersion) this.#env.push(['KVRUN_API_VERSION', String(apiVersion)]);
    for (const [key, name] of [
      ['maxAttempts', 'KVRUN_RETRY_MAX_ATTEMPTS'],
      ['baseDelayMs', 'KVRUN_RETRY_BASE_DELAY_MS'],
      ['maxDelayMs', 'KVRUN_RETRY_MAX_DELAY_MS'],
      ['deadlineMs', 'KVRUN_RETRY_DEADLINE_MS'],
    ]) {
      if (retry[key] !== undefined) this.#env.push([name, String(retry[key])]);
    }
  }

  #boundary;
  #env;
  #module;
  #callTimeoutMs;
  #spinMicroseconds;
  #spinGate = new SpinGate();
  #maxWorkers;
  #lanes = [];
  #closed = false;

  /** Requests the boundary sent and refused so far: `{ sent, denied }`. */
  get networkStats() {
    return { ...this.#boundary.stats };
  }

  /** The spin budget (µs) for now: the configured one while the machine has a core to
   * spare (`./handoff.js`). Called when only the main thread of this package runs. */
  #spinBudget() {
    this.#spinGate.sample();
    return this.#spinGate.open ? this.#spinMicroseconds : 0;
  }

  /** The lane for a new call: an idle one, else a new one while there are fewer than
   * `workers`, else the least loaded. */
  #lane() {
    const idle = this.#lanes.find((lane) => !lane.busy && !lane.stopped);
    if (idle) return idle;
    const running = this.#lanes.filter((lane) => !lane.stopped);
    if (running.length < this.#maxWorkers) {
      const lane = new Lane({
        env: this.#env,
        module: this.#module,
        serve: (request) => this.#boundary.handle(request),
        spinBudget: () => this.#spinBudget(),
        alone: (me) => this.#lanes.every((other) => other === me || !other.busy),
        onExit: (gone) => {
          this.#lanes = this.#lanes.filter((lane) => lane !== gone);
        },
      });
      this.#lanes.push(lane);
      return lane;
    }
    return running.reduce((least, lane) => (lane.load < least.load ? lane : least));
  }

  async #call(op, ...args) {
    if (this.#closed) throw new ConfigError('this Keyvault is closed', { kind: 'config' });
    const stats = this.#boundary.stats;
    const before = { denied: stats.denied, tokenRefused: stats.tokenRefused };
    const reply = await this.#lane().call(op, args, this.#callTimeoutMs);
    if (reply.fatal) throw new ComponentError(reply.fatal, { kind: 'component' });
    if (reply.error) throw fromContract(reply.error, stats.denied > before.denied, stats.tokenRefused > before.tokenRefused);
    return reply.value;
  }

  /** Stops the component's workers and closes pooled connections. */
  async close() {
    this.#closed = true;
    const lanes = this.#lanes;
    this.#lanes = [];
    this.#boundary.close();
    await Promise.all(lanes.map((lane) => lane.stop()));
  }

  /** Sets a secret; an existing name gets a new version. */
  async setSecret(name, value, { contentType, tags } = {}) {
    return properties(await this.#call('setSecret', name, value, { contentType, tags: tagList(tags) ?? [] }));
  }

  /** Sets many secrets concurrently: `{ name: value }` in, one `{ name, properties }` or
   * `{ name, error }` per entry out, in order. */
  async setSecrets(secrets) {
    const inputs = Object.entries(secrets).map(([name, value]) => ({ name, value: String(value), options: { contentType: undefined, tags: [] } }));
    const outcomes = await this.#call('setSecrets', inputs);
    return outcomes.map((o, i) =>
      o.tag === 'ok' ? { name: inputs[i].name, properties: properties(o.val) } : { name: inputs[i].name, error: fromContract(o.val, false) },
    );
  }

  /** The latest version of a secret (or `version`): `{ name, value, properties }`. */
  async getSecret(name, { version } = {}) {
    const secret = await this.#call('getSecret', name, version);
    return { name: secret.properties.name, value: secret.value, properties: properties(secret.properties) };
  }

  /** Many values in one call: `{ name: value | null }`. */
  async getSecrets(names) {
    const values = await this.#call('getSecrets', [...names]);
    return Object.fromEntries(names.map((n, i) => [n, values[i] ?? null]));
  }

  /** Every secret's properties. */
  async listSecrets() {
    return (await this.#call('listSecrets')).map(properties);
  }

  /** Every version's properties. */
  async listSecretVersions(name) {
    return (await this.#call('listSecretVersions', name)).map(properties);
  }

  /** Deletes every version of a secret. */
  async deleteSecret(name) {
    return deleted(await this.#call('deleteSecret', name));
  }

  /** Changes a version's properties (the latest without `version`). */
  async updateSecretProperties(name, { version, enabled, contentType, tags, notBefore, expires } = {}) {
    return properties(
      await this.#call('updateSecretProperties', name, version, {
        enabled,
        contentType,
        tags: tagList(tags),
        notBefore: seconds(notBefore),
        expires: seconds(expires),
      }),
    );
  }

  /** A deleted secret that can still be recovered. */
  async getDeletedSecret(name) {
    return deleted(await this.#call('getDeletedSecret', name));
  }

  /** Every deleted secret. */
  async listDeletedSecrets() {
    return (await this.#call('listDeletedSecrets')).map(deleted);
  }

  /** Brings a deleted secret back. */
  async recoverDeletedSecret(name) {
    return properties(await this.#call('recoverDeletedSecret', name));
  }

  /** Removes a deleted secret for good. */
  async purgeDeletedSecret(name) {
    await this.#call('purgeDeletedSecret', name);
  }

  /** An opaque backup of every version. */
  async backupSecret(name) {
    return this.#call('backupSecret', name);
  }

  /** Restores a backup. */
  async restoreSecret(backup) {
    return properties(await this.#call('restoreSecret', backup));
  }

  toString() {
    return `Keyvault(${this.vaultUrl}, ${this.#boundary.credential})`;
  }

  [Symbol.for('nodejs.util.inspect.custom')]() {
    return this.toString();
  }
}

export { KvrunError };
